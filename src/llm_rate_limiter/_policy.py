# SPDX-License-Identifier: MIT
"""
`ResiliencePolicy`: retry ⊃ [breaker ⊃ limiter ⊃ attempt timeout ⊃ call] around any coroutine.

Each attempt (`Attempt`) passes the breaker first (an open breaker consumes
no quota), then acquires rate-limit capacity, looks at the breaker again (it
may have opened while the call queued), and runs under its own timeout. When
the breaker opens, the calls queued in the limiter are sent away at once. The
first attempt runs without building any retry machinery; only a retryable
failure enters the tenacity loop. One deadline bounds the whole call.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, overload

from ._attempt import Attempt
from ._clock import SYSTEM_CLOCK, Clock
from ._hooks import NULL_HOOK, CallOutcome, MetricsHook
from ._tracing import AttemptTracer
from .breaker import AsyncCircuitBreaker, BreakerPolicy
from .exceptions import CircuitOpenError
from .limiter import ProviderLimiter, RateLimiterLike, RateLimits
from .retry import Retrier, RetryCallStats, RetryPolicy

__all__ = ["ResiliencePolicy"]

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")

#: ``retry=None``: one attempt, and a call the breaker refuses fails at once.
_NO_RETRIES = RetryPolicy(max_retries=0, wait_for_breaker=False)


class ResiliencePolicy:
    """
    The library's parts around any coroutine function.

    ``retry ⊃ [breaker ⊃ limiter (requests, tokens, concurrency) ⊃ attempt timeout ⊃ call]``.
    Use it as a decorator (``@policy``) that keeps the function's signature, or
    as ``await policy.call(fn, *args, **kwargs)``.

    Args:
        name: The service name used in metrics, errors and logs.
        retry: The retry policy; None disables retries (and waiting for an open breaker).
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
        self.retry_policy = retry if retry is not None else _NO_RETRIES
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
        #: Opens each attempt's span; None (the default) unless instrumented.
        self.tracer: AttemptTracer | None = None
        if circuit_breaker is not None and limiter is not None:
            circuit_breaker.add_open_listener(limiter.interrupt_waiters)
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
        deadline_at: float | None = None,
        max_retries: int | None = None,
    ) -> R:
        """
        Run *send* (a zero-argument coroutine factory) through the whole policy.

        Args:
            send: Called once per attempt.
            tokens: The call's estimated token cost, for the limiter.
            settle: Maps a result to ``(used_tokens, headers)`` for the limiter.
            stats: Filled with the call's attempts and waits.
            retry: A retry policy for this call only (its retry budget is not shared).
            last_resort: The call has no fallback left: with
                ``RetryPolicy.wait_for_breaker`` a call the breaker refuses waits on
                the breaker's state (spending no retry) instead of raising.
            hold_permit: The result keeps the limiter's permit (its concurrency slot)
                until it is released, and reports the attempt's and the call's
                outcome when it ends: it must have ``hold(permit, context)``,
                ``outcome(ticket, latency)`` and ``call_done(started, attempts)``
                (a stream).
            deadline_at: The call's deadline on this policy's clock (a fallback
                chain passes one for all its providers); the policy's own
                ``deadline`` applies too, whichever comes first.
            max_retries: Retries for this call only, within this policy's retry
                budget.

        Returns:
            What *send* returned.
        """
        hook = self.hook
        name = self.name
        clock = self.clock
        hook.call_started(name)
        started = clock.monotonic()
        stats = stats if stats is not None else RetryCallStats()
        retrier = self.retrier
        if retry is not None and retry != self.retry_policy:
            retrier = Retrier(retry, service=name, hook=hook, clock=clock)
        own = retrier.policy.deadline
        if own is not None and (deadline_at is None or started + own < deadline_at):
            deadline_at = started + own
        wait_open = last_resort and retrier.policy.wait_for_breaker
        attempt = Attempt(self, send, tokens, settle, hold_permit, wait_open, deadline_at)
        try:
            result = await retrier.run(
                attempt.run if self.tracer is None else attempt.traced,
                stats=stats,
                last_resort=last_resort,
                deadline_at=deadline_at,
                max_retries=max_retries,
                bounded=True,
            )
        except Exception as exc:
            # Turned away by the open breaker: shed load, not a failure at the provider.
            outcome: CallOutcome = "shed" if isinstance(exc, CircuitOpenError) else "failure"
            hook.call_finished(name, outcome, clock.monotonic() - started, stats.attempts)
            raise
        except BaseException:
            hook.call_finished(name, "cancelled", clock.monotonic() - started, stats.attempts)
            raise
        if hold_permit:  # a stream reports the call when it ends
            result.call_done(started, stats.attempts)  # type: ignore[attr-defined]
        else:
            hook.call_finished(name, "success", clock.monotonic() - started, stats.attempts)
        return result

    def _set_hook(self, hook: MetricsHook) -> None:
        """Send the events of every part (retrier, limiter, breaker) to *hook* from now on."""
        self.hook = hook
        self.retrier._set_hook(hook)
        for part in (self.limiter, self.breaker):
            set_hook = getattr(part, "_set_hook", None)  # a limiter of the user's may not have it
            if set_hook is not None:
                set_hook(hook)

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
