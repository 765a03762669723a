# SPDX-License-Identifier: MIT
"""
Bounded time windows and percentiles for the metrics collector.

`MinuteWindow` keeps one bucket per minute of the last hour in a fixed ring of
60 slots, indexed by the minute number read from the clock: recording touches
one slot (resetting it first if it belongs to an older hour) and allocates
nothing, so memory stays flat however many events arrive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["MINUTES", "MinuteWindow", "percentile"]

#: Buckets kept: one per minute of the last hour.
MINUTES = 60


def percentile(values: Iterable[float], p: float) -> float | None:
    """
    Return the nearest-rank *p*-th percentile of *values*.

    The nearest rank is the smallest value with at least *p* percent of the
    values at or below it: for 1..100, p50 is 50, p95 is 95 and p99 is 99.

    Args:
        values: The samples (any order).
        p: The percentile, in (0, 100].

    Returns:
        The percentile, or None when there are no values.
    """
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class MinuteWindow:
    """
    Per-minute counters over the last hour, in a fixed ring of 60 buckets.

    Each field is a list of 60 numbers; `slot` returns the index of the
    current minute's bucket, clearing it first when it last held an older
    minute. Callers then add to ``window.<field>[index]`` directly.

    Attributes:
        calls: Calls started in each minute.
        successes: Calls that succeeded.
        failures: Calls that failed.
        denials: Limiter denials.
        tokens: Tokens consumed (used, or estimated when usage is unknown).
    """

    __slots__ = (
        "_hi",
        "_index",
        "_lo",
        "_stamps",
        "calls",
        "denials",
        "failures",
        "successes",
        "tokens",
    )

    def __init__(self) -> None:
        self._stamps: list[int] = [-1] * MINUTES
        # The bounds [lo, hi) and index of the minute slot() returned last.
        self._lo = self._hi = 0.0
        self._index = 0
        self.calls: list[int] = [0] * MINUTES
        self.successes: list[int] = [0] * MINUTES
        self.failures: list[int] = [0] * MINUTES
        self.denials: list[int] = [0] * MINUTES
        self.tokens: list[float] = [0.0] * MINUTES

    def slot(self, now: float) -> int:
        """Return the bucket index for time *now* (seconds), clearing a stale bucket."""
        if self._lo <= now < self._hi:  # the minute of the last event: nothing to do
            return self._index
        minute = int(now // 60.0)
        index = minute % MINUTES
        if self._stamps[index] != minute:
            self._stamps[index] = minute
            self.calls[index] = 0
            self.successes[index] = 0
            self.failures[index] = 0
            self.denials[index] = 0
            self.tokens[index] = 0.0
        self._lo, self._hi, self._index = minute * 60.0, (minute + 1) * 60.0, index
        return index

    def _series(self, field: str) -> list[float]:
        values: list[float] = getattr(self, field)
        return values

    def last_hour(self, field: str, now: float) -> list[float]:
        """
        Return *field* for each of the last 60 minutes, oldest first.

        Minutes with no bucket (nothing recorded, or older than an hour) are 0.
        """
        minute = int(now // 60.0)
        values = self._series(field)
        stamps = self._stamps
        out: list[float] = []
        for m in range(minute - MINUTES + 1, minute + 1):
            index = m % MINUTES
            out.append(values[index] if stamps[index] == m else 0)
        return out

    def total(self, field: str, now: float) -> float:
        """Return the sum of *field* over the last hour."""
        return sum(self.last_hour(field, now))

    def peak(self, field: str, now: float) -> float:
        """Return the largest one-minute value of *field* over the last hour."""
        return max(self.last_hour(field, now))

    def rate(self, field: str, now: float) -> float:
        """
        Estimate *field* over the sliding last 60 seconds.

        The current minute's count plus the previous minute's, weighted by the
        share of the previous minute still inside the 60-second window.
        """
        series = self.last_hour(field, now)
        elapsed = (now % 60.0) / 60.0
        return series[-1] + series[-2] * (1.0 - elapsed)
