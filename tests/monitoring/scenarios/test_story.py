# SPDX-License-Identifier: MIT
"""
Whole stories, end to end: a clean run, a provider that recovered, two causes at once.

The client talks to fault servers through the real SDK; time that must pass
(the health window, the breaker's reset timeout) passes on a `FakeClock`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llm_rate_limiter import BreakerPolicy, HealthThresholds, RateLimits, RetryPolicy
from llm_rate_limiter.testing import FakeClock, FaultConfig, FaultServer

from .helpers import client, found, provider, run_calls, the_issue

pytestmark = pytest.mark.anyio


@pytest.fixture
async def backup() -> AsyncIterator[FaultServer]:
    """A second, healthy fault server: the fallback."""
    async with FaultServer(FaultConfig(seed=2)) as server:
        yield server


async def test_clean_run_reports_nothing(fault_server: FaultServer) -> None:
    """Twenty calls under every limit: no issue, no recommendation, healthy at 100, stable."""
    limits = RateLimits(requests_per_minute=6_000)
    async with client([provider(fault_server, limits=limits)]) as c:
        assert {"ok": 20} == await run_calls(c, 20, concurrent=True)
        analysis = c.analyze_issues()
        health = c.health()
    assert {"issues_found": 0, "issues": [], "recommendations": []} == analysis
    assert ("healthy", 100.0, "stable") == (
        health["status"],
        health["health_score"],
        health["trend"],
    )


async def test_recovered_provider(fault_server: FaultServer, backup: FaultServer) -> None:
    """After an outage and a window of clean traffic: healthy, recovering, no stale critical."""
    clock = FakeClock()
    breaker = BreakerPolicy(fail_max=3, reset_timeout=5)
    retry = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05, wait_for_breaker=False)
    primary = provider(fault_server, retry=retry, breaker=breaker)
    async with client(
        [primary, provider(backup, "backup")], clock=clock, fallbacks={"svc": ["backup"]}
    ) as c:
        fault_server.outage(3600)
        assert {"ok": 10} == await run_calls(c, 10)  # 1 failed on svc, then 9 shed to backup
        during = c.health()["services"]["svc"]
        assert [("svc", "circuit_breaker_activations", "high")] == found(c)
        fault_server.reset()  # the provider is back
        window = c.metrics.thresholds.window_seconds
        clock.advance(window * 1.1)  # the outage leaves the window; the breaker may try again
        assert {"ok": 20} == await run_calls(c, 20)
        after = c.health()["services"]["svc"]
        issues = found(c)
        issue = the_issue(c, "circuit_breaker_activations")
        m = c.metrics.service_metrics("svc")
        clock.advance(window * 1.1)  # a quiet window later the episode is history
        later = (c.analyze_issues()["issues_found"], c.health()["services"]["svc"]["status"])
    assert ("critical", "closed") == (during["status"], m["circuit_state"])
    assert 20 == fault_server.stats().succeeded  # every call of the second act on the primary
    assert ("healthy", "recovering") == (after["status"], after["trend"])
    assert 100.0 == after["health_score"]
    # What is left is the episode, low: what it cost and that nothing needs to change.
    assert [("svc", "circuit_breaker_activations", "low")] == issues
    assert "9 call(s) shed (9 to a fallback, 0 failed with CircuitOpenError)" in issue["detail"]
    assert issue["recommendation"].startswith("nothing to change: the breaker shed 9 call(s)")
    assert (0, "healthy") == later
    # The totals stay in the report.
    assert (1, 9, 20) == (m["failed_requests"], m["shed_requests"], m["successful_requests"])


async def test_two_causes_most_severe_first(fault_server: FaultServer) -> None:
    """Errors and slowness at once: both named, the critical failure rate before slowness."""
    fault_server.set_faults(error_500_rate=0.6, latency=0.3, seed=7)
    retry = RetryPolicy(max_retries=0, base_delay=0.01, max_delay=0.05)
    thresholds = HealthThresholds(max_average_response_time=0.1)
    async with client([provider(fault_server, retry=retry)], thresholds=thresholds) as c:
        outcomes = await run_calls(c, 20, concurrent=True)
        issues = found(c)
        failures = the_issue(c, "elevated_failure_rate")
        recommendations = c.analyze_issues()["recommendations"]
    failed = fault_server.stats().server_errors
    assert {"ok": 20 - failed, "InternalServerError": failed} == outcomes
    assert 14 == failed  # the seeded draws: 70%
    assert [
        ("svc", "elevated_failure_rate", "critical"),
        ("svc", "slow_responses", "high"),
    ] == issues
    assert (
        "14 of the 20 calls that ended at the provider in the last 60s failed"
        in (failures["detail"])
    )
    # At 70% per attempt, the retries that would serve the calls are a storm of their own.
    assert failures["recommendation"].startswith("70% of attempts fail (server_error)")
    assert "add a fallback provider (fallbacks={'svc': [...]})" in failures["recommendation"]
    assert [r.split(": ")[0] for r in recommendations] == ["svc", "svc"]
