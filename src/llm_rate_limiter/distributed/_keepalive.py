# SPDX-License-Identifier: MIT
"""
`Keeper`: one limiter's heartbeat, live count and concurrency-lease renewal.

While a limiter is in use (it admitted or released a call within the last
``live_ttl`` seconds, or holds a slot) one background task runs the
``KEEPALIVE`` script every ``interval`` seconds: it marks this limiter alive
in a sorted set of ``(limiter id, expiry)`` (the ``live`` key), counts the
live limiters (the divisor of the local share if Redis later fails), renews
the leases of the slots this limiter holds, re-adding any that expired or
that a restarted Redis forgot, and keeps the generation key from expiring.

A renewal that raced a release (the slot was given back while the renewal
was on its way, and the renewal re-added it) is followed by a second
release, so a renewal never resurrects a returned slot for long.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from ._shared_state import SharedState, Unavailable

__all__ = ["Keeper"]


class Keeper:
    """
    The heartbeat and lease renewal of one limiter (internal).

    Args:
        script: The registered ``KEEPALIVE`` script.
        keys: ``[live, conc, gen]``.
        ident: This limiter's id in the live set.
        state: The shared state the calls go through.
        lease: Seconds a lease lasts.
        interval: Seconds between two renewals.
        release: Gives back slots a renewal may have re-added after their release.
    """

    __slots__ = (
        "_ident",
        "_interval",
        "_keys",
        "_last_used",
        "_lease",
        "_live_ttl",
        "_release",
        "_script",
        "_state",
        "holders",
        "live",
        "task",
    )

    def __init__(
        self,
        script: Callable[..., Awaitable[Any]],
        keys: list[str],
        *,
        ident: str,
        state: SharedState,
        lease: float,
        interval: float,
        release: Callable[[list[str]], Awaitable[None]],
    ) -> None:
        self._script = script
        self._keys = keys
        self._ident = ident
        self._state = state
        self._lease = lease
        self._interval = interval
        self._live_ttl = 3.0 * interval
        self._release = release
        self._last_used = 0.0
        self.holders: set[str] = set()
        self.live = 0
        self.task: asyncio.Task[None] | None = None

    def touch(self, now: float) -> None:
        """The limiter is in use at *now*: keep (or start) the heartbeat."""
        self._last_used = now
        task = self.task
        if (task is None or task.done()) and self._state.available:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def contact(self, *, probing: bool = False) -> str:
        """
        Run the script once; return the generation in force ('' when none).

        Raises:
            Unavailable: Redis did not answer.
        """
        sent = set(self.holders)
        args = [self._ident, self._live_ttl, self._lease, *sent]
        live, gen = await self._state.call(
            lambda: self._script(keys=self._keys, args=args), probing=probing
        )
        self.live = int(live)
        gone = sent - self.holders
        if gone:  # released while the renewal was on its way: release again
            await self._release(list(gone))
        return gen.decode() if isinstance(gen, bytes) else str(gen)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.holders or loop.time() - self._last_used < self._live_ttl:
            try:
                await self.contact()
            except Unavailable:  # the shared state probes from now on
                return
            await asyncio.sleep(self._interval)

    async def aclose(self) -> None:
        """Stop the heartbeat."""
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
