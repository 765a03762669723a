# SPDX-License-Identifier: MIT
"""
The call-outcome events of `MetricsCollector`: calls, attempts, retries, fallbacks.

Outcomes are kept apart: a call is served, failed (counted under the kind of
its final error: its last attempt's, the give-up's or the limiter denial's),
shed by the open breaker (handed to a fallback, or returned as an error) or
cancelled by the caller. The events of one call's ending run back to back, with
no other event of its service in between: a failing attempt (or a give-up) then
its ``call_finished``; a shed ``call_finished`` then the ``fallback_taken`` that
moves it on. So one pending value per service pairs them, in O(1).
"""

from __future__ import annotations

from bisect import bisect_left

from .._clock import Clock
from .._errors import RetryErrorType
from .._hooks import CallOutcome
from ._stats import LATENCY_BUCKETS, ServiceState, bump

__all__ = ["CallRecorder"]


class CallRecorder:
    """
    The `MetricsHook` methods about calls; `MetricsCollector` inherits them.

    .. versionadded:: 0.3.0
    """

    _clock: Clock
    _services: dict[str, ServiceState]

    def _add(self, service: str) -> ServiceState:
        raise NotImplementedError  # pragma: no cover -- MetricsCollector defines it

    def call_started(self, service: str) -> None:
        """Count a call and its minute bucket; track the peak in flight."""
        s = self._services.get(service) or self._add(service)
        s.calls_started += 1
        s.shed_pending = False
        now = self._clock.monotonic()
        w = s.window
        w.calls[w.slot(now)] += 1
        r = s.recent
        r.started[r.index if r.lo <= now < r.hi else r.slot(now)] += 1
        ended = s.calls_succeeded + s.calls_failed + s.calls_cancelled + s.calls_shed
        in_flight = s.calls_started - ended
        if in_flight > s.peak_in_flight:
            s.peak_in_flight = in_flight

    def call_finished(
        self, service: str, outcome: CallOutcome, latency: float, attempts: int
    ) -> None:
        """
        Count the outcome; keep the latency of calls served or failed.

        A failed call is counted under the kind of its final error (the last
        attempt's or the give-up's, ``unknown`` when no event told it); a shed
        call under where it went, when its fallback (if any) is taken.
        """
        s = self._services.get(service) or self._add(service)
        s.recent_outcomes.append(outcome)
        s.shed_pending = False
        if attempts > 1:
            s.retried_calls += 1
        now = self._clock.monotonic()
        r = s.recent
        slot = r.index if r.lo <= now < r.hi else r.slot(now)
        if outcome == "cancelled":
            s.calls_cancelled += 1
            r.cancelled[slot] += 1
            return
        if outcome == "shed":  # turned away by the open breaker: never reached the provider
            s.calls_shed += 1
            r.shed[slot] += 1
            s.shed_pending = True
            return
        w = s.window
        index = w.slot(now)
        if outcome == "success":
            s.calls_succeeded += 1
            w.successes[index] += 1
            r.served[slot] += 1
            if attempts > 1:
                s.succeeded_after_retry += 1
        else:
            s.calls_failed += 1
            w.failures[index] += 1
            r.failed[slot] += 1
            kind = s.pending_error or RetryErrorType.UNKNOWN
            s.failure_kinds[kind] = s.failure_kinds.get(kind, 0) + 1
            s.pending_error = None
        s.call_latency_total += latency
        if latency > s.call_latency_max:
            s.call_latency_max = latency
        s.recent_latencies.append(latency)
        s.latency_buckets[bisect_left(LATENCY_BUCKETS, latency)] += 1

    def attempt_finished(self, service: str, latency: float, error: RetryErrorType | None) -> None:
        """Count an attempt, its latency and its error type."""
        s = self._services.get(service) or self._add(service)
        s.attempts += 1
        s.attempt_latency_total += latency
        r = s.recent
        now = self._clock.monotonic()
        slot = r.index if r.lo <= now < r.hi else r.slot(now)
        r.attempts[slot] += 1
        r.attempt_latency[slot] += latency
        s.pending_error = error
        if error is not None:
            s.attempt_failures += 1
            s.errors[error] = s.errors.get(error, 0) + 1
            if error is RetryErrorType.AUTHENTICATION:
                r.authentication[slot] += 1

    def retry_scheduled(
        self, service: str, attempt: int, delay: float, error: RetryErrorType
    ) -> None:
        """Count a retry, its delay and the error that caused it."""
        s = self._services.get(service) or self._add(service)
        s.retries += 1
        s.pending_error = None  # that failure was not the call's last
        r = s.recent
        r.retries[r.at(self._clock.monotonic())] += 1
        s.retry_delay_total += delay
        s.retry_errors[error] = s.retry_errors.get(error, 0) + 1

    def retry_gave_up(self, service: str, attempts: int, error: RetryErrorType) -> None:
        """Count a call whose retries were exhausted; *error* is the kind it fails with."""
        s = self._services.get(service) or self._add(service)
        s.retry_gave_up += 1
        s.pending_error = error

    def retry_budget_refused(self, service: str) -> None:
        """Count a retry the budget refused."""
        s = self._services.get(service) or self._add(service)
        s.retry_budget_refused += 1

    def fallback_taken(self, service: str, fallback: str, reason: RetryErrorType) -> None:
        """Count a hand-over from *service* to *fallback* and why (a shed call's, or another's)."""
        s = self._services.get(service) or self._add(service)
        s.fallbacks += 1
        if s.shed_pending:  # the call just shed: it goes on to the fallback
            s.shed_pending = False
            s.shed_to_fallback += 1
        else:
            r = s.recent
            r.fallbacks[r.at(self._clock.monotonic())] += 1
        bump(s.fallback_targets, fallback)
        s.fallback_reasons[reason] = s.fallback_reasons.get(reason, 0) + 1
