# SPDX-License-Identifier: MIT
"""A fake `Clock` for tests: sleeping advances time and returns at once."""

from __future__ import annotations

import asyncio

__all__ = ["FakeClock"]


class FakeClock:
    """
    A `llm_rate_limiter.Clock` whose time moves only when told to, or by sleeping.

    ``await clock.sleep(s)`` records *s*, advances both clocks by *s* and yields
    to the event loop once, so code under test never waits for real time.

    Args:
        start: Initial monotonic reading.
        wall_start: Initial wall-clock reading (Unix seconds).

    Attributes:
        sleeps: Every duration passed to `sleep`, in order.

    .. versionadded:: 0.1.0
    """

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The fake monotonic time."""
        return self._now

    def time(self) -> float:
        """The fake wall time; it moves with `monotonic`."""
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move time forward by *seconds* without yielding."""
        if seconds < 0:
            msg = f"cannot go back in time (advance by {seconds})"
            raise ValueError(msg)
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record *seconds*, advance by it, and yield to the loop once."""
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)
