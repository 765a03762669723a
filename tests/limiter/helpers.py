# SPDX-License-Identifier: MIT
"""Limiter test helpers: a virtual loop clock, a recording hook, an admission recorder."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from llm_rate_limiter._hooks import NullHook
from llm_rate_limiter.limiter import ProviderLimiter

START = 1_000.0


class VirtualTime:
    """
    A loop clock that moves only when told to (like aiolimiter's MockLoopTime).

    `advance` and `run` jump from timer to timer, so timers fire in order and
    no test waits for real time.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.now = START

    def time(self) -> float:
        """The virtual loop time."""
        return self.now

    async def settle(self, rounds: int = 12) -> None:
        """Let every ready task run (no time passes)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    def _next_timer(self) -> float | None:
        scheduled = self.loop._scheduled  # type: ignore[attr-defined]
        return min((h.when() for h in scheduled if not h.cancelled()), default=None)

    async def advance(self, seconds: float) -> None:
        """Move time forward by *seconds*, firing due timers in order."""
        target = self.now + seconds
        while True:
            await self.settle()
            due = self._next_timer()
            if due is None or due > target:
                break
            self.now = max(self.now, due)
        self.now = target
        await self.settle()

    async def run(self, awaitable: Awaitable[Any]) -> Any:
        """Await *awaitable*, jumping time to each next timer while it is blocked."""
        task = asyncio.ensure_future(awaitable)
        while True:
            await self.settle()
            if task.done():
                return task.result()
            due = self._next_timer()
            if due is None:
                task.cancel()
                msg = "deadlock: the task waits but no timer is scheduled"
                raise AssertionError(msg)
            self.now = max(self.now, due)


def install(loop: asyncio.AbstractEventLoop) -> VirtualTime:
    """Patch *loop*'s clock with a fresh `VirtualTime` (left in place for asyncio.run loops)."""
    vt = VirtualTime(loop)
    loop.time = vt.time  # type: ignore[method-assign]
    return vt


@pytest.fixture(name="vt")
async def vt_fixture(monkeypatch: pytest.MonkeyPatch) -> VirtualTime:
    """The running loop's clock, virtual for the test."""
    loop = asyncio.get_running_loop()
    clock = VirtualTime(loop)
    monkeypatch.setattr(loop, "time", clock.time)
    return clock


class RecordingHook(NullHook):
    """A metrics hook that keeps the limiter's events."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def limiter_waited(self, service: str, seconds: float, tokens: float) -> None:
        self.events.append(("waited", service, seconds, tokens))

    def limiter_denied(self, service: str, reason: str) -> None:
        self.events.append(("denied", service, reason))

    def rate_limit_violation(self, service: str, retry_after: float | None) -> None:
        self.events.append(("violation", service, retry_after))

    def cooldown_started(self, service: str, seconds: float) -> None:
        self.events.append(("cooldown", service, seconds))

    def server_limits_seen(
        self, service: str, limit_requests: float | None, limit_tokens: float | None
    ) -> None:
        self.events.append(("limits", service, limit_requests, limit_tokens))

    def tokens_used(self, service: str, estimated: float, used: float | None) -> None:
        self.events.append(("tokens", service, estimated, used))


class Recorder:
    """Runs calls through a limiter and records when each was admitted."""

    def __init__(self, limiter: ProviderLimiter, vt: VirtualTime) -> None:
        self.limiter = limiter
        self.vt = vt
        self.admitted: list[tuple[str, float]] = []

    async def call(self, name: str, tokens: float = 0.0) -> None:
        async with self.limiter.acquire(tokens):
            self.admitted.append((name, self.vt.now - START))

    def start(self, name: str, tokens: float = 0.0) -> asyncio.Task[None]:
        return asyncio.ensure_future(self.call(name, tokens))

    def times(self) -> dict[str, float]:
        return {name: round(at, 6) for name, at in self.admitted}
