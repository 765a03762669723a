# SPDX-License-Identifier: MIT
"""
Capacity scenarios, end to end: local denials, limits above the provider's, breaker, fallbacks.

Each scenario asserts the whole list of issues found, their severity and the
numbers of the recommendation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llm_rate_limiter import BreakerPolicy, RateLimits, RetryPolicy
from llm_rate_limiter.testing import FakeClock, FaultConfig, FaultServer

from .helpers import client, found, provider, run_calls, the_issue

pytestmark = pytest.mark.anyio

#: Retries that do not wait for an open breaker: a shed call moves on (or fails) at once.
NO_WAIT = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05, wait_for_breaker=False)


@pytest.fixture
async def backup() -> AsyncIterator[FaultServer]:
    """A second, healthy fault server: the fallback."""
    async with FaultServer(FaultConfig(seed=2)) as server:
        yield server


async def test_high_rate_limit_denial(fault_server: FaultServer) -> None:
    """A limit of 300/min with max_wait 0.05 s refuses 15 of 20 calls; the provider allows 600."""
    fault_server.set_faults(rpm=600)
    # 300 per minute holds 0.95 s of 5 per second: 5 calls pass at once, and on the
    # fake clock (which stands still) the rest would wait longer than max_wait.
    limits = RateLimits(requests_per_minute=300, max_wait=0.05)
    async with client([provider(fault_server, limits=limits)], clock=FakeClock()) as c:
        outcomes = await run_calls(c, 20, concurrent=True)
        issues = found(c)
        issue = the_issue(c, "high_rate_limit_denial")
    assert {"ok": 5, "RateLimitTimeoutError": 15} == outcomes
    assert 5 == fault_server.stats().requests
    # Local refusals are this issue's, not an elevated failure rate's.
    assert [("svc", "high_rate_limit_denial", "high")] == issues
    assert "75.0% of the limiter's decisions in the last 60s were denials" in issue["detail"]
    # 300 / (1 - 0.75) = 1200 would admit them all, but the provider announces 600.
    assert issue["recommendation"].startswith(
        "raise requests_per_minute from 300 to 600: the provider allows 600"
    )


async def test_breaker_open_with_fallback(fault_server: FaultServer, backup: FaultServer) -> None:
    """An outage opens the breaker; the fallback serves every call: one high breaker issue only."""
    breaker = BreakerPolicy(fail_max=3, reset_timeout=60)
    primary = provider(fault_server, retry=NO_WAIT, breaker=breaker)
    async with client([primary, provider(backup, "backup")], fallbacks={"svc": ["backup"]}) as c:
        assert {"ok": 10} == await run_calls(c, 10)  # served by svc
        fault_server.outage(3600)
        assert {"ok": 20} == await run_calls(c, 20)
        issues = found(c)
        issue = the_issue(c, "circuit_breaker_activations")
        m = c.metrics.service_metrics("svc")
    # The first call's three attempts open the breaker; the other 19 are shed to the backup.
    assert (13, 20) == (fault_server.stats().requests, backup.stats().succeeded)
    assert (1, 19, 19) == (m["failed_requests"], m["shed_requests"], m["shed_to_fallback"])
    # 1 failed of the 11 calls that ended at svc is no failure rate (the 19 shed are not
    # failures), and shed hand-overs are no fallback overuse.
    assert (1, 11, 19) == (m["window_failed"], m["window_calls"], m["window_shed"])
    assert [("svc", "circuit_breaker_activations", "high")] == issues
    assert "19 call(s) shed (19 to a fallback, 0 failed with CircuitOpenError)" in issue["detail"]
    assert issue["recommendation"].startswith(
        "check 'svc''s status: its calls go to the fallback while the breaker is open, "
        "and it is tried again every 60s"
    )


async def test_breaker_open_without_fallback(fault_server: FaultServer) -> None:
    """Without a fallback the shed calls fail with CircuitOpenError: the advice is a fallback."""
    fault_server.outage(3600)
    primary = provider(
        fault_server, retry=NO_WAIT, breaker=BreakerPolicy(fail_max=3, reset_timeout=60)
    )
    async with client([primary]) as c:
        outcomes = await run_calls(c, 20)
        issues = found(c)
        issue = the_issue(c, "circuit_breaker_activations")
    assert {"InternalServerError": 1, "CircuitOpenError": 19} == outcomes
    assert [("svc", "circuit_breaker_activations", "high")] == issues
    assert issue["recommendation"].startswith(
        "add a fallback provider for 'svc' (fallbacks={'svc': [...]}): 19 call(s) failed "
        "with CircuitOpenError"
    )


class TestLimitsAboveProvider:
    async def test_adaptive_limiter_overshoots_once(self, fault_server: FaultServer) -> None:
        """6000/min against a server of 1200: the adaptive limiter follows; the first burst cost."""
        fault_server.set_faults(rps=20, request_burst=2)
        limits = RateLimits(requests_per_minute=6_000)
        retry = RetryPolicy(max_retries=10, base_delay=0.01, max_delay=0.2)
        async with client([provider(fault_server, limits=limits, retry=retry)]) as c:
            assert {"ok": 30} == await run_calls(c, 30, concurrent=True)
            issues = found(c)
            issue = the_issue(c, "limits_above_provider")
            m = c.metrics.service_metrics("svc")
        refused = fault_server.stats().rate_limited
        assert refused == m["rate_limit_violations"] > 0
        assert (1200, 1200) == (m["server_limit_requests"], m["working_requests_per_minute"])
        assert [("svc", "limits_above_provider", "high")] == issues
        assert (
            "requests_per_minute configured 6000, provider announces 1200, limiter admits 1200"
            in (issue["detail"])
        )
        assert issue["recommendation"] == (
            "lower requests_per_minute from 6000 to 1200: the adaptive limiter already follows "
            "the announced limit since the first response, so only the first burst (before any "
            f"response) can go above it; it cost {refused} 429(s)"
        )

    async def test_fixed_limiter_keeps_sending_above(self, fault_server: FaultServer) -> None:
        """adaptive=False keeps sending at 6000/min: limits above the provider and a retry storm."""
        fault_server.set_faults(rps=20, request_burst=2)
        limits = RateLimits(requests_per_minute=6_000, adaptive=False)
        retry = RetryPolicy(max_retries=10, base_delay=0.01, max_delay=0.2)
        async with client([provider(fault_server, limits=limits, retry=retry)]) as c:
            assert {"ok": 30} == await run_calls(c, 30, concurrent=True)
            issues = found(c)
            above = the_issue(c, "limits_above_provider")
            storm = the_issue(c, "retry_storm")
        assert [
            ("svc", "limits_above_provider", "high"),
            ("svc", "retry_storm", "high"),
        ] == issues
        assert above["recommendation"].startswith(
            "lower requests_per_minute from 6000 to 1200: the limiter admits the configured "
            "rate (adaptive=False)"
        )
        assert "bring the local limits under the provider's" in storm["recommendation"]

    async def test_harmless_overshoot_is_low(self, fault_server: FaultServer) -> None:
        """1500/min configured, 1200 announced, no 429: reported low, saying the limiter follows."""
        fault_server.set_faults(rps=20)
        limits = RateLimits(requests_per_minute=1_500)
        async with client([provider(fault_server, limits=limits)]) as c:
            assert {"ok": 12} == await run_calls(c, 12)
            issues = found(c)
            issue = the_issue(c, "limits_above_provider")
        assert 0 == fault_server.stats().rate_limited
        assert [("svc", "limits_above_provider", "low")] == issues
        assert issue["recommendation"].startswith(
            "lower requests_per_minute from 1500 to 1200: the adaptive limiter already follows"
        )
        assert issue["recommendation"].endswith("it cost 0 429(s)")


async def test_fallback_overuse(fault_server: FaultServer, backup: FaultServer) -> None:
    """A primary too small for the load hands 15 of 20 calls to the backup: overuse, and why."""
    limits = RateLimits(requests_per_minute=300, max_wait=0.0)
    primary = provider(fault_server, limits=limits)
    async with client(
        [primary, provider(backup, "backup")], clock=FakeClock(), fallbacks={"svc": ["backup"]}
    ) as c:
        assert {"ok": 20} == await run_calls(c, 20, concurrent=True)
        issues = found(c)
        issue = the_issue(c, "fallback_overuse")
    handed = backup.stats().succeeded
    assert 20 == fault_server.stats().succeeded + handed
    assert [
        ("svc", "high_rate_limit_denial", "high"),
        ("svc", "fallback_overuse", "medium"),
    ] == issues
    share = f"{handed / 20:.0%}"
    assert f"{handed} of 20 in all" in issue["detail"]
    assert issue["recommendation"] == (
        f"the primary is too small for the load: move {share} of traffic to backup deliberately "
        "or raise its quota; requests_per_minute is 300"
    )
