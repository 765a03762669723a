# SPDX-License-Identifier: MIT
from __future__ import annotations

from typing import Any

import pytest

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.monitoring import MetricsCollector
from llm_rate_limiter.testing import FakeClock


@pytest.fixture
def collector() -> MetricsCollector:
    """A collector on a fake clock."""
    return MetricsCollector(clock=FakeClock())


def outcomes(
    c: MetricsCollector,
    ok: int,
    failed: int = 0,
    *,
    service: str = "svc",
    latency: float = 1.0,
    error: RetryErrorType = RetryErrorType.SERVER_ERROR,
) -> None:
    """Record *ok* successful and *failed* failed one-attempt calls."""
    for outcome, n in (("success", ok), ("failure", failed)):
        for _ in range(n):
            c.call_started(service)
            c.attempt_finished(service, latency, None if outcome == "success" else error)
            c.call_finished(service, outcome, latency, 1)  # type: ignore[arg-type]


def issues(c: MetricsCollector, kind: str) -> list[dict[str, Any]]:
    """The issues of one type."""
    return [i for i in c.analyze_issues()["issues"] if i["type"] == kind]


class TestCleanRun:
    def test_no_issue(self, collector):
        """A clean run with limits configured reports no issue and no recommendation."""
        collector.register_service("svc", requests_per_minute=600, max_retries=3)
        outcomes(collector, 200)
        for _ in range(200):
            collector.limiter_waited("svc", 0.01, 100.0)
        collector.server_limits_seen("svc", 600.0, None)
        assert {"issues_found": 0, "issues": [], "recommendations": []} == (
            collector.analyze_issues()
        )

    def test_too_few_calls_report_no_rate_issue(self, collector):
        """Nine failed calls are below min_calls: no elevated_failure_rate yet."""
        outcomes(collector, 0, 9)
        assert 0 == collector.analyze_issues()["issues_found"]


class TestDenials:
    def run(self, c: MetricsCollector, denials: int) -> None:
        c.register_service("svc", requests_per_minute=60)
        outcomes(c, 100)
        for _ in range(100 - denials):
            c.limiter_waited("svc", 0.5, 1.0)
        for _ in range(denials):
            c.limiter_denied("svc", "max_wait")

    def test_at_threshold_no_issue(self, collector):
        """A denial rate of exactly 10% is not an issue."""
        self.run(collector, 10)
        assert [] == issues(collector, "high_rate_limit_denial")

    def test_above_threshold(self, collector):
        """11% denials report high_rate_limit_denial naming requests_per_minute and a value."""
        self.run(collector, 11)
        [issue] = issues(collector, "high_rate_limit_denial")
        assert ("svc", "medium") == (issue["service"], issue["severity"])
        assert "11 of 100 limiter decisions" in issue["detail"]
        assert "11.0%" in issue["detail"]
        # 60 / (1 - 0.11) = 67.4 -> 68 requests/minute would admit the refused share.
        assert "raise requests_per_minute from 60 to 68" in issue["recommendation"]
        assert "max_wait above 0.5s" in issue["recommendation"]

    def test_provider_allows_more(self, collector):
        """When the provider announces a higher limit, raising to it is recommended."""
        self.run(collector, 50)
        collector.server_limits_seen("svc", 100.0, None)
        [issue] = issues(collector, "high_rate_limit_denial")
        assert "high" == issue["severity"]
        assert issue["recommendation"].startswith("raise requests_per_minute from 60 to 100")


class TestBreaker:
    def test_no_opening_no_issue(self, collector):
        """Half-open trials without an opening are not an activation issue."""
        outcomes(collector, 20)
        assert [] == issues(collector, "circuit_breaker_activations")

    def test_failed_recovery_doubles_reset_timeout(self, collector):
        """Failed half-open trials recommend doubling reset_timeout."""
        collector.register_service("svc", fail_max=5, reset_timeout=30)
        for old, new in (("closed", "open"), ("open", "half_open"), ("half_open", "open")):
            collector.breaker_transition("svc", old, new)
        [issue] = issues(collector, "circuit_breaker_activations")
        assert "high" == issue["severity"]
        assert "opened 2 time(s), now open" in issue["detail"]
        assert "raise reset_timeout from 30s to 60s" in issue["recommendation"]

    def test_flapping_raises_fail_max(self, collector):
        """Openings with a low overall failure rate recommend a higher fail_max."""
        collector.register_service("svc", fail_max=3)
        outcomes(collector, 95, 5)
        collector.breaker_transition("svc", "closed", "open")
        collector.breaker_transition("svc", "open", "closed")
        [issue] = issues(collector, "circuit_breaker_activations")
        assert "medium" == issue["severity"]
        assert "raise fail_max from 3 to 6" in issue["recommendation"]


class TestFailures:
    def test_at_threshold_no_issue(self, collector):
        """A failure rate of exactly 20% is not reported."""
        outcomes(collector, 80, 20)
        assert [] == issues(collector, "elevated_failure_rate")

    def test_above_threshold_recommends_retries(self, collector):
        """21% server errors recommend one more retry, naming max_retries."""
        collector.register_service("svc", max_retries=3)
        outcomes(collector, 79, 21)
        [issue] = issues(collector, "elevated_failure_rate")
        assert "high" == issue["severity"]
        assert "21 of 100 calls failed (21.0% > 20%)" in issue["detail"]
        assert "raise max_retries from 3 to 4" in issue["recommendation"]

    def test_majority_failures_are_critical(self, collector):
        """More than half failing is critical; authentication errors cannot be retried."""
        outcomes(collector, 4, 6, error=RetryErrorType.AUTHENTICATION)
        [issue] = issues(collector, "elevated_failure_rate")
        assert "critical" == issue["severity"]
        assert "retries and fallbacks cannot cure" in issue["recommendation"]


class TestSlow:
    def test_at_threshold_no_issue(self, collector):
        """An average response of exactly 10 s is not slow."""
        outcomes(collector, 20, latency=10.0)
        assert [] == issues(collector, "slow_responses")

    def test_above_threshold(self, collector):
        """An average of 10.5 s reports slow_responses with a timeout value."""
        outcomes(collector, 20, latency=10.5)
        [issue] = issues(collector, "slow_responses")
        assert "medium" == issue["severity"]
        assert "average response 10.50s > 10s" in issue["detail"]
        assert "set the attempt timeout to about 15s" in issue["recommendation"]


class TestAuthAndQuota:
    def test_authentication_failures(self, collector):
        """One 401 reports authentication_failures naming the service's key variable."""
        collector.attempt_finished("openai", 0.1, RetryErrorType.AUTHENTICATION)
        [issue] = issues(collector, "authentication_failures")
        assert ("openai", "critical") == (issue["service"], issue["severity"])
        assert "OPENAI_API_KEY" in issue["recommendation"]

    def test_quota_exhausted(self, collector):
        """A quota exhaustion reports quota_exhausted with a fallback recommendation."""
        assert [] == issues(collector, "quota_exhausted")
        collector.quota_exhausted("moonshot")
        [issue] = issues(collector, "quota_exhausted")
        assert "critical" == issue["severity"]
        assert "fallbacks={'moonshot': [...]}" in issue["recommendation"]


class TestRetryStorm:
    def run(self, c: MetricsCollector, retries: int) -> None:
        c.register_service("svc", max_retries=4)
        outcomes(c, 10)
        for _ in range(retries):
            c.retry_scheduled("svc", 1, 0.1, RetryErrorType.RATE_LIMIT)

    def test_at_threshold_no_issue(self, collector):
        """One retry per call is not a storm."""
        self.run(collector, 10)
        assert [] == issues(collector, "retry_storm")

    def test_above_threshold(self, collector):
        """Eleven retries for ten calls report retry_storm, halving max_retries."""
        self.run(collector, 11)
        [issue] = issues(collector, "retry_storm")
        assert "11 retries for 10 calls (1.10 per call > 1)" in issue["detail"]
        assert "lower max_retries from 4 to 2" in issue["recommendation"]

    def test_without_configured_retries(self, collector):
        """Without a registered max_retries the storm advice caps retries at 2."""
        outcomes(collector, 10)
        for _ in range(20):
            collector.retry_scheduled("svc", 1, 0.1, RetryErrorType.SERVER_ERROR)
        [issue] = issues(collector, "retry_storm")
        assert "cap retries (max_retries=2)" in issue["recommendation"]


class TestLimitsAboveProvider:
    def test_configured_above_announced(self, collector):
        """600 configured against 500 announced recommends lowering to 500."""
        collector.register_service("svc", requests_per_minute=600, tokens_per_minute=200_000)
        collector.server_limits_seen("svc", 500.0, 150_000.0)
        [issue] = issues(collector, "limits_above_provider")
        assert "lower requests_per_minute from 600 to 500" in issue["recommendation"]
        assert "lower tokens_per_minute from 200000 to 150000" in issue["recommendation"]

    @pytest.mark.parametrize(("violations", "found"), [(1, False), (2, True)])
    def test_violation_rate_boundary(self, collector, violations, found):
        """1% of attempts answered 429 is tolerated; 2% is reported."""
        collector.register_service("svc", requests_per_minute=600)
        outcomes(collector, 100)
        for _ in range(violations):
            collector.rate_limit_violation("svc", 1.0)
        assert found == bool(issues(collector, "limits_above_provider"))

    def test_violations_without_announced_limit(self, collector):
        """20% of attempts refused by the server recommend 600 -> 480."""
        collector.register_service("svc", requests_per_minute=600)
        outcomes(collector, 100)
        for _ in range(20):
            collector.rate_limit_violation("svc", 1.0)
        [issue] = issues(collector, "limits_above_provider")
        assert "high" == issue["severity"]
        assert "20 server 429(s)" in issue["detail"]
        assert "lower requests_per_minute from 600 to 480" in issue["recommendation"]

    def test_violations_without_configured_limits(self, collector):
        """Server 429s with no local limits recommend setting them."""
        outcomes(collector, 100)
        for _ in range(5):
            collector.rate_limit_violation("svc", None)
        [issue] = issues(collector, "limits_above_provider")
        assert "no limits configured" in issue["detail"]
        assert issue["recommendation"].startswith(
            "set requests_per_minute and tokens_per_minute to the provider's published limits"
        )


class TestFallbackOveruse:
    @pytest.mark.parametrize(("fallbacks", "found"), [(20, False), (21, True)])
    def test_boundary(self, collector, fallbacks, found):
        """20% of calls handed over is tolerated; 21% is fallback_overuse."""
        outcomes(collector, 100)
        for _ in range(fallbacks):
            collector.fallback_taken("svc", "backup", RetryErrorType.SERVER_ERROR)
        found_issues = issues(collector, "fallback_overuse")
        assert found == bool(found_issues)
        if found:
            assert "21 of 100 calls went to a fallback" in found_issues[0]["detail"]
            assert "21%" in found_issues[0]["recommendation"]

    def test_rate_limited_primary(self, collector):
        """Fallbacks taken for rate limits say the primary is too small, naming its limit."""
        collector.register_service("svc", requests_per_minute=60)
        outcomes(collector, 10)
        for _ in range(5):
            collector.fallback_taken("svc", "backup", RetryErrorType.RATE_LIMIT)
        [issue] = issues(collector, "fallback_overuse")
        assert (
            "the primary is too small for the load: move 50% of traffic to backup deliberately "
            "or raise its quota; requests_per_minute is 60"
        ) == issue["recommendation"]


class TestAnalysis:
    def test_sorted_by_severity_and_recommendations(self, collector):
        """Issues come most severe first; each recommendation is listed once, prefixed."""
        collector.register_service("svc", max_retries=4)
        outcomes(collector, 10)
        for _ in range(11):
            collector.retry_scheduled("svc", 1, 0.1, RetryErrorType.TIMEOUT)
        collector.quota_exhausted("svc")
        analysis = collector.analyze_issues()
        assert 2 == analysis["issues_found"]
        assert ["quota_exhausted", "retry_storm"] == [i["type"] for i in analysis["issues"]]
        assert all(r.startswith("svc: ") for r in analysis["recommendations"])
        assert 2 == len(analysis["recommendations"])

    def test_system_routing_advice(self, collector):
        """A critical service and a healthy one yield a routing recommendation."""
        outcomes(collector, 0, 10, service="openai")
        outcomes(collector, 10, service="moonshot")
        recommendations = collector.analyze_issues()["recommendations"]
        assert (
            "route 'openai' (health 40) to 'moonshot' (health 100): "
            "fallbacks={'openai': ['moonshot']}"
        ) == recommendations[-1]

    def test_load_above_capacity_advice(self, collector):
        """Denials on several services yield one system-wide capacity recommendation."""
        for service in ("a", "b"):
            outcomes(collector, 10, service=service)
            for _ in range(5):
                collector.limiter_denied(service, "max_wait")
        assert any(
            r.startswith("2 services refuse calls locally (a, b)")
            for r in collector.analyze_issues()["recommendations"]
        )


def test_shared_state_unavailable_is_reported_until_it_answers_again() -> None:
    """Redis unreachable: a high shared_state_unavailable issue with advice; back: gone."""
    from llm_rate_limiter import MetricsCollector

    metrics = MetricsCollector()
    metrics.call_started("svc")
    metrics.call_finished("svc", "success", 0.1, 1)
    metrics.shared_state_changed("svc", False)
    found = [
        i for i in metrics.analyze_issues()["issues"] if i["type"] == "shared_state_unavailable"
    ]
    assert 1 == len(found)
    assert ("high", "svc") == (found[0]["severity"], found[0]["service"])
    assert "redis_timeout" in found[0]["recommendation"]
    assert 1 == metrics.service_metrics("svc")["shared_state_outages"]
    metrics.shared_state_changed("svc", True)
    assert [] == [
        i for i in metrics.analyze_issues()["issues"] if i["type"] == "shared_state_unavailable"
    ]
