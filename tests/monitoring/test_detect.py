# SPDX-License-Identifier: MIT
"""The outcome detectors (monitoring/_detect.py) on recorded events: triggers and advice."""

from __future__ import annotations

import pytest

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.monitoring import HealthThresholds, MetricsCollector
from llm_rate_limiter.monitoring._detect import num, window_raw
from llm_rate_limiter.testing import FakeClock

from .helpers import calls, issues


class TestHelpers:
    @pytest.mark.parametrize(
        ("value", "text"), [(600.0, "600"), (1e6, "1000000"), (0.35, "0.35"), (2.25, "2.2")]
    )
    def test_num(self, value: float, text: str) -> None:
        """Whole numbers print bare (never 1e+06), fractions with two decimals under 1."""
        assert text == num(value)

    def test_window_raw(self) -> None:
        """A window count is taken as given, else derived from its rate."""
        m = {"window_retries": 7, "window_retries_per_request": 0.5}
        assert (7.0, 5.0) == (
            window_raw(m, "window_retries", "window_retries_per_request", 10),
            window_raw({"r": 0.5}, "window_retries", "r", 10),
        )


class TestFailures:
    def test_too_few_calls(self, collector):
        """Nine failed calls are below window_min_calls: no elevated_failure_rate yet."""
        calls(collector, 0, 9)
        assert [] == issues(collector, "elevated_failure_rate")

    def test_at_threshold_no_issue(self, collector):
        """A failure rate of exactly 20% is not reported."""
        calls(collector, 80, 20)
        assert [] == issues(collector, "elevated_failure_rate")

    def test_above_threshold_names_the_retries_that_serve(self, collector):
        """21% of attempts failing with max_retries 0: one retry leaves 4.4% failing."""
        collector.register_service("svc", max_retries=0)
        calls(collector, 79, 21)
        [issue] = issues(collector, "elevated_failure_rate")
        assert "high" == issue["severity"]
        assert (
            "21 of the 100 calls that ended at the provider in the last 60s failed (21.0% > 20%)"
        ) in issue["detail"]
        assert issue["recommendation"].startswith(
            "raise max_retries from 0 to 1: 21% of attempts fail with server_error, so 2 "
            "attempts leave about 4.4% of calls failing"
        )

    def test_zero_threshold(self):
        """A failure threshold of 0 still yields a finite number of retries."""
        c = MetricsCollector(clock=FakeClock(), thresholds=HealthThresholds(max_failure_rate=0.0))
        calls(c, 90, 10)
        [issue] = issues(c, "elevated_failure_rate")
        # 0.1 ** 3 = 0.1% is one call in a thousand.
        assert issue["recommendation"].startswith("set max_retries to 2: 10% of attempts fail")

    def test_unregistered_retries(self, collector):
        """Without a registered max_retries the advice sets one."""
        calls(collector, 70, 30)
        [issue] = issues(collector, "elevated_failure_rate")
        assert issue["recommendation"].startswith("set max_retries to 1: 30% of attempts fail")

    def test_retried_enough_already(self, collector):
        """Enough retries configured but calls still fail: a fallback is advised."""
        collector.register_service("svc", max_retries=3)
        calls(collector, 70, 30)
        [issue] = issues(collector, "elevated_failure_rate")
        assert issue["recommendation"].startswith(
            "add a fallback provider for 'svc' (fallbacks={'svc': [...]}): 30% of attempts fail"
        )

    @pytest.mark.parametrize("fallback", [False, True])
    def test_hopeless_retries(self, collector, fallback):
        """At 60% per attempt the retries that would serve are a storm: fallback advice."""
        calls(collector, 40, 60)
        if fallback:
            collector.fallback_taken("svc", "backup", RetryErrorType.SERVER_ERROR)
        [issue] = issues(collector, "elevated_failure_rate")
        assert "critical" == issue["severity"]
        advice = issue["recommendation"]
        assert advice.startswith(
            "60% of attempts fail (server_error): retries enough to serve the calls would cost "
            "more than 1 per call; "
        )
        expected = "keep the fallback for 'svc'" if fallback else "add a fallback provider"
        assert expected in advice

    def test_every_attempt_fails(self, collector):
        """All attempts failing: retries cannot help at all."""
        calls(collector, 0, 10, error=RetryErrorType.TIMEOUT)
        [issue] = issues(collector, "elevated_failure_rate")
        assert issue["recommendation"].startswith("100% of attempts fail (timeout)")

    def test_permanent_errors(self, collector):
        """Mostly permanent errors: fix the requests, retries cannot cure."""
        calls(collector, 4, 6, error=RetryErrorType.PERMANENT)
        [issue] = issues(collector, "elevated_failure_rate")
        assert "retries and fallbacks cannot cure" in issue["recommendation"]

    def test_unknown_errors(self, collector):
        """Unclassified errors: a fallback, naming the most common error."""
        calls(collector, 5, 5, error=RetryErrorType.UNKNOWN)
        [issue] = issues(collector, "elevated_failure_rate")
        assert "(most common error: unknown)" in issue["recommendation"]

    def test_shed_calls_are_not_failures(self, collector):
        """Shed calls neither count as failures nor as calls of the rate; the detail names them."""
        calls(collector, 8, 3)
        for _ in range(50):
            collector.call_started("svc")
            collector.call_finished("svc", "shed", 0.0, 0)
        [issue] = issues(collector, "elevated_failure_rate")
        assert "3 of the 11 calls that ended" in issue["detail"]
        assert "50 more were shed by the open breaker (not counted)" in issue["detail"]

    def test_explained_failures_not_counted_again(self, collector):
        """Authentication failures are their own issue, not an elevated failure rate."""
        calls(collector, 0, 10, error=RetryErrorType.AUTHENTICATION)
        found = [i["type"] for i in collector.analyze_issues()["issues"]]
        assert ["authentication_failures"] == found

    def test_recovered_failures_leave_the_window(self, collector, clock):
        """Failures older than the window are not reported once clean calls followed."""
        calls(collector, 0, 20)
        assert 1 == len(issues(collector, "elevated_failure_rate"))
        clock.advance(66.0)
        calls(collector, 20)
        assert [] == issues(collector, "elevated_failure_rate")
        assert 20 == collector.service_metrics("svc")["failed_requests"]  # totals kept


class TestSlow:
    def test_at_threshold_no_issue(self, collector):
        """An average response of exactly 10 s is not slow."""
        calls(collector, 20, latency=10.0)
        assert [] == issues(collector, "slow_responses")

    @pytest.mark.parametrize(("latency", "severity"), [(10.5, "medium"), (21.0, "high")])
    def test_above_threshold(self, collector, latency, severity):
        """Above 10 s: slow_responses, high above twice it, with a timeout of twice the p95."""
        calls(collector, 20, latency=latency)
        [issue] = issues(collector, "slow_responses")
        assert severity == issue["severity"]
        assert f"average response {latency:.2f}s > 10s in the last 60s" in issue["detail"]
        timeout = num(latency * 2)
        assert issue["recommendation"].startswith(
            f"set RetryPolicy(attempt_timeout={timeout}) (twice the p95 of {latency:.2f}s)"
        )


class TestAuthQuotaSharedState:
    @pytest.mark.parametrize(
        ("service", "where"),
        [("openai", "API key (OPENAI_API_KEY) and"), ("mine", "API key and")],
    )
    def test_authentication_failures(self, collector, service, where):
        """One 401 is critical; the advice names the provider (and its variable when known)."""
        collector.attempt_finished(service, 0.1, RetryErrorType.AUTHENTICATION)
        [issue] = issues(collector, "authentication_failures")
        assert (service, "critical") == (issue["service"], issue["severity"])
        assert (
            f"check the {where} organisation of ProviderConfig(name={service!r})"
            in (issue["recommendation"])
        )

    def test_quota_exhausted(self, collector):
        """A quota exhaustion is critical, with credits and a fallback advised."""
        assert [] == issues(collector, "quota_exhausted")
        collector.quota_exhausted("moonshot")
        [issue] = issues(collector, "quota_exhausted")
        assert "critical" == issue["severity"]
        assert "fallbacks={'moonshot': [...]}" in issue["recommendation"]

    def test_old_credential_failures_leave_the_window(self, collector, clock):
        """A key fixed a window ago is no longer reported."""
        collector.attempt_finished("svc", 0.1, RetryErrorType.AUTHENTICATION)
        collector.quota_exhausted("svc")
        clock.advance(66.0)
        assert [] == collector.analyze_issues()["issues"]

    def test_shared_state(self, collector):
        """Redis unreachable: high, until it answers again."""
        calls(collector, 1)
        collector.shared_state_changed("svc", False)
        [issue] = issues(collector, "shared_state_unavailable")
        assert "high" == issue["severity"]
        assert "redis_timeout" in issue["recommendation"]
        collector.shared_state_changed("svc", True)
        assert [] == issues(collector, "shared_state_unavailable")


class TestRetryStorm:
    def storm(self, c: MetricsCollector, retries: int, error: RetryErrorType) -> None:
        """Ten calls, each with retries attempts before it was served."""
        calls(c, 10)
        for _ in range(retries):
            c.attempt_finished("svc", 0.1, error)
            c.retry_scheduled("svc", 1, 0.1, error)

    def test_too_few_calls(self, collector):
        """Nine calls are not judged, whatever their retries."""
        calls(collector, 9)
        for _ in range(30):
            collector.retry_scheduled("svc", 1, 0.1, RetryErrorType.SERVER_ERROR)
        assert [] == issues(collector, "retry_storm")

    def test_at_threshold_no_issue(self, collector):
        """One retry per call is not a storm."""
        self.storm(collector, 10, RetryErrorType.SERVER_ERROR)
        assert [] == issues(collector, "retry_storm")

    def test_fewer_retries_would_do(self, collector):
        """11 retries, 11 of 21 attempts failed (52%): three retries instead of five would do."""
        collector.register_service("svc", max_retries=5)
        self.storm(collector, 11, RetryErrorType.SERVER_ERROR)
        [issue] = issues(collector, "retry_storm")
        assert "11 retries for 10 calls sent in the last 60s (1.10 per call > 1)" in issue["detail"]
        assert issue["recommendation"].startswith(
            "lower max_retries from 5 to 3 and add RetryPolicy(budget=RetryBudget(ratio=0.2))"
        )

    def test_no_fewer_would_do(self, collector):
        """When fewer retries would fail more calls: a budget and a fallback."""
        collector.register_service("svc", max_retries=2)
        self.storm(collector, 30, RetryErrorType.SERVER_ERROR)
        [issue] = issues(collector, "retry_storm")
        assert issue["recommendation"].startswith(
            "add RetryPolicy(budget=RetryBudget(ratio=0.2)) so retries stay a fifth of calls, "
            "and add a fallback provider"
        )

    def test_retries_of_429s_point_at_the_limits(self, collector):
        """Retries that answer the provider's 429s: the limits are the cure."""
        self.storm(collector, 11, RetryErrorType.RATE_LIMIT)
        collector.rate_limit_violation("svc", 1.0)
        [issue] = issues(collector, "retry_storm")
        assert "bring the local limits under the provider's" in issue["recommendation"]

    def test_shed_calls_do_not_dilute(self, collector):
        """Shed calls were never sent: they do not lower the retries per call."""
        self.storm(collector, 15, RetryErrorType.SERVER_ERROR)
        for _ in range(20):
            collector.call_started("svc")
            collector.call_finished("svc", "shed", 0.0, 0)
        [issue] = issues(collector, "retry_storm")
        assert "15 retries for 10 calls sent" in issue["detail"]

    def test_thresholds_apply(self, collector):
        """A stricter max_retries_per_call reports fewer retries."""
        c = MetricsCollector(
            clock=FakeClock(), thresholds=HealthThresholds(max_retries_per_call=0.5)
        )
        self.storm(c, 6, RetryErrorType.SERVER_ERROR)
        assert 1 == len(issues(c, "retry_storm"))
