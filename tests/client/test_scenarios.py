# SPDX-License-Identifier: MIT
"""Scripted scenarios through the real SDK and the fault server produce the right diagnosis."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from llm_rate_limiter import (
    AsyncLLMClient,
    BreakerPolicy,
    HealthThresholds,
    MetricsCollector,
    ProviderConfig,
    RateLimits,
    RetryPolicy,
)
from llm_rate_limiter.testing import FakeClock, FaultConfig, FaultServer

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "hello"}]
CALLS = 20


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with FaultServer(FaultConfig(seed=7)) as srv:
        yield srv


def client_for(
    server: FaultServer,
    *,
    limits: RateLimits | None = None,
    breaker: BreakerPolicy | None = None,
    retry: RetryPolicy | None = None,
    thresholds: HealthThresholds | None = None,
    clock: FakeClock | None = None,
) -> AsyncLLMClient:
    config = ProviderConfig(
        name="svc",
        base_url=server.base_url,
        api_key="sk-scenario",
        model="mock-gpt",
        limits=limits,
        retry=retry or RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05),
        breaker=breaker,
        timeout=10.0,
    )
    if clock is None:
        metrics = MetricsCollector(thresholds=thresholds or HealthThresholds())
        return AsyncLLMClient([config], metrics=metrics)
    metrics = MetricsCollector(thresholds=thresholds or HealthThresholds(), clock=clock)
    return AsyncLLMClient([config], metrics=metrics, clock=clock)


async def run_calls(
    client: AsyncLLMClient, n: int = CALLS, *, concurrent: bool = True
) -> Counter[str]:
    """Run *n* calls; count the outcomes: "ok" or the exception's class name."""
    with anyio.fail_after(30):
        if concurrent:
            results: list[Any] = await asyncio.gather(
                *(client.chat(MESSAGES) for _ in range(n)), return_exceptions=True
            )
        else:
            results = []
            for _ in range(n):
                try:
                    results.append(await client.chat(MESSAGES))
                except Exception as exc:
                    results.append(exc)
    return Counter(type(r).__name__ if isinstance(r, BaseException) else "ok" for r in results)


def issue_types(client: AsyncLLMClient) -> set[str]:
    return {issue["type"] for issue in client.analyze_issues()["issues"]}


class TestDiagnosis:
    async def test_clean_run(self, server: FaultServer) -> None:
        """A clean run reports no issue and a healthy status."""
        async with client_for(server, limits=RateLimits(requests_per_minute=60_000)) as client:
            assert {"ok": CALLS} == await run_calls(client)
            analysis = client.analyze_issues()
            health = client.health()
        assert (0, []) == (analysis["issues_found"], analysis["issues"])
        assert ("healthy", 100) == (health["status"], round(health["health_score"]))

    async def test_rate_limit_pressure(self, server: FaultServer) -> None:
        """Load above the local limit with a short max_wait reports high_rate_limit_denial."""
        # 300 per minute holds 0.95 s of 5 per second: 5 calls pass at once, and on the
        # fake clock (which stands still) the rest would wait longer than max_wait.
        limits = RateLimits(requests_per_minute=300, max_wait=0.05)
        async with client_for(server, limits=limits, clock=FakeClock()) as client:
            outcomes = await run_calls(client)
            types = issue_types(client)
            m = client.metrics.service_metrics("svc")
        assert {"ok": 5, "RateLimitTimeoutError": CALLS - 5} == outcomes
        assert (5, CALLS - 5) == (server.stats().requests, m["denials"])
        assert (CALLS - 5) / CALLS == pytest.approx(m["denial_rate"])
        assert "high_rate_limit_denial" in types

    async def test_outage(self, server: FaultServer) -> None:
        """An outage reports circuit_breaker_activations alone: shed calls are not failures."""
        server.outage(3600)
        retry = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05, wait_for_breaker=False)
        async with client_for(server, breaker=BreakerPolicy(fail_max=3), retry=retry) as client:
            outcomes = await run_calls(client, concurrent=False)
            types = issue_types(client)
            status = client.health()["status"]
        # The first call's three attempts open the breaker; the rest are shed unsent.
        assert {"InternalServerError": 1, "CircuitOpenError": CALLS - 1} == outcomes
        # One failed call is too few to judge a failure rate; the open breaker explains the rest.
        assert {"circuit_breaker_activations"} == types
        assert "critical" == status
        assert 3 == server.stats().requests

    async def test_slow_provider(self, server: FaultServer) -> None:
        """Replies slower than the threshold report slow_responses."""
        server.set_faults(latency=0.1)
        thresholds = HealthThresholds(max_average_response_time=0.05)
        async with client_for(server, thresholds=thresholds) as client:
            assert {"ok": 12} == await run_calls(client, 12)
            types = issue_types(client)
        assert "slow_responses" in types

    async def test_unauthorized(self, server: FaultServer) -> None:
        """401s report authentication_failures, each sent once."""
        server.set_faults(unauthorized=True)
        async with client_for(server, breaker=BreakerPolicy(fail_max=2)) as client:
            assert {"AuthenticationError": CALLS} == await run_calls(client)
            types = issue_types(client)
        assert "authentication_failures" in types
        assert CALLS == server.stats().requests

    async def test_insufficient_quota(self, server: FaultServer) -> None:
        """insufficient_quota reports quota_exhausted, each call sent once."""
        server.set_faults(insufficient_quota=True)
        async with client_for(server, breaker=BreakerPolicy(fail_max=2)) as client:
            assert {"RateLimitError": CALLS} == await run_calls(client)
            types = issue_types(client)
        assert "quota_exhausted" in types
        assert CALLS == server.stats().requests

    async def test_limits_above_provider(self, server: FaultServer) -> None:
        """Local limits above the server's real limits report limits_above_provider."""
        server.set_faults(rps=20, request_burst=2)
        limits = RateLimits(requests_per_minute=6_000)
        retry = RetryPolicy(max_retries=10, base_delay=0.01, max_delay=0.2)
        async with client_for(server, limits=limits, retry=retry) as client:
            outcomes = await run_calls(client, 30)
            issues = client.analyze_issues()["issues"]
        assert {"ok": 30} == outcomes  # the 429s were retried until served
        assert server.stats().rate_limited > 0
        found = [i for i in issues if i["type"] == "limits_above_provider"]
        assert 1 == len(found)
        assert "requests_per_minute" in found[0]["recommendation"]
        assert "1200" in found[0]["recommendation"]  # the server announces 20 rps
