# SPDX-License-Identifier: MIT
from __future__ import annotations

import pytest

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.exceptions import ConfigurationError
from llm_rate_limiter.monitoring import MetricsCollector
from llm_rate_limiter.monitoring._health import HealthThresholds, system_health


def outcomes(
    c: MetricsCollector, ok: int, failed: int, service: str = "svc", latency: float = 1.0
) -> None:
    """Record *ok* successful and *failed* failed one-attempt calls."""
    for outcome, n in (("success", ok), ("failure", failed)):
        error = None if outcome == "success" else RetryErrorType.SERVER_ERROR
        for _ in range(n):
            c.call_started(service)
            c.attempt_finished(service, latency, error)
            c.call_finished(service, outcome, latency, 1)  # type: ignore[arg-type]


def status(c: MetricsCollector, service: str = "svc") -> tuple[str, float]:
    """The (status, score) pair of one service."""
    h = c.health()["services"][service]
    return h["status"], h["health_score"]


class TestThresholds:
    def test_defaults_are_the_seeds(self):
        """The defaults are 95% success, 20% failure, 10% denial and 10 s response."""
        t = HealthThresholds()
        assert (0.95, 0.20, 0.10, 10.0) == (
            t.healthy_success_rate,
            t.max_failure_rate,
            t.max_denial_rate,
            t.max_average_response_time,
        )

    @pytest.mark.parametrize(
        ("setting", "value"),
        [
            ("healthy_success_rate", 1.5),
            ("max_failure_rate", -0.1),
            ("max_denial_rate", 2.0),
            ("max_fallback_rate", float("nan")),
            ("max_violation_rate", 1.01),
            ("max_average_response_time", 0.0),
            ("max_retries_per_call", -1.0),
            ("min_calls", -1),
        ],
    )
    def test_invalid_setting_is_named(self, setting, value):
        """An impossible threshold raises ConfigurationError naming it."""
        with pytest.raises(ConfigurationError) as info:
            HealthThresholds(**{setting: value})
        assert setting == info.value.setting


class TestServiceHealth:
    def test_idle_service_is_healthy(self, collector):
        """A registered service with no calls is healthy with a full score."""
        collector.register_service("svc", requests_per_minute=60)
        assert ("healthy", 100.0) == status(collector)

    def test_success_rate_at_threshold_is_healthy(self, collector):
        """95 of 100 calls succeeding is healthy, scored 90."""
        outcomes(collector, 95, 5)
        assert ("healthy", 90.0) == status(collector)

    def test_success_rate_below_threshold_is_degraded(self, collector):
        """94 of 100 is degraded, and a degraded score is at most 79."""
        outcomes(collector, 94, 6)
        assert ("degraded", 79.0) == status(collector)

    def test_failure_rate_at_threshold_is_not_critical(self, collector):
        """A failure rate of exactly 20% is degraded, scored 100 - 40."""
        outcomes(collector, 80, 20)
        assert ("degraded", 60.0) == status(collector)

    def test_recovered_service_is_healthy_again(self, collector, clock):
        """Health judges the window: clean calls after the failures left it are healthy."""
        outcomes(collector, 0, 50)
        assert "critical" == status(collector)[0]
        outcomes(collector, 100, 0)
        assert "critical" == status(collector)[0]  # 50 of 150 failed in this window
        clock.advance(60.0)
        outcomes(collector, 100, 0)
        assert ("healthy", 100.0) == status(collector)
        assert 50 / 250 == pytest.approx(collector.service_metrics("svc")["failure_rate"])

    def test_failure_rate_above_threshold_is_critical(self, collector):
        """A failure rate of 21% is critical, and a critical score is at most 49."""
        outcomes(collector, 79, 21)
        assert ("critical", 49.0) == status(collector)

    def test_total_failure_scores_low(self, collector):
        """Only failures: the success penalty is capped at 60, leaving 40, capped to 49."""
        outcomes(collector, 0, 10)
        assert ("critical", 40.0) == status(collector)

    def test_too_few_calls_are_not_judged(self, collector):
        """Below min_calls, failures do not change the status."""
        outcomes(collector, 0, 9)
        assert ("healthy", 100.0) == status(collector)

    def test_open_breaker_is_critical_without_calls(self, collector):
        """An open breaker makes the service critical; half-open makes it degraded."""
        collector.breaker_transition("svc", "closed", "open")
        assert ("critical", 49.0) == status(collector)
        collector.breaker_transition("svc", "open", "half_open")
        assert ("degraded", 79.0) == status(collector)
        collector.breaker_transition("svc", "half_open", "closed")
        assert ("healthy", 100.0) == status(collector)

    @pytest.mark.parametrize(
        ("denials", "expected"), [(10, ("healthy", 90.0)), (11, ("degraded", 79.0))]
    )
    def test_denial_rate_boundary(self, collector, denials, expected):
        """10% denials is still healthy (score 90); 11% is degraded."""
        outcomes(collector, 100, 0)
        for _ in range(100 - denials):
            collector.limiter_waited("svc", 0.0, 1.0)
        for _ in range(denials):
            collector.limiter_denied("svc", "max_wait")
        assert expected == status(collector)

    @pytest.mark.parametrize(
        ("latency", "expected"), [(10.0, ("healthy", 100.0)), (12.0, ("degraded", 79.0))]
    )
    def test_slow_response_boundary(self, collector, latency, expected):
        """An average response of exactly 10 s is healthy; 12 s is degraded."""
        outcomes(collector, 20, 0, latency=latency)
        assert expected == status(collector)

    def test_slow_penalty(self):
        """A response 1.5 times the threshold degrades the service and names the average."""
        c = MetricsCollector(thresholds=HealthThresholds(max_average_response_time=5.0))
        outcomes(c, 20, 0, latency=7.5)
        assert ("degraded", 79.0) == status(c)
        assert ["average response 7.5s"] == c.health()["services"]["svc"]["reasons"]

    def test_auth_failures_degrade(self, collector):
        """Any authentication failure degrades the service."""
        outcomes(collector, 20, 0)
        collector.attempt_finished("svc", 0.1, RetryErrorType.AUTHENTICATION)
        assert "degraded" == status(collector)[0]

    def test_retry_storm_and_fallbacks_degrade(self, collector):
        """More retries than calls and fallback overuse are reasons to degrade."""
        outcomes(collector, 10, 0)
        for _ in range(11):
            collector.retry_scheduled("svc", 1, 0.1, RetryErrorType.TIMEOUT)
        for _ in range(3):
            collector.fallback_taken("svc", "other", RetryErrorType.TIMEOUT)
        assert ["retry storm", "fallback overuse"] == collector.health()["services"]["svc"][
            "reasons"
        ]


class TestSystemHealth:
    def test_no_services_is_healthy(self, collector):
        """A collector with no services is healthy at 100."""
        assert {
            "status": "healthy",
            "health_score": 100.0,
            "trend": "stable",
            "services": {},
        } == collector.health()

    def test_worst_status_and_mean_score(self, collector):
        """The system takes the worst status and the mean score, capped by status."""
        outcomes(collector, 100, 0, service="a")
        outcomes(collector, 95, 5, service="b")
        h = collector.health()
        assert ("healthy", 95.0) == (h["status"], h["health_score"])
        outcomes(collector, 0, 10, service="c")
        h = collector.health()
        assert ("critical", 49.0) == (h["status"], h["health_score"])
        assert ["a", "b", "c"] == list(h["services"])

    def test_degraded_caps_mean(self):
        """A degraded service caps the system score at 79."""
        h = system_health(
            {
                "a": {"status": "healthy", "health_score": 100.0},
                "b": {"status": "degraded", "health_score": 79.0},
            }
        )
        assert ("degraded", 79.0) == (h["status"], h["health_score"])
