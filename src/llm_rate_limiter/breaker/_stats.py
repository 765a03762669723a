# SPDX-License-Identifier: MIT
"""
The circuit breaker's monitoring: what the seed asks of ``EnhancedCircuitBreaker``.

`BreakerRecorder` keeps bounded counters and histories as events happen
(synchronous, O(1)); `BreakerStatistics` is the frozen snapshot that
``AsyncCircuitBreaker.statistics()`` returns.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

__all__ = [
    "HISTORY_SIZE",
    "TRANSITION_HISTORY_SIZE",
    "BreakerRecorder",
    "BreakerStatistics",
    "RequestRecord",
    "TransitionRecord",
]

#: How many finished calls the request history keeps (the seed's "last 100").
HISTORY_SIZE = 100
#: How many state transitions the transition history keeps.
TRANSITION_HISTORY_SIZE = 100

STATES = ("closed", "open", "half_open")


class TransitionRecord(NamedTuple):
    """
    One state change: wall-clock *time* (Unix seconds), *old* and *new* state.

    .. versionadded:: 0.1.0
    """

    time: float
    old: str
    new: str


class RequestRecord(NamedTuple):
    """
    One finished call: wall-clock *time*, *ok*, *latency* in seconds, *error* kind value or None.

    Errors the policy excludes are recorded with ``ok=False`` and their kind.

    .. versionadded:: 0.1.0
    """

    time: float
    ok: bool
    latency: float
    error: str | None


@dataclass(frozen=True, slots=True)
class BreakerStatistics:
    """
    A snapshot of one breaker's state and history.

    Attributes:
        service: The service the breaker guards.
        state: ``"closed"``, ``"open"`` or ``"half_open"``.
        seconds_until_trial: Seconds until a trial call is allowed (0 unless open).
        total_calls: Finished calls recorded (successes, failures, excluded errors).
        successes: Calls that succeeded.
        failures: Calls that failed with an error that counts.
        ignored: Calls that failed with an excluded error kind.
        cancelled: Calls cancelled before they finished (never counted).
        rejected: Calls refused by the breaker (open, or no trial slot free).
        consecutive_failures: pybreaker's counter of consecutive counted failures.
        times_opened: How often the breaker opened.
        window_calls: Calls in the failure-rate window (closed state only).
        failure_rate: Failed share of the window's calls, None while it is empty.
        slow_call_rate: Slow share of the window's calls, None while it is empty.
        error_patterns: Error count per `RetryErrorType` value (excluded kinds too).
        transitions: The last state changes, oldest first.
        request_history: The last finished calls, oldest first.
        recovery_attempts: Times the breaker went half-open to try the service.
        recoveries: Times trial calls closed it again.
        recovery_success_rate: ``recoveries`` over the finished recovery
            attempts (those that closed or reopened it), None before the first.
        time_in_state: Seconds spent in each state, the current one included.
        avg_latency: Mean latency of every timed call, None before the first.
        p50_latency: Median latency over the request history.
        p95_latency: 95th percentile (nearest rank) over the request history.
        max_latency: Longest latency ever recorded.

    .. versionadded:: 0.1.0
    """

    service: str
    state: str
    seconds_until_trial: float
    total_calls: int
    successes: int
    failures: int
    ignored: int
    cancelled: int
    rejected: int
    consecutive_failures: int
    times_opened: int
    window_calls: int
    failure_rate: float | None
    slow_call_rate: float | None
    error_patterns: Mapping[str, int]
    transitions: tuple[TransitionRecord, ...]
    request_history: tuple[RequestRecord, ...]
    recovery_attempts: int
    recoveries: int
    recovery_success_rate: float | None
    time_in_state: Mapping[str, float]
    avg_latency: float | None
    p50_latency: float | None
    p95_latency: float | None
    max_latency: float | None


def _nearest_rank(ordered: list[float], q: float) -> float:
    """The *q* quantile of sorted *ordered* by the nearest-rank method."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


class BreakerRecorder:
    """
    Counters and bounded histories of one breaker, updated as events happen.

    Attributes are public to the breaker adapter, which updates the hot ones
    inline; nobody else writes them.

    Args:
        now: The monotonic time the breaker was created (closed).
    """

    __slots__ = (
        "cancelled",
        "entered_at",
        "error_patterns",
        "failed_recoveries",
        "failures",
        "history",
        "ignored",
        "latency_max",
        "latency_sum",
        "recoveries",
        "recovery_attempts",
        "rejected",
        "state_seconds",
        "successes",
        "times_opened",
        "transitions",
    )

    def __init__(self, now: float) -> None:
        self.successes = 0
        self.failures = 0
        self.ignored = 0
        self.cancelled = 0
        self.rejected = 0
        self.times_opened = 0
        self.recovery_attempts = 0
        self.recoveries = 0
        self.failed_recoveries = 0
        self.latency_sum = 0.0
        self.latency_max = 0.0
        self.error_patterns: dict[str, int] = {}
        self.history: deque[tuple[float, bool, float, str | None]] = deque(maxlen=HISTORY_SIZE)
        self.transitions: deque[TransitionRecord] = deque(maxlen=TRANSITION_HISTORY_SIZE)
        self.state_seconds = dict.fromkeys(STATES, 0.0)
        self.entered_at = now

    def record_error(self, wall: float, latency: float, kind: str, *, counted: bool) -> None:
        """Record a call that ended with an error of *kind* (counted or excluded)."""
        if counted:
            self.failures += 1
        else:
            self.ignored += 1
        self.error_patterns[kind] = self.error_patterns.get(kind, 0) + 1
        self.latency_sum += latency
        if latency > self.latency_max:
            self.latency_max = latency
        self.history.append((wall, False, latency, kind))

    def record_transition(self, wall: float, now: float, old: str, new: str) -> None:
        """Record a state change at wall time *wall* and monotonic time *now*."""
        self.state_seconds[old] += now - self.entered_at
        self.entered_at = now
        self.transitions.append(TransitionRecord(wall, old, new))
        if new == "open":
            self.times_opened += 1
            if old == "half_open":
                self.failed_recoveries += 1
        elif new == "half_open":
            self.recovery_attempts += 1
        elif old == "half_open":
            self.recoveries += 1

    def snapshot(
        self,
        *,
        service: str,
        state: str,
        now: float,
        seconds_until_trial: float,
        consecutive_failures: int,
        window: tuple[int, int, int],
    ) -> BreakerStatistics:
        """Freeze the counters, with the breaker's current state and window totals."""
        calls, failures, slow = window
        timed = self.successes + self.failures + self.ignored
        p50, p95 = self.latency_quantiles()
        finished = self.recoveries + self.failed_recoveries
        return BreakerStatistics(
            service=service,
            state=state,
            seconds_until_trial=seconds_until_trial,
            total_calls=timed,
            successes=self.successes,
            failures=self.failures,
            ignored=self.ignored,
            cancelled=self.cancelled,
            rejected=self.rejected,
            consecutive_failures=consecutive_failures,
            times_opened=self.times_opened,
            window_calls=calls,
            failure_rate=failures / calls if calls else None,
            slow_call_rate=slow / calls if calls else None,
            error_patterns=MappingProxyType(dict(self.error_patterns)),
            transitions=tuple(self.transitions),
            request_history=tuple(RequestRecord(*entry) for entry in self.history),
            recovery_attempts=self.recovery_attempts,
            recoveries=self.recoveries,
            recovery_success_rate=self.recoveries / finished if finished else None,
            time_in_state=MappingProxyType(self.time_in_state(state, now)),
            avg_latency=self.latency_sum / timed if timed else None,
            p50_latency=p50,
            p95_latency=p95,
            max_latency=self.latency_max if timed else None,
        )

    def time_in_state(self, state: str, now: float) -> dict[str, float]:
        """Seconds per state, counting the current *state* up to *now*."""
        spent = dict(self.state_seconds)
        spent[state] += now - self.entered_at
        return spent

    def latency_quantiles(self) -> tuple[float | None, float | None]:
        """The p50 and p95 latency over the request history."""
        ordered = sorted(entry[2] for entry in self.history)
        if not ordered:
            return None, None
        return _nearest_rank(ordered, 0.5), _nearest_rank(ordered, 0.95)
