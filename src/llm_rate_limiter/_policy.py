# SPDX-License-Identifier: MIT
"""
`ResiliencePolicy`: retry ⊃ [breaker ⊃ limiter ⊃ attempt timeout ⊃ call] around any coroutine.

Each attempt passes the breaker first (an open breaker consumes no quota), then
acquires rate-limit capacity, looks at the breaker again (it may have opened
while the call queued), and runs under its own timeout. The first attempt runs
without building any retry machinery; only a retryable failure enters the
tenacity loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

import openai

from ._clock import SYSTEM_CLOCK, Clock
from ._errors import RetryErrorType, classify_error, is_quota_error
from ._headers import parse_retry_after
from ._hooks import NULL_HOOK, MetricsHook
from .breaker import AsyncCircuitBreaker, BreakerPolicy
from .exceptions import CircuitOpenError
from .limiter import ProviderLimiter, RateLimiterLike, RateLimits
from .retry import Retrier, RetryCallStats, RetryPolicy

__all__ = ["Attempt", "ResiliencePolicy", "rate_limit_hint"]

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


def rate_limit_hint(exc: BaseException) -> tuple[float | None, Any] | None:
    """
    Return ``(retry_after, headers)`` when *exc* is a 429 from the server, else None.

    Args:
        exc: The exception an attempt raised.

    Returns:
        The server's requested wait (None when it gave none) and its headers.
    """
    if isinstance(exc, openai.APIStatusError) and exc.status_code == 429:
        headers = exc.response.headers
        return parse_retry_after(headers), headers
    return None


class Attempt(Generic[R]):
    """
    One attempt's composition for a result type *R*: breaker ⊃ limiter ⊃ timeout ⊃ send.

    Built once per call by `ResiliencePolicy`; `run` is what the retry loop calls.
    """

    __slots__ = ("_hold", "_policy", "_send", "_settle", "_tokens")

    def __init__(
        self,
        policy: ResiliencePolicy,
        send: Callable[[], Awaitable[R]],
        tokens: float,
        settle: Callable[[R], tuple[float | None, Any]] | None,
        hold: bool = False,
    ) -> None:
        self._policy = policy
        self._send = send
        self._tokens = tokens
        self._settle = settle
        self._hold = hold

    async def run(self) -> R:
        """Run one attempt through breaker, limiter and timeout."""
        policy = self._policy
        breaker = policy.breaker
        ticket: Any = breaker.admit() if breaker is not None else None
        limiter = policy.limiter
        if limiter is None:
            return await self._send_guarded(ticket, None)
        if self._hold:
            return await self._run_holding(limiter, ticket)
        sent = False
        try:
            async with limiter.acquire(self._tokens) as permit:
                if breaker is not None:
                    breaker.recheck(ticket)
                sent = True
                return await self._send_guarded(ticket, permit)
        except BaseException as exc:
            # Refused or cancelled while queued: nothing was sent, so free the ticket
            # (recheck already released it when the breaker opened meanwhile).
            if not sent and breaker is not None and not isinstance(exc, CircuitOpenError):
                breaker.on_cancel(ticket)
            raise

    async def _run_holding(self, limiter: RateLimiterLike, ticket: Any) -> R:
        """Like `run`, but the result keeps the limiter's permit (a stream, until closed)."""
        breaker = self._policy.breaker
        permit = limiter.acquire(self._tokens)
        try:
            held = await permit.__aenter__()
        except BaseException:
            if breaker is not None:
                breaker.on_cancel(ticket)
            raise
        try:
            if breaker is not None:
                breaker.recheck(ticket)
            result = await self._send_guarded(ticket, held)
        except BaseException as exc:
            await permit.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        result.hold(held, permit)  # type: ignore[attr-defined]
        return result

    async def _send_guarded(self, ticket: Any, permit: Any) -> R:
        policy = self._policy
        clock = policy.clock
        breaker = policy.breaker
        hook = policy.hook
        timeout = policy.attempt_timeout
        started = clock.monotonic()
        try:
            if timeout is None:
                result = await self._send()
            else:
                async with asyncio.timeout(timeout):
                    result = await self._send()
        except Exception as exc:
            latency = clock.monotonic() - started
            kind = classify_error(exc)
            hint = rate_limit_hint(exc)
            if hint is not None:
                if kind is RetryErrorType.RATE_LIMIT:
                    if policy.limiter is not None:
                        policy.limiter.on_rate_limited(*hint)
                    else:
                        hook.rate_limit_violation(policy.name, hint[0])
                elif is_quota_error(exc):
                    hook.quota_exhausted(policy.name)
            if breaker is not None:
                breaker.on_failure(ticket, exc, latency)
            hook.attempt_finished(policy.name, latency, kind)
            raise
        except BaseException:
            if breaker is not None:
                breaker.on_cancel(ticket)
            raise
        latency = clock.monotonic() - started
        if breaker is not None:
            breaker.on_success(ticket, latency)
        hook.attempt_finished(policy.name, latency, None)
        if permit is not None and self._settle is not None:
            used, headers = self._settle(result)
            permit.settle(used_tokens=used, headers=headers)
        return result


class ResiliencePolicy:
    """
    The library's parts around any coroutine function.

    ``retry ⊃ [breaker ⊃ limiter (requests, tokens, concurrency) ⊃ attempt timeout ⊃ call]``.
    Use it as a decorator (``@policy``) that keeps the function's signature, or
    as ``await policy.call(fn, *args, **kwargs)``.

    Args:
        name: The service name used in metrics, errors and logs.
        retry: The retry policy; None disables retries.
        limits: Rate limits; None disables the limiter.
        breaker: The breaker policy; None disables the breaker.
        hook: Where events go (a `MetricsCollector`, for one).
        clock: Time source; tests pass `FakeClock`.
        cost: Computes a call's token cost from its arguments (default: 0 tokens).
        limiter: A ready limiter to use instead of building one from *limits*
            (a `llm_rate_limiter.distributed.RedisRateLimiter`, for one).
        circuit_breaker: A ready breaker to use instead of building one from
            *breaker* (a `llm_rate_limiter.distributed.SharedCircuitBreaker`).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        name: str = "default",
        *,
        retry: RetryPolicy | None = None,
        limits: RateLimits | None = None,
        breaker: BreakerPolicy | None = None,
        hook: MetricsHook = NULL_HOOK,
        clock: Clock = SYSTEM_CLOCK,
        cost: Callable[..., float] | None = None,
        limiter: RateLimiterLike | None = None,
        circuit_breaker: AsyncCircuitBreaker | None = None,
    ) -> None:
        self.name = name
        self.hook = hook
        self.clock = clock
        self.cost = cost
        self.retry_policy = retry if retry is not None else RetryPolicy(max_retries=0)
        self.retrier = Retrier(self.retry_policy, service=name, hook=hook, clock=clock)
        self.attempt_timeout = self.retry_policy.attempt_timeout
        if limiter is not None:
            limits = limiter.limits
        elif limits is not None:
            limiter = ProviderLimiter(limits, service=name, hook=hook)
        self.limiter: RateLimiterLike | None = limiter
        if circuit_breaker is not None:
            breaker = circuit_breaker.policy
        elif breaker is not None:
            circuit_breaker = AsyncCircuitBreaker(breaker, service=name, hook=hook, clock=clock)
        self.breaker: AsyncCircuitBreaker | None = circuit_breaker
        register = getattr(hook, "register_service", None)
        if register is not None:
            register(
                name,
                requests_per_minute=limits.requests_per_minute if limits else None,
                tokens_per_minute=limits.tokens_per_minute if limits else None,
                max_concurrency=limits.max_concurrency if limits else None,
                fail_max=breaker.fail_max if breaker else None,
                reset_timeout=breaker.reset_timeout if breaker else None,
                max_retries=self.retry_policy.max_retries,
            )

    async def run(
        self,
        send: Callable[[], Awaitable[R]],
        *,
        tokens: float = 0.0,
        settle: Callable[[R], tuple[float | None, Any]] | None = None,
        stats: RetryCallStats | None = None,
        retry: RetryPolicy | None = None,
        last_resort: bool = True,
        hold_permit: bool = False,
    ) -> R:
        """
        Run *send* (a zero-argument coroutine factory) through the whole policy.

        Args:
            send: Called once per attempt.
            tokens: The call's estimated token cost, for the limiter.
            settle: Maps a result to ``(used_tokens, headers)`` for the limiter.
            stats: Filled with the call's attempts and waits.
            retry: A retry policy for this call only (its retry budget is not shared).
            last_resort: The call has no fallback left: an open breaker's refusal is
                waited out (``RetryPolicy.wait_for_breaker``) rather than returned.
            hold_permit: The result keeps the limiter's permit (its concurrency slot)
                until it is released: it must have ``hold(permit, context)`` (a stream).

        Returns:
            What *send* returned.
        """
        hook = self.hook
        name = self.name
        clock = self.clock
        hook.call_started(name)
        started = clock.monotonic()
        stats = stats if stats is not None else RetryCallStats()
        attempt = Attempt(self, send, tokens, settle, hold_permit)
        try:
            retrier = self.retrier
            if retry is not None and retry != self.retry_policy:
                retrier = Retrier(retry, service=name, hook=hook, clock=clock)
            result = await retrier.run(attempt.run, stats=stats, last_resort=last_resort)
        except Exception:
            hook.call_finished(name, "failure", clock.monotonic() - started, stats.attempts)
            raise
        except BaseException:
            hook.call_finished(name, "cancelled", clock.monotonic() - started, stats.attempts)
            raise
        hook.call_finished(name, "success", clock.monotonic() - started, stats.attempts)
        return result

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """
        Call ``fn(*args, **kwargs)`` through the policy.

        Returns:
            What *fn* returned.
        """
        tokens = float(self.cost(*args, **kwargs)) if self.cost is not None else 0.0
        return await self.run(functools.partial(fn, *args, **kwargs), tokens=tokens)

    @overload
    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]: ...
    @overload
    def __call__(self, fn: Any) -> Any: ...

    def __call__(self, fn: Any) -> Any:
        """Decorate a coroutine function so every call goes through the policy."""
        if not asyncio.iscoroutinefunction(fn):
            msg = f"ResiliencePolicy decorates coroutine functions, not {fn!r}"
            raise TypeError(msg)

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await self.call(fn, *args, **kwargs)

        return wrapper

    def __repr__(self) -> str:
        return (
            f"ResiliencePolicy(name={self.name!r}, retry={self.retry_policy!r}, "
            f"limiter={self.limiter is not None}, breaker={self.breaker is not None})"
        )
