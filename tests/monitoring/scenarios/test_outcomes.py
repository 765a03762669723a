# SPDX-License-Identifier: MIT
"""
Scenarios of what calls end with, end to end: the real SDK, the fault server, the analysis.

Each scenario plays one fault and asserts the whole list of issues found (no
more, no less), their severity and the numbers of the recommendation.
"""

from __future__ import annotations

import pytest

from llm_rate_limiter import BreakerPolicy, HealthThresholds, RetryPolicy
from llm_rate_limiter.testing import FaultServer

from .helpers import client, found, provider, run_calls, the_issue

pytestmark = pytest.mark.anyio

NO_RETRY = RetryPolicy(max_retries=0, base_delay=0.01, max_delay=0.05)


async def test_elevated_failure_rate(fault_server: FaultServer) -> None:
    """40% of calls answered 500 without retries: high, and the retries that would serve them."""
    fault_server.set_faults(error_500_rate=0.4, seed=3)
    async with client([provider(fault_server, retry=NO_RETRY)]) as c:
        outcomes = await run_calls(c, 20)
        issues = found(c)
        issue = the_issue(c, "elevated_failure_rate")
    failed = fault_server.stats().server_errors
    assert {"ok": 20 - failed, "InternalServerError": failed} == outcomes
    assert 7 == failed  # the server's seeded draws: 35% of 20
    assert [("svc", "elevated_failure_rate", "high")] == issues
    assert "7 of the 20 calls that ended at the provider in the last 60s failed" in issue["detail"]
    # 0.35 ** 3 = 4.3% <= 10% (half the threshold) at 0.35 + 0.12 = 0.47 retries per call.
    assert issue["recommendation"].startswith("raise max_retries from 0 to 2: 35% of attempts")
    assert "3 attempts leave about 4.3% of calls failing" in issue["recommendation"]


async def test_slow_responses(fault_server: FaultServer) -> None:
    """Replies after 0.3 s against a 0.1 s threshold: slow_responses, high, a timeout from p95."""
    fault_server.set_faults(latency=0.3)
    thresholds = HealthThresholds(max_average_response_time=0.1)
    async with client([provider(fault_server)], thresholds=thresholds) as c:
        assert {"ok": 12} == await run_calls(c, 12, concurrent=True)
        issues = found(c)
        issue = the_issue(c, "slow_responses")
        p95 = c.metrics.service_metrics("svc")["p95_latency"]
    assert [("svc", "slow_responses", "high")] == issues  # 0.3 s > twice 0.1 s
    assert 0.3 <= p95 < 10.0
    timeout = f"{-(-round(p95 * 20, 9) // 1) / 10:.2f}"  # twice the p95, rounded up to 0.1 s
    assert f"set RetryPolicy(attempt_timeout={timeout}) (twice the p95" in issue["recommendation"]
    assert "> 0.10s in the last 60s" in issue["detail"]


async def test_authentication_failures(fault_server: FaultServer) -> None:
    """401s: one critical authentication issue, each call sent once, no failure-rate echo."""
    fault_server.set_faults(unauthorized=True)
    async with client([provider(fault_server, breaker=BreakerPolicy(fail_max=2))]) as c:
        assert {"AuthenticationError": 20} == await run_calls(c, 20)
        issues = found(c)
        issue = the_issue(c, "authentication_failures")
        health = c.health()["services"]["svc"]
    assert 20 == fault_server.stats().requests  # never retried, never tripped the breaker
    assert [("svc", "authentication_failures", "critical")] == issues
    assert "20 attempt(s) in the last 60s were refused with 401/403" in issue["detail"]
    assert "ProviderConfig(name='svc')" in issue["recommendation"]
    assert "critical" == health["status"]


async def test_quota_exhausted(fault_server: FaultServer) -> None:
    """429 insufficient_quota: one critical quota issue, each call sent once."""
    fault_server.set_faults(insufficient_quota=True)
    async with client([provider(fault_server, breaker=BreakerPolicy(fail_max=2))]) as c:
        assert {"RateLimitError": 20} == await run_calls(c, 20)
        issues = found(c)
        issue = the_issue(c, "quota_exhausted")
    assert 20 == fault_server.stats().requests
    assert [("svc", "quota_exhausted", "critical")] == issues
    assert "20 call(s) in the last 60s were refused with 429 insufficient_quota" in issue["detail"]
    assert "add credits or raise the spending limit of the 'svc' account" in issue["recommendation"]


async def test_retry_storm(fault_server: FaultServer) -> None:
    """Half the attempts fail and four retries serve the calls: a storm; three retries would do."""
    fault_server.set_faults(error_500_rate=0.6, seed=0)
    retry = RetryPolicy(max_retries=4, base_delay=0.01, max_delay=0.02)
    async with client([provider(fault_server, retry=retry)]) as c:
        outcomes = await run_calls(c, 20)
        issues = found(c)
        issue = the_issue(c, "retry_storm")
        m = c.metrics.service_metrics("svc")
    stats = fault_server.stats()
    assert (stats.requests - 20, stats.server_errors) == (m["retries"], m["failed_attempts"])
    assert 20 == outcomes["ok"] + outcomes["InternalServerError"]
    assert outcomes["InternalServerError"] <= 4  # at most 20%: no elevated_failure_rate
    assert [("svc", "retry_storm", "high")] == issues
    ratio = m["retries"] / 20
    assert ratio > 1.0
    assert (
        f"{m['retries']} retries for 20 calls sent in the last 60s ({ratio:.2f}"
        in (issue["detail"])
    )
    # The seeded draws: 23 of 43 attempts fail (53%); 0.53 ** 4 = 8.2% <= 10% at
    # 0.53 + 0.29 + 0.15 = 0.97 retries per call, so three retries would serve as well.
    assert (23, 0) == (m["retries"], outcomes["InternalServerError"])
    assert issue["recommendation"].startswith("lower max_retries from 4 to 3 and add RetryPolicy(")
    assert "4 attempts leave about 8.2% of calls failing" in issue["recommendation"]
