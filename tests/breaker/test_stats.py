# SPDX-License-Identifier: MIT
"""Tests of the breaker's monitoring: exact statistics, and the outcome windows."""

from __future__ import annotations

import pytest

from llm_rate_limiter.breaker import AsyncCircuitBreaker, BreakerPolicy
from llm_rate_limiter.breaker._stats import HISTORY_SIZE, RequestRecord, TransitionRecord
from llm_rate_limiter.breaker._window import FAILED, OK, SLOW, CountWindow, TimeWindow
from llm_rate_limiter.exceptions import CircuitOpenError
from llm_rate_limiter.testing import FakeClock
from tests.helpers import rate_limit_error, server_error

WALL = 1_700_000_000.0 - 1_000.0  # FakeClock's wall time minus its monotonic time


def scripted(clock: FakeClock) -> AsyncCircuitBreaker:
    """Run a breaker through a fixed script of calls and return it."""
    breaker = AsyncCircuitBreaker(
        BreakerPolicy(fail_max=2, reset_timeout=10.0, slow_call_duration=1.0),
        service="svc",
        clock=clock,
    )
    breaker.on_success(breaker.admit(), 0.5)
    clock.advance(1.0)
    breaker.on_success(breaker.admit(), 2.0)
    clock.advance(1.0)
    breaker.on_failure(breaker.admit(), server_error(), 1.0)
    breaker.on_failure(breaker.admit(), rate_limit_error(), 0.25)
    breaker.on_failure(breaker.admit(), server_error(), 1.0)  # opens at t=1002
    with pytest.raises(CircuitOpenError):
        breaker.admit()
    clock.advance(10.0)
    breaker.on_success(breaker.admit(), 3.0)  # half-open at 1012, closed by the trial
    breaker.on_cancel(breaker.admit())
    clock.advance(3.0)
    return breaker


class TestStatistics:
    def test_counts(self, clock):
        """Calls, outcomes, rejections and openings are counted exactly."""
        stats = scripted(clock).statistics()
        assert (6, 3, 2, 1, 1, 1, 0, 1) == (
            stats.total_calls,
            stats.successes,
            stats.failures,
            stats.ignored,
            stats.cancelled,
            stats.rejected,
            stats.consecutive_failures,
            stats.times_opened,
        )

    def test_response_times(self, clock):
        """Average and maximum cover every call; p50 and p95 the request history."""
        stats = scripted(clock).statistics()
        assert pytest.approx(7.75 / 6) == stats.avg_latency
        assert (1.0, 3.0, 3.0) == (stats.p50_latency, stats.p95_latency, stats.max_latency)

    def test_error_patterns(self, clock):
        """Errors are counted by kind, excluded kinds included."""
        assert {"server_error": 2, "rate_limit": 1} == dict(
            scripted(clock).statistics().error_patterns
        )

    def test_transitions_and_recovery(self, clock):
        """Transitions carry wall times in order; the recovery counts as a success."""
        stats = scripted(clock).statistics()
        assert (
            TransitionRecord(WALL + 1002.0, "closed", "open"),
            TransitionRecord(WALL + 1012.0, "open", "half_open"),
            TransitionRecord(WALL + 1012.0, "half_open", "closed"),
        ) == stats.transitions
        assert (1, 1, 1.0) == (
            stats.recovery_attempts,
            stats.recoveries,
            stats.recovery_success_rate,
        )

    def test_time_in_state(self, clock):
        """Time in each state adds up, the current state counted up to now."""
        stats = scripted(clock).statistics()
        assert {"closed": 5.0, "open": 10.0, "half_open": 0.0} == dict(stats.time_in_state)

    def test_request_history(self, clock):
        """The request history records time, outcome, latency and error kind per call."""
        history = scripted(clock).statistics().request_history
        assert 6 == len(history)
        assert RequestRecord(WALL + 1000.0, True, 0.5, None) == history[0]
        assert RequestRecord(WALL + 1002.0, False, 0.25, "rate_limit") == history[3]

    def test_state_and_window_after_recovery(self, clock):
        """After closing again the window starts empty, so no rate is reported."""
        stats = scripted(clock).statistics()
        assert ("svc", "closed", 0.0, 0, None, None) == (
            stats.service,
            stats.state,
            stats.seconds_until_trial,
            stats.window_calls,
            stats.failure_rate,
            stats.slow_call_rate,
        )

    def test_window_rates_while_closed(self, clock):
        """The failure and slow-call rates describe the calls in the window."""
        breaker = AsyncCircuitBreaker(
            BreakerPolicy(fail_max=10, slow_call_duration=1.0), clock=clock
        )
        breaker.on_success(breaker.admit(), 2.0)
        breaker.on_success(breaker.admit(), 0.1)
        breaker.on_failure(breaker.admit(), server_error(), 0.1)
        breaker.on_failure(breaker.admit(), server_error(), 5.0)
        stats = breaker.statistics()
        assert (4, 0.5, 0.5) == (stats.window_calls, stats.failure_rate, stats.slow_call_rate)

    def test_failed_recovery_lowers_the_rate(self, clock):
        """A trial that fails counts as a failed recovery attempt."""
        breaker = AsyncCircuitBreaker(BreakerPolicy(fail_max=1), clock=clock)
        breaker.on_failure(breaker.admit(), server_error(), 0.1)
        clock.advance(30.0)
        breaker.on_failure(breaker.admit(), server_error(), 0.1)
        clock.advance(30.0)
        breaker.on_success(breaker.admit(), 0.1)
        stats = breaker.statistics()
        assert (2, 1, 0.5, 2) == (
            stats.recovery_attempts,
            stats.recoveries,
            stats.recovery_success_rate,
            stats.times_opened,
        )

    def test_empty_statistics(self, clock):
        """A fresh breaker reports zeros and no latency or rates."""
        stats = AsyncCircuitBreaker(clock=clock).statistics()
        assert (0, None, None, None, None, None, ()) == (
            stats.total_calls,
            stats.avg_latency,
            stats.p50_latency,
            stats.max_latency,
            stats.recovery_success_rate,
            stats.failure_rate,
            stats.request_history,
        )

    def test_history_is_bounded(self, clock):
        """The request history keeps only the last HISTORY_SIZE calls."""
        breaker = AsyncCircuitBreaker(clock=clock)
        for i in range(HISTORY_SIZE + 50):
            breaker.on_success(breaker.admit(), float(i))
        history = breaker.statistics().request_history
        assert (HISTORY_SIZE, 50.0) == (len(history), history[0].latency)


class TestCountWindow:
    def test_totals_and_eviction(self):
        """The window holds the last N outcomes and keeps running totals."""
        window = CountWindow(3)
        for code in (FAILED | SLOW, OK, FAILED):
            window.record(code, 0.0)
        assert (3, 2, 1) == window.totals(0.0)
        window.record(OK, 0.0)  # pushes out FAILED | SLOW
        assert (3, 1, 0) == window.totals(0.0)

    def test_clear(self):
        """clear() empties the window."""
        window = CountWindow(2)
        window.record(FAILED, 0.0)
        window.clear()
        window.record(OK, 0.0)
        assert (1, 0, 0) == window.totals(0.0)


class TestTimeWindow:
    def test_old_buckets_expire(self):
        """Calls older than the window leave it, bucket by bucket."""
        window = TimeWindow(10.0, buckets=10)
        window.record(FAILED, 100.0)
        window.record(SLOW, 105.0)
        assert (2, 1, 1) == window.totals(109.9)
        assert (1, 0, 1) == window.totals(110.0)
        assert (0, 0, 0) == window.totals(115.0)

    def test_recycled_bucket_starts_empty(self):
        """A bucket reused one window later forgets its old counts."""
        window = TimeWindow(10.0, buckets=10)
        window.record(FAILED, 100.5)
        window.record(OK, 110.5)
        assert (1, 0, 0) == window.totals(110.5)

    def test_clear(self):
        """clear() empties every bucket."""
        window = TimeWindow(1.0)
        window.record(FAILED, 5.0)
        window.clear()
        assert (0, 0, 0) == window.totals(5.0)
