# SPDX-License-Identifier: MIT
"""
The health window: what happened in the last ``window_seconds``, in a fixed ring.

`RecentWindow` cuts time into buckets ``window_seconds / BUCKETS`` wide and
keeps the last two windows of them (``2 * BUCKETS`` slots): the current window,
which health judges, and the one before it, which the trend compares against.
Recording touches one slot (clearing it first when it held an older bucket)
and allocates nothing, so memory stays flat however many events arrive.
"""

from __future__ import annotations

__all__ = ["BUCKETS", "FIELDS", "RecentWindow"]

#: Buckets per window: a call leaves the window between ``window_seconds * (1 - 1/BUCKETS)``
#: and ``window_seconds`` after it ended.
BUCKETS = 20

#: What each bucket counts.
FIELDS = (
    "started",  # calls started
    "served",  # calls that succeeded
    "failed",  # calls that failed (at the provider or locally)
    "shed",  # calls the open breaker turned away
    "cancelled",  # calls cancelled by the caller
    "attempts",  # attempts that ended
    "attempt_latency",  # their summed latency (seconds)
    "admissions",  # limiter admissions
    "denials",  # limiter denials
    "violations",  # server 429s despite local limiting
    "retries",  # retries scheduled
    "fallbacks",  # hand-overs to a fallback that were not shed calls
    "authentication",  # attempts refused with 401/403
    "quota",  # 429 insufficient_quota
)


class RecentWindow:
    """
    Event counts per bucket over the last two health windows.

    Each field of `FIELDS` is a list of ``2 * BUCKETS`` numbers; `slot`
    returns the index of the bucket of time *now*, clearing it first when it
    last held an older bucket. Callers then add to ``window.<field>[index]``;
    `at` is the same with the current bucket's bounds cached (the fast path of
    every event: two comparisons).

    Args:
        window_seconds: The length of one window.

    Attributes:
        window_seconds: The length of one window.
        width: The length of one bucket, ``window_seconds / BUCKETS``.
    """

    __slots__ = (
        "_stamps",
        "admissions",
        "attempt_latency",
        "attempts",
        "authentication",
        "cancelled",
        "denials",
        "failed",
        "fallbacks",
        "hi",
        "index",
        "lo",
        "quota",
        "retries",
        "served",
        "shed",
        "started",
        "violations",
        "width",
        "window_seconds",
    )

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = window_seconds
        self.width = window_seconds / BUCKETS
        size = 2 * BUCKETS
        self._stamps: list[int] = [-1] * size
        # The bounds [lo, hi) and slot index of the bucket last returned by slot().
        self.lo = self.hi = 0.0
        self.index = 0
        self.started: list[int] = [0] * size
        self.served: list[int] = [0] * size
        self.failed: list[int] = [0] * size
        self.shed: list[int] = [0] * size
        self.cancelled: list[int] = [0] * size
        self.attempts: list[int] = [0] * size
        self.attempt_latency: list[float] = [0.0] * size
        self.admissions: list[int] = [0] * size
        self.denials: list[int] = [0] * size
        self.violations: list[int] = [0] * size
        self.retries: list[int] = [0] * size
        self.fallbacks: list[int] = [0] * size
        self.authentication: list[int] = [0] * size
        self.quota: list[int] = [0] * size

    def bucket(self, now: float) -> int:
        """Return the number of the bucket holding time *now*."""
        return int(now // self.width)

    def at(self, now: float) -> int:
        """Return the slot index for time *now*: `slot`, without its work inside the last bucket."""
        if self.lo <= now < self.hi:
            return self.index
        return self.slot(now)

    def slot(self, now: float) -> int:
        """Return the slot index for time *now*, clearing a stale slot."""
        number = int(now // self.width)
        index = number % (2 * BUCKETS)
        if self._stamps[index] != number:
            self._stamps[index] = number
            for field in FIELDS:
                getattr(self, field)[index] = 0
        self.lo, self.hi, self.index = number * self.width, (number + 1) * self.width, index
        return index

    def sums(self, last: int) -> dict[str, float]:
        """
        Return each field summed over the window that ends with bucket *last*.

        That is buckets ``last - BUCKETS + 1`` to *last*; a bucket the ring no
        longer holds (or never held) counts as empty.
        """
        size = 2 * BUCKETS
        stamps = self._stamps
        held = [
            number % size
            for number in range(last - BUCKETS + 1, last + 1)
            if stamps[number % size] == number
        ]
        out: dict[str, float] = {}
        for field in FIELDS:
            values: list[float] = getattr(self, field)
            out[field] = sum(values[i] for i in held)
        return out
