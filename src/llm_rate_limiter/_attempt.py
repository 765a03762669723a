# SPDX-License-Identifier: MIT
"""
`Attempt`: one attempt of a call, breaker ⊃ limiter ⊃ timeout ⊃ send.

The breaker is asked first (an open breaker consumes no quota). A call it
refuses either raises the refusal (a fallback is left) or waits on the
breaker's state, spending no retry. Then rate-limit capacity is taken; a call
queued there when the breaker opens is sent away at once (`WaitInterrupted`)
and asks the breaker again; one that got its capacity looks at the breaker
once more before sending. The send runs under the attempt timeout, cut
further by the call's deadline; so does every wait. A stream's breaker
outcome is recorded when the stream ends, not at its first chunk. A traced
policy runs each attempt through `Attempt.traced`, inside the span its
tracer opens (current while the attempt runs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, Protocol, TypeVar

import openai

from ._clock import Clock
from ._errors import RetryErrorType, classify_error, is_quota_error
from ._headers import parse_retry_after, parse_retry_delay
from ._hooks import MetricsHook
from ._tracing import AttemptTracer
from .breaker import AsyncCircuitBreaker
from .exceptions import AttemptTimeoutError, CircuitOpenError, DeadlineExceededError
from .limiter import PermitLike, RateLimiterLike, WaitInterrupted

__all__ = ["Attempt", "PolicyParts", "rate_limit_hint"]

T = TypeVar("T")
R = TypeVar("R")


class PolicyParts(Protocol):
    """What an `Attempt` uses of its `ResiliencePolicy`."""

    name: str
    hook: MetricsHook
    clock: Clock
    attempt_timeout: float | None
    limiter: RateLimiterLike | None
    breaker: AsyncCircuitBreaker | None
    tracer: AttemptTracer | None


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
        wait = parse_retry_after(headers)
        if wait is None:  # some providers say it in the body only (Gemini's RetryInfo)
            wait = parse_retry_delay(exc.body)
        return wait, headers
    return None


class Attempt(Generic[R]):
    """
    One attempt's composition for a result type *R*: breaker ⊃ limiter ⊃ timeout ⊃ send.

    Built once per call by `ResiliencePolicy`; `run` is what the retry loop calls.
    A call the breaker cannot let through waits on the breaker's state when
    *wait_open* (it has no fallback left), else the refusal is raised. Every
    wait and the send itself end by *deadline_at*.
    """

    __slots__ = (
        "_count",
        "_deadline_at",
        "_hold",
        "_policy",
        "_send",
        "_settle",
        "_tokens",
        "_wait_open",
    )

    def __init__(
        self,
        policy: PolicyParts,
        send: Callable[[], Awaitable[R]],
        tokens: float,
        settle: Callable[[R], tuple[float | None, Any]] | None,
        hold: bool = False,
        wait_open: bool = False,
        deadline_at: float | None = None,
    ) -> None:
        self._policy = policy
        self._send = send
        self._tokens = tokens
        self._settle = settle
        self._hold = hold
        self._wait_open = wait_open
        self._deadline_at = deadline_at
        self._count = 0

    async def traced(self) -> R:
        """`run` inside the span of the policy's tracer: what a traced policy's retry loop calls."""
        policy = self._policy
        tracer = policy.tracer
        if tracer is None:  # uninstrumented while the call ran
            return await self.run()
        self._count += 1
        with tracer.attempt(policy.name, self._count):
            return await self.run()

    async def run(self) -> R:
        """Run one attempt through breaker, limiter and timeout."""
        policy = self._policy
        breaker = policy.breaker
        ticket: Any = None
        if breaker is not None:
            try:
                ticket = breaker.admit()
            except CircuitOpenError as refused:
                ticket = await self._wait_for(breaker, refused, paced=policy.limiter is None)
        limiter = policy.limiter
        if limiter is None:
            return await self._send_guarded(ticket, None)
        ticket, context, permit = await self._acquire(limiter, ticket)
        try:
            result = await self._send_guarded(ticket, permit)
        except BaseException as exc:
            await context.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        if self._hold:  # the result (a stream) gives the permit back when closed
            result.hold(permit, context)  # type: ignore[attr-defined]
        else:
            await context.__aexit__(None, None, None)
        return result

    async def _wait_for(
        self, breaker: AsyncCircuitBreaker, refused: CircuitOpenError, *, paced: bool
    ) -> Any:
        """The breaker refused the call: wait on its state, or raise the refusal."""
        if not self._wait_open:
            raise refused
        return await breaker.wait_for_admission(self._deadline_at, paced=paced)

    async def _acquire(
        self, limiter: RateLimiterLike, ticket: Any
    ) -> tuple[Any, AbstractAsyncContextManager[PermitLike], PermitLike]:
        """Take rate-limit capacity, then look at the breaker again before sending."""
        breaker = self._policy.breaker
        while True:
            try:
                context = limiter.acquire(self._tokens)
                entering = context.__aenter__()
                if self._deadline_at is None:
                    permit = await entering
                else:
                    permit = await self._bounded(entering, "rate-limit capacity")
            except WaitInterrupted:  # the breaker opened while the call queued
                if breaker is None:
                    continue
                breaker.release(ticket)
                try:
                    ticket = breaker.admit()
                except CircuitOpenError as refused:
                    ticket = await self._wait_for(breaker, refused, paced=False)
                continue
            except Exception:  # refused by the limiter: never sent, not a cancellation
                if breaker is not None:
                    breaker.release(ticket)
                raise
            except BaseException:
                if breaker is not None:
                    breaker.on_cancel(ticket)
                raise
            if breaker is None:
                return ticket, context, permit
            try:
                breaker.recheck(ticket)
            except CircuitOpenError as refused:  # it opened as the call got its capacity
                await context.__aexit__(None, None, None)
                ticket = await self._wait_for(breaker, refused, paced=False)
                continue
            return ticket, context, permit

    async def _bounded(self, waiting: Awaitable[T], what: str) -> T:
        """Await *waiting*, but not past the call's deadline (which is set)."""
        assert self._deadline_at is not None
        left = self._deadline_at - self._policy.clock.monotonic()
        msg = f"deadline passed while waiting for {what} of {self._policy.name!r}"
        return await _within(waiting, left, lambda: DeadlineExceededError(msg))

    async def _send_guarded(self, ticket: Any, permit: Any) -> R:
        policy = self._policy
        clock = policy.clock
        breaker = policy.breaker
        hook = policy.hook
        limit = policy.attempt_timeout
        started = clock.monotonic()
        if self._deadline_at is not None:
            left = self._deadline_at - started
            limit = left if limit is None or left < limit else limit
        try:
            if limit is None:
                result = await self._send()
            else:
                name = policy.name
                result = await _within(
                    self._send(), limit, lambda: AttemptTimeoutError(name, limit)
                )
            # Settling parses the reply: a body that does not parse fails the attempt.
            used, headers = (None, None) if self._settle is None else self._settle(result)
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
            if permit is not None and permit.estimated and _refused(exc):
                permit.settle(used_tokens=0.0)  # the provider refused it: nothing was used
            if breaker is not None:
                breaker.on_failure(ticket, exc, latency)
            hook.attempt_finished(policy.name, latency, kind)
            raise
        except BaseException:
            if breaker is not None:
                breaker.on_cancel(ticket)
            raise
        latency = clock.monotonic() - started
        if self._hold:  # a stream's outcome is known when it ends: it reports it then
            result.outcome(ticket, latency)  # type: ignore[attr-defined]
        else:
            if breaker is not None:
                breaker.on_success(ticket, latency)
            hook.attempt_finished(policy.name, latency, None)
        if permit is not None and (used is not None or headers is not None):
            permit.settle(used_tokens=used, headers=headers)
        return result


async def _within(waiting: Awaitable[T], limit: float, error: Callable[[], Exception]) -> T:
    """Await *waiting* for at most *limit* seconds; past it raise ``error()``."""
    scope = asyncio.timeout(max(0.0, limit))
    try:
        async with scope:
            return await waiting
    except TimeoutError:
        if not scope.expired():
            raise
    raise error()


def _refused(exc: Exception) -> bool:
    """The provider answered with an error, or the connection failed before it could."""
    if isinstance(exc, openai.APIStatusError):
        return True
    return isinstance(exc, openai.APIConnectionError) and not isinstance(
        exc, openai.APITimeoutError
    )
