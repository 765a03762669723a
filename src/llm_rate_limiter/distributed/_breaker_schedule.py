# SPDX-License-Identifier: MIT
"""
`SyncScheduler`: when a `SharedCircuitBreaker` exchanges with Redis.

One exchange at a time (a lock, so no read overtakes this process's own
write), started from synchronous code (`kick`: now, or once more after the
running one) or by a timer (`arm`: the earliest requested moment wins). While
the shared state is unavailable only the timer (a probe) reaches Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ._background import Background

__all__ = ["SyncScheduler"]


class SyncScheduler:
    """The background exchanges of one breaker (internal; see the module docstring)."""

    __slots__ = (
        "_again",
        "_available",
        "_background",
        "_exchange",
        "_lock",
        "_stopped",
        "_task",
        "_timer",
    )

    def __init__(
        self,
        what: str,
        exchange: Callable[[], Awaitable[float]],
        available: Callable[[], bool],
        where: Callable[[], str] = lambda: "redis",
    ) -> None:
        self._exchange = exchange
        self._available = available
        self._background = Background(what, where)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False

    @property
    def stopped(self) -> bool:
        """True once `stop` was called."""
        return self._stopped

    async def now(self) -> float:
        """Run one exchange now (after the one running, if any)."""
        async with self._lock:
            return await self._exchange()

    def kick(self, *, probe: bool = False) -> None:
        """Start a background exchange, or have the running one go again."""
        if self._stopped or not (probe or self._available()):
            return
        if self._task is not None:
            self._again = True
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # sync code outside a loop: the next kick in one sends it
            return
        self._task = loop.create_task(self._run())
        self._background.track(self._task)

    def arm(self, delay: float, *, replace: bool = False) -> None:
        """Kick (as a probe) in *delay* seconds, unless an earlier kick is armed (or *replace*)."""
        if self._stopped:
            return
        loop = asyncio.get_running_loop()
        timer = self._timer
        if timer is not None:
            if not replace and timer.when() <= loop.time() + delay:
                return
            timer.cancel()
        self._timer = loop.call_later(delay, self._ring)

    async def flush(self) -> None:
        """Wait until the exchanges started so far are done."""
        await self._background.flush()

    async def stop(self) -> None:
        """No more background exchanges; wait for the running one."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush()

    async def _run(self) -> None:
        try:
            again = True
            while again:
                self._again = False
                await self.now()
                again = self._again and self._available() and not self._stopped
        finally:
            self._task = None

    def _ring(self) -> None:
        self._timer = None
        self.kick(probe=True)
