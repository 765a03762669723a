# SPDX-License-Identifier: MIT
"""`Background`: fire-and-forget Redis writes from synchronous methods, awaitable on demand."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ._redis_client import describe

__all__ = ["Background", "logger"]

logger = logging.getLogger("llm_rate_limiter.distributed")

#: Rounds of waiting in `Background.flush`.
_ROUNDS = 4


class Background:
    """
    The tasks a Redis backend started from synchronous code (internal).

    A failing task is logged (``llm_rate_limiter.distributed`` logger), never
    raised into the caller: the shared state is a best effort on top of the
    local one. One line per change: the first failure says what failed and
    where (``host:port``, the error's type and message), the failures after
    it are counted, and the first success after them says how many there were.

    Args:
        what: Who started the tasks, for the log.
        where: Names the Redis node the tasks talk to (``host:port``).
    """

    __slots__ = ("_failed", "_tasks", "_what", "_where")

    def __init__(self, what: str, where: Callable[[], str] = lambda: "redis") -> None:
        self._what = what
        self._where = where
        self._failed = 0  # failures since the last success (0: none logged)
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> bool:
        """Run *coro* in the running loop; without one, close it unrun and return False."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            logger.warning("%s: no running event loop; shared update not sent now", self._what)
            return False
        self.track(loop.create_task(coro))
        return True

    def track(self, task: asyncio.Future[Any]) -> None:
        """Count *task* among those `flush` waits for."""
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            if self._failed:
                logger.warning(
                    "%s: shared updates succeed again at %s (%d failed)",
                    self._what,
                    self._where(),
                    self._failed,
                )
                self._failed = 0
            return
        self._failed += 1
        if self._failed == 1:
            logger.warning(
                "%s: shared update failed at %s: %s; counting failures until one succeeds",
                self._what,
                self._where(),
                describe(exc),
            )

    async def flush(self) -> None:
        """
        Wait until every task started so far has finished (their errors are logged).

        Tasks those start as they finish (a refund after a script) are waited
        for too, for a few rounds: tasks that callers keep starting meanwhile
        cannot keep it waiting for ever.
        """
        for _ in range(_ROUNDS):
            if not self._tasks:
                return
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._tasks)
