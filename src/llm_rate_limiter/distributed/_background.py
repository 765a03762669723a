# SPDX-License-Identifier: MIT
"""`Background`: fire-and-forget Redis writes from synchronous methods, awaitable on demand."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["Background", "logger"]

logger = logging.getLogger("llm_rate_limiter.distributed")

#: Rounds of waiting in `Background.flush`.
_ROUNDS = 4


class Background:
    """
    The tasks a Redis backend started from synchronous code (internal).

    A failing task is logged (``llm_rate_limiter.distributed`` logger), never
    raised into the caller: the shared state is a best effort on top of the
    local one.
    """

    __slots__ = ("_tasks", "_what")

    def __init__(self, what: str) -> None:
        self._what = what
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
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "%s: shared update failed: %r", self._what, task.exception(), exc_info=False
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
