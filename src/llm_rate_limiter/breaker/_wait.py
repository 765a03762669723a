# SPDX-License-Identifier: MIT
"""
`WaitRoom`: calls waiting for an open (or busy half-open) breaker, woken by its state.

A call the breaker cannot let through does not poll and does not spend a
retry: it waits here until the breaker's state changes (it closes, opens
again, a trial slot comes free) or until the trial instant, whichever is
first. One timer per breaker rings the trial instant, on the breaker's clock,
for every waiter at once. When the breaker closes, the waiters that asked to
be paced are released in a short ramp of doubling batches (1, 2, 4, ... every
`RAMP_STEP` seconds) so a recovered provider does not meet the whole queue at
once; the others (a rate limiter paces them) are released together.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from .._clock import Clock

__all__ = ["RAMP_STEP", "WaitRoom"]

#: Seconds between two batches of waiters released after the breaker closed.
RAMP_STEP = 0.05


class WaitRoom:
    """The waiters of one breaker; see the module docstring."""

    __slots__ = ("_clock", "_ramps", "_timer", "_waiting")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._waiting: deque[tuple[asyncio.Future[None], bool]] = deque()
        self._timer: asyncio.Task[None] | None = None
        self._ramps: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._waiting)

    async def wait(self, trial_in: float, *, paced: bool) -> None:
        """
        Wait for the next state change, or *trial_in* seconds (0: no timer).

        Cancellation leaves the room cleanly.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        entry = (fut, paced)
        self._waiting.append(entry)
        if trial_in > 0.0 and self._timer is None:
            self._timer = loop.create_task(self._ring(trial_in))
        try:
            await fut
        finally:
            with contextlib.suppress(ValueError):
                self._waiting.remove(entry)
            if not self._waiting:
                self._stop_timer()  # nobody left to wake

    def wake(self, *, closed: bool = False) -> None:
        """
        Let every waiter look at the breaker again.

        Args:
            closed: The breaker has just closed: paced waiters leave the room
                for the ramp, the others go at once.
        """
        self._stop_timer()
        waiting = self._waiting
        if not waiting:
            return
        if not closed:
            for fut, _ in waiting:
                _resolve(fut)
            return
        paced = [fut for fut, slow in waiting if slow]
        for fut, slow in waiting:
            if not slow:
                _resolve(fut)
        waiting.clear()
        if paced:
            task = paced[0].get_loop().create_task(self._release(paced))
            self._ramps.add(task)
            task.add_done_callback(self._ramps.discard)

    def wake_soon(self) -> None:
        """`wake` once the current callback is done (after a state change it may cause)."""
        if self._waiting:
            self._waiting[0][0].get_loop().call_soon(self.wake)

    def close(self) -> None:
        """Stop the timer and the ramps (the breaker is going away); waiters look again."""
        self.wake()
        for ramp in list(self._ramps):
            ramp.cancel()

    async def _ring(self, seconds: float) -> None:
        """The trial instant: wake everyone (the first to look takes the trial slot)."""
        await self._clock.sleep(seconds)
        self._timer = None
        for fut, _ in self._waiting:
            _resolve(fut)

    async def _release(self, futures: list[asyncio.Future[None]]) -> None:
        batch = 1
        index = 0
        try:
            while index < len(futures):
                for fut in futures[index : index + batch]:
                    _resolve(fut)
                index += batch
                batch *= 2
                if index < len(futures):
                    await self._clock.sleep(RAMP_STEP)
        finally:  # cancelled: nobody is left behind
            for fut in futures[index:]:
                _resolve(fut)

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
