# SPDX-License-Identifier: MIT
"""Scripted scenarios through the real SDK and the fault server produce the right diagnosis."""

from __future__ import annotations

import asyncio
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
from llm_rate_limiter.testing import FaultConfig, FaultServer

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
    metrics = MetricsCollector(thresholds=thresholds or HealthThresholds())
    return AsyncLLMClient([config], metrics=metrics)


async def run_calls(client: AsyncLLMClient, n: int = CALLS, *, concurrent: bool = True) -> int:
    """Run *n* calls; return how many failed."""
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
    return sum(isinstance(r, BaseException) for r in results)


def issue_types(client: AsyncLLMClient) -> set[str]:
    return {issue["type"] for issue in client.analyze_issues()["issues"]}


class TestDiagnosis:
    async def test_clean_run(self, server: FaultServer) -> None:
        """A clean run reports no issue and a healthy status."""
        async with client_for(server, limits=RateLimits(requests_per_minute=60_000)) as client:
            assert 0 == await run_calls(client)
            analysis = client.analyze_issues()
            health = client.health()
        assert (0, []) == (analysis["issues_found"], analysis["issues"])
        assert ("healthy", 100) == (health["status"], round(health["health_score"]))

    async def test_rate_limit_pressure(self, server: FaultServer) -> None:
        """Load above the local limit with a short max_wait reports high_rate_limit_denial."""
        limits = RateLimits(requests_per_minute=300, max_wait=0.05)
        async with client_for(server, limits=limits) as client:
            failed = await run_calls(client)
            types = issue_types(client)
            denial_rate = client.metrics.service_metrics("svc")["denial_rate"]
        assert failed > CALLS // 2
        assert denial_rate > 0.1
        assert "high_rate_limit_denial" in types

    async def test_outage(self, server: FaultServer) -> None:
        """An outage reports circuit_breaker_activations and elevated_failure_rate."""
        server.outage(3600)
        retry = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05, wait_for_breaker=False)
        async with client_for(server, breaker=BreakerPolicy(fail_max=3), retry=retry) as client:
            assert CALLS == await run_calls(client, concurrent=False)
            types = issue_types(client)
            status = client.health()["status"]
        assert {"circuit_breaker_activations", "elevated_failure_rate"} <= types
        assert "critical" == status
        assert server.stats().requests <= 3 * 3

    async def test_slow_provider(self, server: FaultServer) -> None:
        """Replies slower than the threshold report slow_responses."""
        server.set_faults(latency=0.1)
        thresholds = HealthThresholds(max_average_response_time=0.05)
        async with client_for(server, thresholds=thresholds) as client:
            assert 0 == await run_calls(client, 12)
            types = issue_types(client)
        assert "slow_responses" in types

    async def test_unauthorized(self, server: FaultServer) -> None:
        """401s report authentication_failures, each sent once."""
        server.set_faults(unauthorized=True)
        async with client_for(server, breaker=BreakerPolicy(fail_max=2)) as client:
            assert CALLS == await run_calls(client)
            types = issue_types(client)
        assert "authentication_failures" in types
        assert CALLS == server.stats().requests

    async def test_insufficient_quota(self, server: FaultServer) -> None:
        """insufficient_quota reports quota_exhausted, each call sent once."""
        server.set_faults(insufficient_quota=True)
        async with client_for(server, breaker=BreakerPolicy(fail_max=2)) as client:
            assert CALLS == await run_calls(client)
            types = issue_types(client)
        assert "quota_exhausted" in types
        assert CALLS == server.stats().requests

    async def test_limits_above_provider(self, server: FaultServer) -> None:
        """Local limits above the server's real limits report limits_above_provider."""
        server.set_faults(rps=20, request_burst=2)
        limits = RateLimits(requests_per_minute=6_000)
        retry = RetryPolicy(max_retries=10, base_delay=0.01, max_delay=0.2)
        async with client_for(server, limits=limits, retry=retry) as client:
            await run_calls(client, 30)
            issues = client.analyze_issues()["issues"]
        found = [i for i in issues if i["type"] == "limits_above_provider"]
        assert 1 == len(found)
        assert "requests_per_minute" in found[0]["recommendation"]
        assert "1200" in found[0]["recommendation"]  # the server announces 20 rps
