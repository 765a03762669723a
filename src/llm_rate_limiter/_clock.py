# SPDX-License-Identifier: MIT
"""
Time, injectable: every policy part reads the clock and sleeps through a `Clock`.

Tests pass `llm_rate_limiter.testing.FakeClock`, which advances on ``sleep``
and returns at once, so no test waits for real time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    """
    Monotonic time, wall time and sleeping.

    .. versionadded:: 0.1.0
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations and deadlines)."""
        ...

    def time(self) -> float:
        """Seconds since the Unix epoch (for wall-clock state such as pybreaker's)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for *seconds*."""
        ...


class SystemClock:
    """
    The real clocks and `asyncio.sleep`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        """Sleep with `asyncio.sleep`."""
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
