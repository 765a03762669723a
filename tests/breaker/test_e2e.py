# SPDX-License-Identifier: MIT
"""
End to end: the real openai SDK through `AsyncCircuitBreaker` into the fault server's outage.

This test runs in real time (about two seconds): the fault server and the SDK
talk HTTP over 127.0.0.1, so the breaker runs on the system clock.
"""

from __future__ import annotations

import asyncio
import itertools
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
        self.breaker: Any = None
        self.closed_again = asyncio.Event()

    def breaker_transition(self, service: str, old: str, new: str) -> None:
        """Note the time and how many requests the server has seen.

        An opening is timed by the breaker's own clock reading (the hook is called a little
        later, after the waiters are woken), so open periods are measured as it sees them.
        """
        super().breaker_transition(service, old, new)
        now = self.breaker._opened_at if new == "open" else time.monotonic()
        self.timeline.append((now, old, new, self.server.stats().requests))
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
        hook.breaker = breaker
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        warm = asyncio.Event()
        seen = {"ok": 0, "failed": 0, "rejected": 0}
        lags: list[float] = []  # how late each worker's sleep ended: this loop's lag, measured

        async def ask() -> object:
            return await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)

        async def worker() -> None:
            while not hook.closed_again.is_set():
                try:
                    await breaker.call(ask)
                    seen["ok"] += 1
                    if seen["ok"] >= 2 * WORKERS:
                        warm.set()
                except CircuitOpenError as exc:
                    seen["rejected"] += 1
                    delay = max(exc.retry_after, 0.01)
                    wake = time.monotonic() + delay
                    await asyncio.sleep(delay)
                    lags.append(time.monotonic() - wake)
                except openai.InternalServerError:
                    seen["failed"] += 1

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
        record = breaker.statistics()
        states = [entry[1:3] for entry in hook.timeline]
        opened = [entry for entry in hook.timeline if entry[2] == "open"]
        trials = [entry for entry in hook.timeline if entry[2] == "half_open"]
        closed_at, _, _, requests_at_close = hook.timeline[-1]
        first_open_at, first_open_requests = opened[0][0], opened[0][3]
        failed_trials = len(trials) - 1

        # The transitions: opened once, each failed trial reopened it, one trial closed it.
        assert failed_trials >= 1  # the outage outlasts several reset timeouts
        assert (
            [("closed", "open")]
            + [("open", "half_open"), ("half_open", "open")] * failed_trials
            + [("open", "half_open"), ("half_open", "closed")]
        ) == states
        assert (len(opened), len(trials), 1) == (
            record.times_opened,
            record.recovery_attempts,
            record.recoveries,
        )
        # Server, workers and breaker agree: every 503 was the outage's, seen and counted once.
        assert (seen["failed"], seen["failed"]) == (stats.outage_rejections, stats.server_errors)
        assert (seen["failed"], seen["rejected"], seen["ok"]) == (
            record.failures,
            record.rejected,
            record.successes,
        )
        assert seen["ok"] == stats.succeeded
        # It opened on a failure, the fail_max-th at least since the outage began (a call
        # sent before the outage may end in between without ending the streak).
        assert len(hook.timeline) == len(record.transitions)
        opening_wall = record.transitions[0].time
        before_opening = [r.ok for r in record.request_history if r.time <= opening_wall]
        assert False is before_opening[-1]
        assert FAIL_MAX <= before_opening[before_opening.index(False) :].count(False)
        # Before opening: those failures, plus the calls in flight (all but the last failer's).
        assert FAIL_MAX <= first_open_requests - before_outage <= FAIL_MAX + WORKERS
        # While open: each trial call, plus at most the calls admitted before the opening
        # whose requests were still on their way.
        assert len(trials) <= requests_at_close - first_open_requests <= len(trials) + WORKERS - 1
        # The whole outage cost fail_max failures, the stragglers and the failed trials.
        assert FAIL_MAX + failed_trials <= stats.outage_rejections
        assert stats.outage_rejections <= FAIL_MAX + 2 * WORKERS + failed_trials
        # Each open period lasted reset_timeout, and no longer than it plus this loop's lag in
        # waking the sleeping workers (measured above; 10 ms is the workers' shortest sleep).
        assert lags
        late = max(lags) + 0.01 + 0.05
        periods = [b[0] - a[0] for a, b in itertools.pairwise(hook.timeline) if a[2] == "open"]
        assert len(trials) == len(periods)
        assert all(RESET_TIMEOUT <= p <= RESET_TIMEOUT + late for p in periods), (periods, late)
        # So the failed trials fit in the outage, one per reset_timeout at most...
        assert failed_trials * RESET_TIMEOUT <= outage_end - first_open_at
        # ...and the breaker closed one trial cycle after the outage's end at most: the last
        # failed trial (started before the end), one open period and the closing trial.
        last_failed_trial = opened[-1][0] - trials[-2][0]
        closing_trial = closed_at - trials[-1][0]
        assert trials[-2][0] < outage_end
        assert closed_at - outage_end <= last_failed_trial + RESET_TIMEOUT + late + closing_trial
