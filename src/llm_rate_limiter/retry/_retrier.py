# SPDX-License-Identifier: MIT
"""
The retry loop: a thin adapter over tenacity's `AsyncRetrying`.

The first attempt runs directly: a call that succeeds at once never builds a
tenacity object. Only after a retryable failure is a fresh `AsyncRetrying`
built for that call (a shared one corrupts its state under concurrency); the
first failure is replayed into it, so every retry decision, wait, stop and
hook goes through tenacity.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import NoReturn, ParamSpec, TypeVar, cast

from tenacity import AsyncRetrying

from .._clock import SYSTEM_CLOCK, Clock
from .._errors import RETRYABLE_BY_DEFAULT, RetryErrorType, classify_error
from .._hooks import NULL_HOOK, MetricsHook
from ..exceptions import (
    AttemptTimeoutError,
    CircuitOpenError,
    ConfigurationError,
    DeadlineExceededError,
    LLMRateLimiterError,
)
from ._backoff import RETRY_AFTER_SPREAD, backoff_delay, server_retry_after
from ._budget import BudgetWindow
from ._call import CallState
from ._policy import RetryPolicy, parse_retry_on
from ._stats import RetryCallStats, RetryStatistics

__all__ = ["Retrier", "retry_with_backoff"]

T = TypeVar("T")
P = ParamSpec("P")

_DEFAULT_POLICY = RetryPolicy()


class Retrier:
    """
    Retries calls to one service according to a `RetryPolicy`.

    Holds the policy, the retry budget's state, statistics, the metrics hook,
    the clock and the random source. One per service; safe to share between
    concurrent calls (each call that fails builds its own tenacity state).

    Args:
        policy: How to retry.
        service: The service name reported to the hook.
        hook: Receives ``retry_scheduled``, ``retry_gave_up`` and
            ``retry_budget_refused`` events.
        clock: Time and sleep (inject `llm_rate_limiter.testing.FakeClock` in tests).
        rng: Random numbers in ``[0, 1)`` for jitter.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_attempts",
        "_budget",
        "_budget_refusals",
        "_calls",
        "_clock",
        "_errors",
        "_give_ups",
        "_hook",
        "_retried_calls",
        "_retries",
        "_rng",
        "_successes",
        "_successes_on_retry",
        "_total_wait",
        "policy",
        "service",
    )

    def __init__(
        self,
        policy: RetryPolicy = _DEFAULT_POLICY,
        *,
        service: str = "default",
        hook: MetricsHook = NULL_HOOK,
        clock: Clock = SYSTEM_CLOCK,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not isinstance(policy, RetryPolicy):
            msg = f"must be a RetryPolicy, got {policy!r}"
            raise ConfigurationError("policy", msg)
        self.policy = policy
        self.service = service
        self._hook = hook
        self._clock = clock
        self._rng = rng
        self._budget = None if policy.budget is None else BudgetWindow(policy.budget, clock)
        self._calls = self._attempts = self._retries = self._successes = 0
        self._successes_on_retry = self._retried_calls = self._give_ups = 0
        self._budget_refusals = 0
        self._total_wait = 0.0
        self._errors: dict[RetryErrorType, int] = {}

    def _set_hook(self, hook: MetricsHook) -> None:
        """Send this retrier's events to *hook* from now on (instrumentation swaps it)."""
        self._hook = hook

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        stats: RetryCallStats | None = None,
        last_resort: bool = True,
        deadline_at: float | None = None,
        max_retries: int | None = None,
        bounded: bool = False,
    ) -> T:
        """
        Call *attempt* until it succeeds or the policy gives up.

        Args:
            attempt: Makes one attempt; called once per attempt.
            stats: Filled in with this call's attempts, wait and errors.
            last_resort: The call has no fallback left, so with
                ``policy.wait_for_breaker`` an open breaker's refusal is waited
                out (after its ``retry_after``) instead of ending the call.
            deadline_at: The call's deadline on this retrier's clock, instead of
                ``now + policy.deadline``.
            max_retries: Retries for this call only (the retry budget still applies).
            bounded: *attempt* ends by the deadline by itself (as a
                `ResiliencePolicy` attempt does), so no timer cuts it from outside.

        Returns:
            The first successful result.

        Raises:
            Exception: The last attempt's own exception when giving up (with a
                note saying how many attempts were made and how long was waited);
                non-retryable errors and cancellation at once, unchanged.
            DeadlineExceededError: The deadline passed before any attempt finished.

        .. versionadded:: 0.1.0
        """
        self._calls += 1
        if self._budget is not None:
            self._budget.record_request()
        wait_open = last_resort and self.policy.wait_for_breaker
        if deadline_at is None and self.policy.deadline is not None:
            deadline_at = self._clock.monotonic() + self.policy.deadline
        if deadline_at is not None and not bounded:
            return await self._run_with_deadline(
                CallState(self, attempt, stats, deadline_at, wait_open, max_retries)
            )
        self._attempts += 1
        try:
            result = await attempt()
        except Exception as exc:
            first = exc
        else:
            self._successes += 1
            if stats is not None:
                stats.attempts = 1
            return result
        call = CallState(self, attempt, stats, deadline_at, wait_open, max_retries)
        return await self._retry(call, first)

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """
        ``await fn(*args, **kwargs)`` with retries: `run` for a function and its arguments.

        .. versionadded:: 0.1.0
        """
        return await self.run(functools.partial(fn, *args, **kwargs))

    async def _run_with_deadline(self, call: CallState[T]) -> T:
        assert call.deadline_at is not None
        deadline = max(0.0, call.deadline_at - self._clock.monotonic())
        # The stop condition keeps waits inside the deadline on self._clock; this
        # hard limit on the loop's clock cuts an attempt that runs past it.
        timeout = asyncio.timeout(deadline)
        try:
            async with timeout:
                return await call.first_attempt()
        except TimeoutError:
            if not timeout.expired():
                raise
        self._deadline_cut(call, deadline)

    def _deadline_cut(self, call: CallState[T], deadline: float) -> NoReturn:
        call.finish()
        last = call.last_exc
        if last is None:
            self._give_ups += 1
            self._hook.retry_gave_up(self.service, call.attempts, RetryErrorType.TIMEOUT)
            msg = f"deadline of {deadline:g}s passed before the first attempt finished"
            raise DeadlineExceededError(msg)
        call.reason = "deadline"
        self._give_up(call, last)
        raise last

    async def _retry(self, call: CallState[T], first: Exception) -> T:
        if not self._note_failure(call, first):
            call.finish()
            raise first
        call.first = first
        retrying = AsyncRetrying(
            sleep=self._clock.sleep,
            stop=call.stop,
            wait=call.wait,
            retry=call.retry,
            before_sleep=call.before_sleep,
            reraise=True,
        )
        try:
            result = cast("T", await retrying(call.fn))
        except Exception as exc:
            failed = exc
        else:
            self._successes += 1
            self._successes_on_retry += call.attempts > 1
            call.finish()
            return result
        call.finish()
        if call.reason is not None and failed is call.last_exc:
            self._give_up(call, failed)
        raise failed

    def _note_failure(self, call: CallState[T], exc: Exception) -> bool:
        kind = classify_error(exc)
        self._errors[kind] = self._errors.get(kind, 0) + 1
        call.kind = kind
        call.last_exc = exc
        if call.stats is not None:
            call.stats.errors.append(kind)
        if isinstance(exc, CircuitOpenError):
            return call.wait_open and kind in self.policy.retry_on
        # The library's own refusals are final; a timed-out attempt is a failure to retry.
        own = isinstance(exc, LLMRateLimiterError) and not isinstance(exc, AttemptTimeoutError)
        return kind in self.policy.retry_on and not own

    def _give_up(self, call: CallState[T], exc: Exception) -> None:
        self._give_ups += 1
        self._hook.retry_gave_up(self.service, call.attempts, call.kind)
        plural = "attempt" if call.attempts == 1 else "attempts"
        exc.add_note(
            f"llm_rate_limiter: gave up after {call.attempts} {plural} ({call.reason}), "
            f"waited {call.waited:.2f}s"
        )

    def delay_for(self, retry_number: int, exc: BaseException | None) -> float:
        """
        The wait before retry *retry_number* (1-based) after the failure *exc*.

        Without a usable Retry-After: full jitter over
        ``min(max_delay, base_delay * 2 ** (retry_number - 1))``. With one (and
        ``respect_retry_after``): the server's value capped at
        ``max_retry_after``, plus up to ``0.1 * (retry_after + base_delay)`` of
        jitter. The deadline is applied by the loop, not here.

        .. versionadded:: 0.1.0
        """
        policy = self.policy
        if isinstance(exc, CircuitOpenError) and exc.retry_after > 0:
            # Wait out the open breaker, spread so waiters don't return in lockstep.
            wait = min(exc.retry_after, policy.max_retry_after)
            return wait + self._rng() * RETRY_AFTER_SPREAD * (wait + policy.base_delay)
        if policy.respect_retry_after and exc is not None:
            hint = server_retry_after(exc)
            if hint is not None:
                wait = min(hint, policy.max_retry_after)
                if policy.jitter:
                    wait += self._rng() * RETRY_AFTER_SPREAD * (wait + policy.base_delay)
                return wait
        return backoff_delay(
            retry_number, policy.base_delay, policy.max_delay, jitter=policy.jitter, rng=self._rng
        )

    def statistics(self) -> RetryStatistics:
        """
        A snapshot of the counters since this retrier was created.

        .. versionadded:: 0.1.0
        """
        retried = self._retried_calls
        return RetryStatistics(
            calls=self._calls,
            attempts=self._attempts,
            retries=self._retries,
            successes=self._successes,
            successes_on_retry=self._successes_on_retry,
            retried_calls=retried,
            success_on_retry_rate=self._successes_on_retry / retried if retried else 0.0,
            total_wait=self._total_wait,
            error_types={kind.value: n for kind, n in self._errors.items()},
            give_ups=self._give_ups,
            budget_refusals=self._budget_refusals,
        )


async def retry_with_backoff(
    func: Callable[[], Awaitable[T]],
    max_retries: int = 3,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    retry_on: Iterable[RetryErrorType] | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 -- the seed's name for the deadline
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> T:
    """
    The seed's retry function: ``await func()`` with jittered exponential backoff.

    Args:
        func: Makes one attempt.
        max_retries: Retries after the first attempt.
        base_delay: Backoff of the first retry, in seconds.
        max_delay: Cap on the backoff, in seconds.
        retry_on: Error types to retry (default: transient network, rate
            limit, timeout and server errors).
        timeout: Total time budget, waits included (the policy's deadline).
        clock: Time and sleep (for tests).

    Returns:
        The first successful result.

    Raises:
        ConfigurationError: An impossible setting.
        Exception: As `Retrier.run`.

    .. versionadded:: 0.1.0
    """
    kinds = RETRYABLE_BY_DEFAULT if retry_on is None else parse_retry_on("retry_on", retry_on)
    policy = RetryPolicy(
        max_retries=max_retries,
        base_delay=base_delay,
        max_delay=max_delay,
        retry_on=kinds,
        deadline=timeout,
    )
    return await Retrier(policy, clock=clock).run(func)
