# SPDX-License-Identifier: MIT
"""
Limits that learn, end to end: `AsyncLLMClient` and the openai SDK against the fault server.

The issue's scenarios, scaled down from 20 s to 6 s: the server allows 20
requests/s (a bucket of 20), 40 closed-loop callers (each sends its next call
when the last one ended; whatever is still running at the end is cancelled).
"The last 10 s" of the issue becomes the last 4 s (seconds 2 to 6 of the
server's timeline, after the opening burst): 80 requests of capacity. Counts
of 429s over a whole run scale with its length (30 in 20 s becomes 9 in 6 s);
"429s stop within 5 s" of the limit halving (at 3 s here) becomes 2 s. The full-length runs, against
tenacity + aiolimiter and our fixed limits, are in ``benchmarks/bench_adaptive.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import openai
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from llm_rate_limiter import AsyncLLMClient, RateLimits, RetryPolicy
from llm_rate_limiter.monitoring import register_prometheus
from llm_rate_limiter.testing import FaultServer
from tests.client.helpers import MESSAGES, provider

pytestmark = pytest.mark.anyio

RATE = 20
CALLERS = 40
SECONDS = 6
#: The steady window: the last 4 seconds of the run.
STEADY = range(2, SECONDS)
CAPACITY = RATE * len(STEADY)
RETRY = RetryPolicy(max_retries=8, base_delay=0.01, max_delay=0.05)


async def _closed_loop(
    server: FaultServer,
    limits: RateLimits,
    *,
    seconds: float = SECONDS,
    halve_at: float | None = None,
) -> dict[int, dict[str, int]]:
    """Run the callers for *seconds*; return the server's timeline by second."""
    server.set_faults(rps=RATE)
    config = provider(server, limits=limits, retry=RETRY)
    async with AsyncLLMClient([config]) as client:
        loop = asyncio.get_running_loop()

        async def caller() -> None:
            while True:
                # Retries exhausted on 429s: the caller goes on with its next call.
                with contextlib.suppress(openai.RateLimitError):
                    await client.chat(MESSAGES)

        async def halve() -> None:
            assert halve_at is not None
            await asyncio.sleep(halve_at)
            server.set_faults(rps=RATE / 2)

        jobs = [caller() for _ in range(CALLERS)] + ([halve()] if halve_at is not None else [])
        server.reset()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(loop.time() + seconds):
                await asyncio.gather(*jobs)
    return {row["t"]: row for row in server.stats().timeline}


def _sum(timeline: dict[int, dict[str, int]], column: str, seconds: range) -> int:
    return sum(timeline.get(t, {}).get(column, 0) for t in seconds)


async def test_configured_too_high(server):
    """Configured 4x too high it adopts the announced limit: late, <= 2 429s and 90% served."""
    timeline = await _closed_loop(server, RateLimits(requests_per_minute=RATE * 60 * 4))
    late_429s, served = _sum(timeline, "rate_limited", STEADY), _sum(timeline, "accepted", STEADY)
    assert (True, True) == (late_429s <= 2, served >= 0.90 * CAPACITY), timeline


async def test_no_configured_rate(server):
    """With no rate it slow-starts, then adopts the announced limit: <= 9 429s, 85% served late."""
    timeline = await _closed_loop(server, RateLimits())
    all_429s = _sum(timeline, "rate_limited", range(SECONDS + 1))
    served = _sum(timeline, "accepted", STEADY)
    assert (True, True) == (all_429s <= 9, served >= 0.85 * CAPACITY), timeline


async def test_configured_right(server):
    """Configured right it is no worse than fixed limits: at most 2 429s, 90% served late."""
    timeline = await _closed_loop(server, RateLimits(requests_per_minute=RATE * 60))
    all_429s = _sum(timeline, "rate_limited", range(SECONDS + 1))
    served = _sum(timeline, "accepted", STEADY)
    # 90%, as in the other scenarios: a limiter 10% slow fails it; a loaded CI core that
    # pauses the callers for 100 ms costs 2.5% of these 4 s (the benchmark measures 98.6%).
    assert (True, True) == (all_429s <= 2, served >= 0.90 * CAPACITY), timeline


async def test_limit_halves(server):
    """When the server's limit halves at 3 s, its 429s stop within 2 s and 90% is served."""
    limits = RateLimits(requests_per_minute=RATE * 60)
    timeline = await _closed_loop(server, limits, halve_at=3.0)
    assert 0 == _sum(timeline, "rate_limited", range(5, SECONDS + 1)), timeline
    assert _sum(timeline, "accepted", range(5, SECONDS)) >= 0.9 * RATE / 2, timeline


async def test_fixed_keeps_drawing_429s(server):
    """With adaptive=False the limit configured 4x too high stands: 429s every second."""
    limits = RateLimits(requests_per_minute=RATE * 60 * 4, adaptive=False)
    timeline = await _closed_loop(server, limits, seconds=3)
    assert all(timeline[t]["rate_limited"] > 0 for t in range(3)), timeline


async def test_working_rate_visible(server):
    """After one call the announced 1200/min shows in statistics, service_status, Prometheus."""
    server.set_faults(rps=RATE)
    limits = RateLimits(requests_per_minute=RATE * 60 * 4)
    async with AsyncLLMClient([provider(server, limits=limits)]) as client:
        await client.chat(MESSAGES)
        registry = CollectorRegistry()
        register_prometheus(client.metrics, registry)
        scrape = generate_latest(registry).decode()
        limiter: Any = client.policy("primary").limiter
        metrics = client.service_status("primary")["metrics"]
        assert (1200.0, 1200.0, metrics["server_limit_tokens"]) == (
            limiter.statistics().working_requests_per_minute,
            metrics["working_requests_per_minute"],
            metrics["working_tokens_per_minute"],
        )
        line = 'llm_ratelimit_working_rate{dimension="requests",provider="primary"} 20.0'
        assert line in scrape.splitlines()
