# SPDX-License-Identifier: MIT
"""
`RetryBudget` and its state: requests and retries counted in fixed time buckets.

Memory is bounded (at most `MAX_BUCKETS` buckets per service) and every
operation is amortised O(1): totals are kept running, and a bucket leaving the
window is subtracted once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._validate import check_number

if TYPE_CHECKING:
    from .._clock import Clock

__all__ = ["MAX_BUCKETS", "BudgetWindow", "RetryBudget"]

#: Most buckets a window is cut into (one per second up to this many).
MAX_BUCKETS = 60


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """
    A cap on retries relative to recent traffic (in the manner of Envoy and Finagle).

    Within any sliding *window*, retries are allowed while fewer than
    ``ratio * requests + min_retries_per_second * window`` have been made,
    where *requests* counts calls (first attempts) in the window. A failing
    provider therefore cannot turn load into a retry storm.

    Attributes:
        ratio: Retries allowed per call made in the window.
        min_retries_per_second: A floor, so that a quiet service can still retry.
        window: Length of the sliding window, in seconds.

    .. versionadded:: 0.1.0
    """

    ratio: float = 0.2
    min_retries_per_second: float = 1.0
    window: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", check_number("budget.ratio", self.ratio))
        floor = check_number("budget.min_retries_per_second", self.min_retries_per_second)
        object.__setattr__(self, "min_retries_per_second", floor)
        window = check_number("budget.window", self.window, inclusive=False)
        object.__setattr__(self, "window", window)


class BudgetWindow:
    """
    A sliding window of request and retry counts that decides whether a retry may go.

    Args:
        budget: The budget's settings.
        clock: Where the time comes from.
    """

    __slots__ = (
        "_clock",
        "_current",
        "_floor",
        "_n",
        "_ratio",
        "_requests",
        "_requests_total",
        "_retries",
        "_retries_total",
        "_width",
    )

    def __init__(self, budget: RetryBudget, clock: Clock) -> None:
        self._clock = clock
        self._ratio = budget.ratio
        self._floor = budget.min_retries_per_second * budget.window
        self._n = n = max(1, min(MAX_BUCKETS, math.ceil(budget.window)))
        self._width = budget.window / n
        self._requests = [0] * n
        self._retries = [0] * n
        self._requests_total = 0
        self._retries_total = 0
        self._current = self._index()

    def _index(self) -> int:
        return math.floor(self._clock.monotonic() / self._width)

    def _advance(self) -> int:
        index = self._index()
        current = self._current
        if index > current:
            n = self._n
            # Empty each bucket that time has moved past (at most n of them).
            for k in range(current + 1, min(index, current + n) + 1):
                slot = k % n
                self._requests_total -= self._requests[slot]
                self._retries_total -= self._retries[slot]
                self._requests[slot] = 0
                self._retries[slot] = 0
            self._current = index
        return index % self._n

    def record_request(self) -> None:
        """Count one call (a first attempt)."""
        slot = self._advance()
        self._requests[slot] += 1
        self._requests_total += 1

    def allowed(self) -> float:
        """How many retries the window allows now (not counting those made)."""
        self._advance()
        return self._ratio * self._requests_total + self._floor

    def try_retry(self) -> bool:
        """Spend one retry if the budget allows it; return whether it did."""
        slot = self._advance()
        # The epsilon keeps float noise (0.2 * 3 = 0.6000000000000001) off the boundary.
        if self._retries_total + 1 > self._ratio * self._requests_total + self._floor + 1e-9:
            return False
        self._retries[slot] += 1
        self._retries_total += 1
        return True

    @property
    def retries(self) -> int:
        """Retries made in the current window."""
        self._advance()
        return self._retries_total

    @property
    def requests(self) -> int:
        """Calls made in the current window."""
        self._advance()
        return self._requests_total
