# SPDX-License-Identifier: MIT
"""Tests of the retry budget's sliding window (`BudgetWindow`)."""

from __future__ import annotations

from llm_rate_limiter.retry import RetryBudget
from llm_rate_limiter.retry._budget import MAX_BUCKETS, BudgetWindow
from llm_rate_limiter.testing import FakeClock


def window(
    clock: FakeClock, ratio: float = 0.2, floor: float = 0.0, seconds: float = 10.0
) -> BudgetWindow:
    """A budget window on *clock*."""
    return BudgetWindow(RetryBudget(ratio, floor, seconds), clock)


class TestBudgetWindow:
    def test_ratio_of_requests(self, clock: FakeClock) -> None:
        """Ten calls at ratio 0.2 allow exactly two retries."""
        budget = window(clock)
        for _ in range(10):
            budget.record_request()

        assert [True, True, False] == [budget.try_retry() for _ in range(3)]

    def test_floor_without_traffic(self, clock: FakeClock) -> None:
        """A floor of 0.5 retries per second over 10 s allows five retries with no calls."""
        budget = window(clock, ratio=0.0, floor=0.5)

        assert [True] * 5 + [False] == [budget.try_retry() for _ in range(6)]

    def test_float_noise_does_not_cost_a_retry(self, clock: FakeClock) -> None:
        """Fifteen calls at ratio 0.2 allow three retries although 0.2 * 15 is not exact."""
        budget = window(clock)
        for _ in range(15):
            budget.record_request()

        assert [True, True, True, False] == [budget.try_retry() for _ in range(4)]

    def test_old_buckets_leave_the_window(self, clock: FakeClock) -> None:
        """Calls and retries older than the window stop counting, bucket by bucket."""
        budget = window(clock, ratio=1.0)
        budget.record_request()
        budget.record_request()
        clock.advance(5.0)
        budget.record_request()
        assert (3, True) == (budget.requests, budget.try_retry())

        clock.advance(5.0)
        assert (1, 1, 1.0) == (budget.requests, budget.retries, budget.allowed())

        clock.advance(10.0)
        assert (0, 0, 0.0) == (budget.requests, budget.retries, budget.allowed())

    def test_long_idle_period(self, clock: FakeClock) -> None:
        """After a long idle time the window is empty and recovers the full floor."""
        budget = window(clock, ratio=0.0, floor=0.1)
        assert [True, False] == [budget.try_retry(), budget.try_retry()]

        clock.advance(1e6)

        assert [True, False] == [budget.try_retry(), budget.try_retry()]

    def test_memory_is_bounded(self, clock: FakeClock) -> None:
        """A one-hour window keeps at most MAX_BUCKETS buckets."""
        budget = window(clock, seconds=3600.0)
        for _ in range(1000):
            budget.record_request()
            clock.advance(7.0)

        assert MAX_BUCKETS == len(budget._requests) == len(budget._retries)
