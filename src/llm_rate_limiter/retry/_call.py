# SPDX-License-Identifier: MIT
"""
One failing call's retry state, and the callbacks it gives tenacity.

Built only after a first attempt failed; never shared between calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from tenacity import RetryCallState

from .._errors import RetryErrorType

if TYPE_CHECKING:
    from ._retrier import Retrier
    from ._stats import RetryCallStats

__all__ = ["CallState"]

T = TypeVar("T")


class CallState(Generic[T]):
    """The state of one call that failed once: it feeds tenacity its callbacks."""

    __slots__ = (
        "attempt",
        "attempts",
        "deadline_at",
        "first",
        "kind",
        "last_exc",
        "max_retries",
        "r",
        "reason",
        "stats",
        "wait_open",
        "waited",
    )

    def __init__(
        self,
        retrier: Retrier,
        attempt: Callable[[], Awaitable[T]],
        stats: RetryCallStats | None,
        deadline_at: float | None,
        wait_open: bool = False,
        max_retries: int | None = None,
    ) -> None:
        self.r = retrier
        self.max_retries = retrier.policy.max_retries if max_retries is None else max_retries
        self.wait_open = wait_open
        self.attempt = attempt
        self.stats = stats
        self.deadline_at = deadline_at
        self.attempts = 1
        self.waited = 0.0
        self.first: Exception | None = None
        self.last_exc: Exception | None = None
        self.kind = RetryErrorType.UNKNOWN
        self.reason: str | None = None

    async def first_attempt(self) -> T:
        """Run the first attempt, then retry through tenacity if it failed."""
        r = self.r
        r._attempts += 1
        try:
            result = await self.attempt()
        except Exception as exc:
            first = exc
        else:
            r._successes += 1
            self.finish()
            return result
        return await r._retry(self, first)

    async def fn(self) -> T:
        """Tenacity's function: replay the first failure, then run real attempts."""
        first = self.first
        if first is not None:
            self.first = None
            raise first
        r = self.r
        r._attempts += 1
        r._retries += 1
        self.attempts += 1
        if self.attempts == 2:
            r._retried_calls += 1
        return await self.attempt()

    def retry(self, rs: RetryCallState) -> bool:
        """Tenacity's retry predicate: classify the failure and decide."""
        if rs.attempt_number == 1:
            return True  # the replayed first failure, already classified as retryable
        outcome = rs.outcome
        if outcome is None or not outcome.failed:
            return False
        exc = outcome.exception()
        if not isinstance(exc, Exception):
            return False  # cancellation and friends propagate at once
        if not self.r._note_failure(self, exc):
            self.reason = "not retryable"
            return False
        return True

    def wait(self, rs: RetryCallState) -> float:
        """Tenacity's wait: backoff with jitter, or the server's Retry-After plus jitter."""
        return self.r.delay_for(rs.attempt_number, self.last_exc)

    def stop(self, rs: RetryCallState) -> bool:
        """Tenacity's stop: attempts, then deadline, then budget."""
        r = self.r
        if rs.attempt_number > self.max_retries:
            self.reason = "attempts exhausted"
            return True
        deadline_at = self.deadline_at
        if deadline_at is not None and r._clock.monotonic() + rs.upcoming_sleep >= deadline_at:
            self.reason = "deadline"
            return True
        budget = r._budget
        if budget is not None and not budget.try_retry():
            r._budget_refusals += 1
            r._hook.retry_budget_refused(r.service)
            self.reason = "retry budget spent"
            return True
        return False

    def before_sleep(self, rs: RetryCallState) -> None:
        """Tenacity's before_sleep: account for the wait and tell the hook."""
        r = self.r
        delay = rs.upcoming_sleep
        self.waited += delay
        r._total_wait += delay
        r._hook.retry_scheduled(r.service, rs.attempt_number, delay, self.kind)

    def finish(self) -> None:
        """Copy the call's figures into the caller's `RetryCallStats`."""
        if self.stats is not None:
            self.stats.attempts = self.attempts
            self.stats.waited = self.waited
