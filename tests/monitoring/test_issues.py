# SPDX-License-Identifier: MIT
"""The analysis (monitoring/_issues.py): order, recommendations, system-wide advice."""

from __future__ import annotations

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.monitoring import MetricsCollector
from llm_rate_limiter.monitoring._issues import DETECTORS

from .helpers import calls


class TestCleanRun:
    def test_no_issue(self, collector):
        """A clean run with limits configured reports no issue and no recommendation."""
        collector.register_service("svc", requests_per_minute=600, max_retries=3)
        calls(collector, 200)
        for _ in range(200):
            collector.limiter_waited("svc", 0.01, 100.0)
        collector.server_limits_seen("svc", 600.0, None)
        assert {"issues_found": 0, "issues": [], "recommendations": []} == (
            collector.analyze_issues()
        )

    def test_every_detector_quiet_on_an_idle_service(self, collector):
        """A registered service without traffic gives no detector anything to report."""
        collector.register_service("svc", requests_per_minute=600, fail_max=3, max_retries=2)
        m = collector.service_metrics("svc")
        assert [None] * len(DETECTORS) == [d(m, collector.thresholds) for d in DETECTORS]


class TestAnalysis:
    def test_sorted_by_severity_and_recommendations(self, collector):
        """Issues come most severe first; each recommendation is listed once, prefixed."""
        collector.register_service("svc", max_retries=4)
        calls(collector, 10)
        for _ in range(11):
            collector.retry_scheduled("svc", 1, 0.1, RetryErrorType.TIMEOUT)
        collector.quota_exhausted("svc")
        analysis = collector.analyze_issues()
        assert 2 == analysis["issues_found"]
        assert ["quota_exhausted", "retry_storm"] == [i["type"] for i in analysis["issues"]]
        assert all(r.startswith("svc: ") for r in analysis["recommendations"])
        assert 2 == len(analysis["recommendations"])

    def test_equal_severity_in_detector_order(self, collector):
        """Issues of equal severity come in the detectors' order: failures before the breaker."""
        calls(collector, 7, 3)
        collector.breaker_transition("svc", "closed", "open")
        types = [(i["type"], i["severity"]) for i in collector.analyze_issues()["issues"]]
        assert [
            ("elevated_failure_rate", "high"),
            ("circuit_breaker_activations", "high"),
        ] == types

    def test_system_routing_advice(self, collector):
        """A critical service and a healthy one yield a routing recommendation."""
        calls(collector, 0, 10, service="openai")
        calls(collector, 10, service="moonshot")
        recommendations = collector.analyze_issues()["recommendations"]
        assert (
            "route 'openai' (health 40) to 'moonshot' (health 100): "
            "fallbacks={'openai': ['moonshot']}"
        ) == recommendations[-1]

    def test_load_above_capacity_advice(self, collector):
        """Denials on several services yield one system-wide capacity recommendation."""
        for service in ("a", "b"):
            calls(collector, 10, service=service)
            for _ in range(5):
                collector.limiter_denied(service, "max_wait")
        assert any(
            r.startswith("2 services refuse calls locally (a, b)")
            for r in collector.analyze_issues()["recommendations"]
        )


def test_shared_state_unavailable_is_reported_until_it_answers_again() -> None:
    """Redis unreachable: a high shared_state_unavailable issue with advice; back: gone."""
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
