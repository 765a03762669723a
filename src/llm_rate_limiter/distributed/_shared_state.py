# SPDX-License-Identifier: MIT
"""
`SharedState`: is Redis answering? Bounded calls, transitions and one background probe.

Every Redis operation of a shared limiter goes through `SharedState.call`,
which bounds it by ``redis_timeout`` (`asyncio.timeout`). A connection
error is tried once more within that bound, after dropping the client's
idle connections (after a Redis restart every pooled connection is stale,
and redis-py clients built from a URL with timeouts do not retry). A Redis error
(connection refused or reset, a ``LOADING`` or ``READONLY`` reply, any
``RedisError``) or a timeout makes the state *unavailable*: a warning is
logged once (logger ``llm_rate_limiter``), the hook's
``shared_state_changed(service, False)`` is called if it has one, and one
background task probes Redis every ``probe_interval`` seconds, on the same
wall-clock instants in every process (never the calls: while unavailable
they do not touch Redis at all). When a probe and
the owner's re-seeding succeed, the state is available again (a second
warning, ``shared_state_changed(service, True)``).

A timed-out command may still run on Redis later (a stalled server resumes
and executes what was sent): its effects are then those of a command that
succeeded unseen, which the owner must tolerate (see ``_redis_admission``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from ._redis_client import FAILURES, TORN_DOWN, describe

__all__ = ["PROBE_INTERVAL", "SharedState", "Unavailable"]

T = TypeVar("T")

logger = logging.getLogger("llm_rate_limiter")

#: Seconds between two probes of an unavailable Redis.
PROBE_INTERVAL = 1.0


def _next_probe(interval: float) -> float:
    """
    Seconds until the next probe: the next multiple of *interval* on the wall clock.

    Every process (on hosts whose clocks agree to a few milliseconds) probes
    at the same instants, so they find Redis again together instead of
    spread over a whole interval; never sooner than half an interval.
    """
    delay = interval - time.time() % interval
    return delay + interval if delay < interval / 2.0 else delay


class Unavailable(Exception):
    """The shared state did not answer (internal: callers fall back or fail closed)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SharedState:
    """
    Whether one limiter's Redis is answering, and the probe that finds out again (internal).

    Args:
        service: The service name, for logs and the hook.
        timeout: ``redis_timeout``: the longest any operation may take, seconds.
        failure: ``"open"`` or ``"closed"``, for the log message.
        hook: The metrics hook (``shared_state_changed`` is called if it exists).
        probe: Called by the prober to check Redis and re-seed it; it uses
            ``call(..., probing=True)`` and raises `Unavailable` on failure.
        on_change: Called synchronously with the new availability.
        reset: Drops the client's idle connections (after a connection
            error, before the one retry: they may all be stale).
        probe_interval: Seconds between two probes.
        where: Names the Redis node that serves the limiter (``host:port``:
            on a cluster, the shard of its keys), for the reason of an outage.
    """

    __slots__ = (
        "_failure",
        "_hook",
        "_on_change",
        "_probe",
        "_prober",
        "_reset",
        "_service",
        "_where",
        "available",
        "probe_interval",
        "reason",
        "timeout",
        "transitions",
    )

    def __init__(
        self,
        service: str,
        *,
        timeout: float,
        failure: Literal["open", "closed"],
        hook: Any,
        probe: Callable[[], Awaitable[None]],
        on_change: Callable[[bool], None],
        reset: Callable[[], Awaitable[None]] | None = None,
        probe_interval: float = PROBE_INTERVAL,
        where: Callable[[], str] = lambda: "redis",
    ) -> None:
        self._service = service
        self._where = where
        self.timeout = timeout
        self._failure = failure
        self._hook = hook
        self._probe = probe
        self._on_change = on_change
        self._reset = reset
        self.probe_interval = probe_interval
        self._prober: asyncio.Task[None] | None = None
        self.available = True
        self.reason = ""
        self.transitions = 0

    async def call(
        self, make: Callable[[], Awaitable[T]], *, extra: float = 0.0, probing: bool = False
    ) -> T:
        """
        Await ``make()`` within ``timeout + extra`` seconds.

        Raises:
            Unavailable: Redis failed or did not answer in time (the state
                becomes unavailable), or it was unavailable already (nothing
                is sent, unless *probing*).
        """
        if not (self.available or probing):
            raise Unavailable(self.reason)
        limit = self.timeout + extra
        try:
            async with asyncio.timeout(limit):
                try:
                    return await make()
                except TORN_DOWN:
                    # A pooled connection may have outlived its server (a restart):
                    # drop the idle ones and try once more on a fresh one.
                    if self._reset is not None:
                        await self._reset()
                    return await make()
        except TimeoutError:
            reason = f"no reply within {limit:g} s from {self._where()}"
        except FAILURES as exc:
            reason = f"{describe(exc)} (at {self._where()})"
        if not probing:
            self.down(reason)
        raise Unavailable(reason)

    def down(self, reason: str) -> None:
        """Mark the shared state unavailable (once per outage) and start probing."""
        if not self.available:
            return
        self.available = False
        self.reason = reason
        self.transitions += 1
        what = (
            "limiting locally to this process's share"
            if self._failure == "open"
            else "failing calls closed"
        )
        logger.warning(
            "shared state of %r unavailable (%s): %s until Redis answers again",
            self._service,
            reason,
            what,
            extra={
                "llmrl": {
                    "event": "shared_state_changed",
                    "service": self._service,
                    "available": False,
                    "reason": reason,
                    "redis_failure": self._failure,
                }
            },
        )
        self._notify(False)
        if self._prober is None or self._prober.done():
            self._prober = asyncio.get_running_loop().create_task(self._probing())

    def _up(self) -> None:
        self.available = True
        self.reason = ""
        self.transitions += 1
        logger.warning(
            "shared state of %r available again: limits are shared through Redis",
            self._service,
            extra={
                "llmrl": {
                    "event": "shared_state_changed",
                    "service": self._service,
                    "available": True,
                }
            },
        )
        self._notify(True)

    def _notify(self, available: bool) -> None:
        self._on_change(available)
        changed = getattr(self._hook, "shared_state_changed", None)
        if changed is not None:
            changed(self._service, available)

    async def _probing(self) -> None:
        """Probe every ``probe_interval`` seconds until Redis answers and is re-seeded."""
        while True:
            await asyncio.sleep(_next_probe(self.probe_interval))
            try:
                await self._probe()
            except Unavailable as exc:
                self.reason = exc.reason
                continue
            except Exception as exc:  # a bug, not an outage: say so, keep probing
                logger.error("probing the shared state of %r failed: %r", self._service, exc)
                continue
            self._up()
            return

    async def aclose(self) -> None:
        """Stop probing."""
        prober, self._prober = self._prober, None
        if prober is not None and not prober.done():
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
