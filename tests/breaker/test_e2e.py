# SPDX-License-Identifier: MIT
"""
End to end: the real openai SDK through `AsyncCircuitBreaker` into the fault server's outage.

This test runs in real time (about two seconds): the fault server and the SDK
talk HTTP over 127.0.0.1, so the breaker runs on the system clock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import openai
import pytest

from llm_rate_limiter.breaker import AsyncCircuitBreaker, BreakerPolicy
from llm_rate_limiter.exceptions import CircuitOpenError
from llm_rate_limiter.testing import FaultServer
from tests.helpers import RecordingHook

pytestmark = pytest.mark.anyio

WORKERS = 10
FAIL_MAX = 3
RESET_TIMEOUT = 0.2
OUTAGE = 1.0
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


class TimedHook(RecordingHook):
    """Records each transition with its monotonic time and the server's request count."""

    def __init__(self, server: FaultServer) -> None:
        super().__init__()
        self.server = server
        self.timeline: list[tuple[float, str, str, int]] = []
        self.closed_again = asyncio.Event()

    def breaker_transition(self, service: str, old: str, new: str) -> None:
        """Note the time and how many requests the server has seen."""
        super().breaker_transition(service, old, new)
        self.timeline.append((time.monotonic(), old, new, self.server.stats().requests))
        if old == "half_open" and new == "closed":
            self.closed_again.set()


async def test_breaker_shields_a_dead_server_and_recovers():
    """Once open, only trial calls reach the dead server; it closes soon after recovery."""
    async with FaultServer() as server:
        hook = TimedHook(server)
        breaker = AsyncCircuitBreaker(
            BreakerPolicy(fail_max=FAIL_MAX, reset_timeout=RESET_TIMEOUT),
            service="mock",
            hook=hook,
        )
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        warm = asyncio.Event()
        successes = 0

        async def ask() -> object:
            return await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)

        async def worker() -> None:
            nonlocal successes
            while not hook.closed_again.is_set():
                try:
                    await breaker.call(ask)
                    successes += 1
                    if successes >= 2 * WORKERS:
                        warm.set()
                except CircuitOpenError as exc:
                    await asyncio.sleep(max(exc.retry_after, 0.01))
                except openai.InternalServerError:
                    pass

        try:
            with anyio.fail_after(20):
                async with anyio.create_task_group() as group:
                    for _ in range(WORKERS):
                        group.start_soon(worker)
                    await warm.wait()
                    before_outage = server.stats().requests
                    server.outage(OUTAGE)
                    outage_end = time.monotonic() + OUTAGE
        finally:
            await client.close()

        stats = server.stats()
        opened = [entry for entry in hook.timeline if entry[2] == "open"]
        trials = [entry for entry in hook.timeline if entry[2] == "half_open"]
        closed_at, _, _, requests_at_close = hook.timeline[-1]
        first_open_requests = opened[0][3]

        # Before opening: fail_max failures plus the calls already in flight.
        assert first_open_requests - before_outage <= FAIL_MAX + WORKERS
        # While open: at most one trial call per half-open period (plus the calls
        # admitted before opening whose requests were still being built).
        assert requests_at_close - first_open_requests <= len(trials) + WORKERS
        assert len(trials) <= OUTAGE / RESET_TIMEOUT + 2
        # The whole outage cost a few tens of requests at most, not hundreds.
        assert stats.outage_rejections <= FAIL_MAX + 2 * WORKERS + len(trials)
        # After the outage: closed within reset_timeout plus one trial call (plus
        # 0.1 s of scheduling slack on a busy machine).
        record = breaker.statistics()
        closing_wall = record.transitions[-1].time
        trial = [r for r in record.request_history if r.ok and r.time <= closing_wall][-1]
        assert closed_at - outage_end <= RESET_TIMEOUT + trial.latency + 0.1
        assert ("open", "half_open", "closed") == tuple(e[2] for e in hook.timeline[-3:])
