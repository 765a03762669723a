# SPDX-License-Identifier: MIT
"""
Sliding windows of call outcomes for the failure-rate and slow-call trips.

Two shapes, as in resilience4j: `CountWindow` holds the last *N* calls in a
ring buffer; `TimeWindow` holds the calls of the last *S* seconds in a fixed
number of time buckets. Both keep running totals, so recording is O(1) and
allocation-free, and memory is bounded however many calls arrive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._policy import BreakerPolicy

__all__ = [
    "FAILED",
    "OK",
    "SLOW",
    "CountWindow",
    "OutcomeWindow",
    "TimeWindow",
    "make_window",
    "rates_exceeded",
]

#: Outcome codes (bit flags): a call is OK, or FAILED and/or SLOW.
OK = 0
FAILED = 1
SLOW = 2


class OutcomeWindow(Protocol):
    """The calls, failures and slow calls currently in a window."""

    def record(self, code: int, now: float) -> None:
        """Add one call with outcome *code* (bit flags) finished at *now*."""

    def totals(self, now: float) -> tuple[int, int, int]:
        """Return ``(calls, failures, slow_calls)`` in the window at *now*."""
        ...

    def clear(self) -> None:
        """Forget every call."""


class CountWindow:
    """
    The last *size* calls, in a ring buffer of outcome codes.

    Args:
        size: How many calls the window holds.
    """

    __slots__ = ("_buf", "_calls", "_failures", "_next", "_size", "_slow")

    def __init__(self, size: int) -> None:
        self._size = size
        self._buf = bytearray(size)
        self.clear()

    def clear(self) -> None:
        """Forget every call."""
        self._calls = 0
        self._failures = 0
        self._slow = 0
        self._next = 0

    def record(self, code: int, now: float) -> None:
        """Add one call, pushing out the oldest once the window is full."""
        i = self._next
        if self._calls == self._size:
            old = self._buf[i]
            if old:
                self._failures -= old & FAILED
                self._slow -= (old & SLOW) >> 1
        else:
            self._calls += 1
        self._buf[i] = code
        if code:
            self._failures += code & FAILED
            self._slow += (code & SLOW) >> 1
        i += 1
        self._next = 0 if i == self._size else i

    def totals(self, now: float) -> tuple[int, int, int]:
        """Return ``(calls, failures, slow_calls)``; *now* is unused."""
        return self._calls, self._failures, self._slow


class TimeWindow:
    """
    The calls of the last *seconds*, in *buckets* buckets of equal width.

    A bucket leaves the window as a whole, so the window covers between
    ``seconds * (1 - 1/buckets)`` and *seconds* of history.

    Args:
        seconds: The length of the window.
        buckets: How many buckets divide it.
    """

    __slots__ = ("_calls", "_epoch", "_failures", "_n", "_slow", "_width")

    def __init__(self, seconds: float, buckets: int = 10) -> None:
        self._n = buckets
        self._width = seconds / buckets
        self._calls = [0] * buckets
        self._failures = [0] * buckets
        self._slow = [0] * buckets
        self._epoch = [-1] * buckets

    def clear(self) -> None:
        """Forget every call."""
        for i in range(self._n):
            self._calls[i] = self._failures[i] = self._slow[i] = 0
            self._epoch[i] = -1

    def record(self, code: int, now: float) -> None:
        """Add one call to the bucket of *now*, recycling a bucket that expired."""
        epoch = int(now // self._width)
        slot = epoch % self._n
        if self._epoch[slot] != epoch:
            self._epoch[slot] = epoch
            self._calls[slot] = self._failures[slot] = self._slow[slot] = 0
        self._calls[slot] += 1
        if code:
            self._failures[slot] += code & FAILED
            self._slow[slot] += (code & SLOW) >> 1

    def totals(self, now: float) -> tuple[int, int, int]:
        """Return ``(calls, failures, slow_calls)`` of the buckets still inside the window."""
        oldest = int(now // self._width) - self._n + 1
        calls = failures = slow = 0
        for slot in range(self._n):
            if self._epoch[slot] >= oldest:
                calls += self._calls[slot]
                failures += self._failures[slot]
                slow += self._slow[slot]
        return calls, failures, slow


def make_window(policy: BreakerPolicy) -> OutcomeWindow:
    """The window *policy* asks for: time-based when ``window_seconds`` is set."""
    if policy.window_seconds is None:
        return CountWindow(policy.window_size)
    return TimeWindow(policy.window_seconds)


def rates_exceeded(policy: BreakerPolicy, calls: int, failures: int, slow: int) -> bool:
    """Tell whether the failure or slow-call rate reached the policy's threshold."""
    fail_limit = policy.failure_rate_threshold
    slow_limit = policy.slow_call_rate_threshold
    return (fail_limit is not None and failures >= fail_limit * calls) or (
        slow_limit is not None and slow >= slow_limit * calls
    )
