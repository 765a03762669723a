# SPDX-License-Identifier: MIT
from __future__ import annotations

import inspect

import pytest

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter._hooks import MetricsHook
from llm_rate_limiter.exceptions import ConfigurationError
from llm_rate_limiter.monitoring import MetricsCollector
from llm_rate_limiter.monitoring._views import BREAKER_KEYS, LIMITER_KEYS
from llm_rate_limiter.testing import FakeClock

# 6000 s is the start of minute 100, so per-minute buckets line up with whole numbers.
START = 6000.0


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting on a minute boundary."""
    return FakeClock(start=START)


def calls(c: MetricsCollector, n: int, outcome: str = "success", latency: float = 1.0) -> None:
    """Record *n* whole calls of one attempt each on service "svc"."""
    error = None if outcome == "success" else RetryErrorType.SERVER_ERROR
    for _ in range(n):
        c.call_started("svc")
        c.attempt_finished("svc", latency, error)
        c.call_finished("svc", outcome, latency, 1)  # type: ignore[arg-type]


class TestProtocol:
    def test_implements_every_hook_method(self):
        """Every MetricsHook method exists on MetricsCollector with the same parameters."""
        hook: MetricsHook = MetricsCollector()
        names = [n for n in vars(MetricsHook) if not n.startswith("_")]
        assert len(names) >= 16
        for name in names:
            expected = list(inspect.signature(getattr(MetricsHook, name)).parameters)
            assert expected == list(inspect.signature(getattr(type(hook), name)).parameters)


class TestCounts:
    def test_counts_add_up(self, collector):
        """Calls started equal succeeded + failed + cancelled + in flight."""
        calls(collector, 6)
        calls(collector, 2, "failure")
        collector.call_started("svc")
        collector.call_finished("svc", "cancelled", 0.5, 1)
        collector.call_started("svc")
        m = collector.service_metrics("svc")
        assert (10, 6, 2, 1, 1) == (
            m["total_requests"],
            m["successful_requests"],
            m["failed_requests"],
            m["cancelled_requests"],
            m["in_flight"],
        )
        ended = m["successful_requests"] + m["failed_requests"] + m["cancelled_requests"]
        assert m["total_requests"] == ended + m["in_flight"]

    def test_rates_exclude_cancelled_calls(self, collector):
        """Success and failure rates count only calls that ended, not cancelled ones."""
        calls(collector, 6)
        calls(collector, 2, "failure")
        collector.call_started("svc")
        collector.call_finished("svc", "cancelled", 0.5, 1)
        m = collector.service_metrics("svc")
        assert (0.75, 0.25) == (m["success_rate"], m["failure_rate"])
        assert 0.75 == m["recent_success_rate"]

    def test_peak_in_flight_and_concurrency_utilization(self, collector):
        """The peak of concurrent calls is kept and compared to max_concurrency."""
        collector.register_service("svc", max_concurrency=4)
        for _ in range(3):
            collector.call_started("svc")
        for _ in range(3):
            collector.call_finished("svc", "success", 1.0, 1)
        collector.call_started("svc")
        m = collector.service_metrics("svc")
        assert (3, 0.75, 1) == (m["peak_in_flight"], m["concurrency_utilization"], m["in_flight"])

    def test_unknown_service_is_empty(self, collector):
        """An unknown service reports zeros and a perfect success rate."""
        m = collector.service_metrics("nobody")
        assert (0, 1.0, None) == (m["total_requests"], m["success_rate"], m["p50_latency"])
        assert [] == collector.services()


class TestLatency:
    def test_percentiles_and_average(self, collector):
        """Latencies 1..100 give p50 50, p95 95, p99 99 and a mean of 50.5."""
        for i in range(1, 101):
            collector.call_started("svc")
            collector.call_finished("svc", "success", float(i), 1)
        m = collector.service_metrics("svc")
        assert (50.0, 95.0, 99.0) == (m["p50_latency"], m["p95_latency"], m["p99_latency"])
        assert (50.5, 100.0) == (m["average_call_latency"], m["max_call_latency"])

    def test_history_keeps_last_100_calls(self, collector):
        """Only the last 100 calls feed the percentiles: after 1..250, p50 is 200."""
        for i in range(1, 251):
            collector.call_started("svc")
            collector.call_finished("svc", "success" if i > 150 else "failure", float(i), 1)
        m = collector.service_metrics("svc")
        assert (200.0, 1.0) == (m["p50_latency"], m["recent_success_rate"])
        assert 0.4 == m["success_rate"]

    def test_history_size_is_configurable(self, clock):
        """history_size bounds the deque of recent calls."""
        c = MetricsCollector(clock=clock, history_size=10)
        for i in range(1, 31):
            c.call_started("svc")
            c.call_finished("svc", "success", float(i), 1)
        assert 25.0 == c.service_metrics("svc")["p50_latency"]

    def test_average_response_time_from_attempts(self, collector):
        """The average response time is the mean attempt latency."""
        collector.attempt_finished("svc", 2.0, None)
        collector.attempt_finished("svc", 4.0, RetryErrorType.TIMEOUT)
        m = collector.service_metrics("svc")
        assert (3.0, 2, 1, 0.5) == (
            m["average_response_time"],
            m["total_attempts"],
            m["failed_attempts"],
            m["attempt_failure_rate"],
        )

    def test_time_to_first_token(self, collector):
        """Streams' time to first token is averaged."""
        collector.first_token("svc", 0.2)
        collector.first_token("svc", 0.4)
        assert 0.3 == pytest.approx(collector.service_metrics("svc")["average_time_to_first_token"])


class TestErrors:
    def test_error_patterns_and_most_common(self, collector):
        """Error types are counted, most frequent first."""
        for kind in (RetryErrorType.TIMEOUT, RetryErrorType.RATE_LIMIT, RetryErrorType.TIMEOUT):
            collector.attempt_finished("svc", 1.0, kind)
        m = collector.service_metrics("svc")
        assert {"timeout": 2, "rate_limit": 1} == m["error_patterns"]
        assert ["timeout", "rate_limit"] == list(m["error_patterns"])
        assert "timeout" == m["most_common_error"]

    def test_authentication_and_quota_counted(self, collector):
        """Authentication errors and quota exhaustion have their own counters."""
        collector.attempt_finished("svc", 1.0, RetryErrorType.AUTHENTICATION)
        collector.quota_exhausted("svc")
        collector.quota_exhausted("svc")
        m = collector.service_metrics("svc")
        assert (1, 2) == (m["authentication_failures"], m["quota_exhausted"])


class TestLimiter:
    def test_waits_denials_and_rate(self, collector):
        """Nine admissions and one denial give a 10% denial rate and wait statistics."""
        for seconds in (0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0):
            collector.limiter_waited("svc", seconds, 10.0)
        collector.limiter_denied("svc", "max_wait")
        m = collector.service_metrics("svc")
        assert (9, 1, 0.1) == (m["limiter_admissions"], m["denials"], m["denial_rate"])
        assert (6.0, 3.0) == (m["total_wait_time"], m["max_wait_time"])
        assert 6.0 / 9 == m["average_wait_time"]
        assert {"max_wait": 1} == m["denial_reasons"]

    def test_denial_reasons_are_bounded(self, collector):
        """Past 32 distinct reasons, new reasons are folded into "other"."""
        for i in range(40):
            collector.limiter_denied("svc", f"reason-{i}")
        reasons = collector.service_metrics("svc")["denial_reasons"]
        assert 33 == len(reasons)
        assert 8 == reasons["other"]

    def test_violations_cooldowns_and_server_limits(self, collector):
        """Server 429s, cooldowns and announced limits are recorded."""
        for _ in range(4):
            collector.attempt_finished("svc", 1.0, None)
        collector.rate_limit_violation("svc", 2.5)
        collector.cooldown_started("svc", 2.5)
        collector.cooldown_started("svc", 1.5)
        collector.server_limits_seen("svc", 500.0, None)
        collector.server_limits_seen("svc", None, 90_000.0)
        m = collector.service_metrics("svc")
        assert (1, 0.25, 2.5) == (
            m["rate_limit_violations"],
            m["violation_rate"],
            m["last_retry_after"],
        )
        assert (2, 4.0) == (m["cooldowns"], m["cooldown_seconds"])
        assert (500.0, 90_000.0) == (m["server_limit_requests"], m["server_limit_tokens"])

    def test_tokens(self, collector):
        """Token estimates and usage are summed; missing usage counts the estimate."""
        collector.register_service("svc", tokens_per_minute=1000)
        collector.tokens_used("svc", 100.0, 120.0)
        collector.tokens_used("svc", 50.0, None)
        m = collector.service_metrics("svc")
        assert (150.0, 170.0) == (m["tokens_estimated"], m["tokens_used"])
        assert 20.0 / 150.0 == m["token_estimate_error"]
        assert (170.0, 0.17) == (m["tokens_last_minute"], m["token_utilization"])


class TestMinuteWindow:
    def test_utilization_against_registered_limit(self, collector, clock):
        """Requests over the sliding minute and the peak minute are compared to the limit."""
        collector.register_service("svc", requests_per_minute=100)
        calls(collector, 30)
        clock.advance(30)
        calls(collector, 20)
        m = collector.service_metrics("svc")
        assert (50.0, 0.5, 50, 0.5) == (
            m["requests_last_minute"],
            m["utilization"],
            m["peak_requests_per_minute"],
            m["peak_utilization"],
        )
        clock.advance(60)  # half-way through the next minute: half of the last one counts
        m = collector.service_metrics("svc")
        assert (25.0, 0.25, 0.5) == (
            m["requests_last_minute"],
            m["utilization"],
            m["peak_utilization"],
        )

    def test_unregistered_limit_gives_no_utilization(self, collector):
        """Without a configured limit the utilization is None."""
        calls(collector, 3)
        assert collector.service_metrics("svc")["utilization"] is None

    def test_window_rolls_over_an_hour(self, collector, clock):
        """Buckets older than an hour drop out, and a reused slot starts from zero."""
        calls(collector, 10)
        calls(collector, 3, "failure")
        clock.advance(59 * 60)
        m = collector.service_metrics("svc")
        assert (13, 3) == (m["requests_last_hour"], m["failures_last_hour"])
        clock.advance(60)  # minute 160 reuses minute 100's slot
        m = collector.service_metrics("svc")
        assert (0, 0) == (m["requests_last_hour"], m["peak_requests_per_minute"])
        calls(collector, 1)
        m = collector.service_metrics("svc")
        assert (1, 1, 14) == (
            m["requests_last_hour"],
            m["peak_requests_per_minute"],
            m["total_requests"],
        )

    def test_hour_spread_over_minutes(self, collector, clock):
        """One call per minute for two hours leaves exactly 60 in the last hour."""
        for _ in range(120):
            calls(collector, 1)
            clock.advance(60)
        m = collector.service_metrics("svc")
        assert (59, 1, 120) == (
            m["requests_last_hour"],
            m["peak_requests_per_minute"],
            m["total_requests"],
        )


class TestBreaker:
    def test_transitions_openings_and_recovery(self, collector, clock):
        """Openings, half-open trials and recoveries are counted from transitions."""
        for old, new in (
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
        ):
            collector.breaker_transition("svc", old, new)
        collector.breaker_rejected("svc")
        clock.advance(12.0)
        m = collector.service_metrics("svc")
        assert ("closed", 5, 2, 1) == (
            m["circuit_state"],
            m["breaker_transitions"],
            m["breaker_openings"],
            m["breaker_rejections"],
        )
        assert (2, 1, 1, 0.5) == (
            m["recovery_attempts"],
            m["recovery_successes"],
            m["recovery_failures"],
            m["recovery_success_rate"],
        )
        assert 12.0 == m["seconds_in_state"]
        assert {"at": START, "from": "half_open", "to": "closed"} == m["recent_transitions"][-1]

    def test_transition_history_is_bounded(self, collector):
        """Counts keep growing but at most 10 recent transitions are shown, 50 kept."""
        for _ in range(60):
            collector.breaker_transition("svc", "closed", "open")
            collector.breaker_transition("svc", "open", "closed")
        m = collector.service_metrics("svc")
        assert (120, 60, 10) == (
            m["breaker_transitions"],
            m["breaker_openings"],
            len(m["recent_transitions"]),
        )


class TestRetriesAndFallbacks:
    def test_retry_effectiveness(self, collector):
        """Retried calls, success after retry and retry delays are measured."""
        collector.register_service("svc", max_retries=3)
        for _ in range(4):
            collector.call_started("svc")
        collector.retry_scheduled("svc", 1, 0.5, RetryErrorType.SERVER_ERROR)
        collector.retry_scheduled("svc", 1, 1.0, RetryErrorType.TIMEOUT)
        collector.retry_scheduled("svc", 2, 2.0, RetryErrorType.TIMEOUT)
        collector.retry_gave_up("svc", 3, RetryErrorType.TIMEOUT)
        collector.retry_budget_refused("svc")
        collector.call_finished("svc", "success", 2.0, 2)
        collector.call_finished("svc", "failure", 5.0, 3)
        collector.call_finished("svc", "success", 1.0, 1)
        collector.call_finished("svc", "success", 1.0, 1)
        m = collector.service_metrics("svc")
        assert (3, 0.75, 2, 1, 0.5) == (
            m["retries"],
            m["retries_per_request"],
            m["retried_requests"],
            m["succeeded_after_retry"],
            m["retry_success_rate"],
        )
        assert (1, 1, 3.5, 3) == (
            m["retry_gave_up"],
            m["retry_budget_refused"],
            m["total_retry_delay"],
            m["configured_max_retries"],
        )
        assert {"timeout": 2, "server_error": 1} == m["retry_error_distribution"]

    def test_fallbacks(self, collector):
        """Fallbacks are counted per target and reason, as a share of calls."""
        calls(collector, 4)
        collector.fallback_taken("svc", "backup", RetryErrorType.RATE_LIMIT)
        m = collector.service_metrics("svc")
        assert (1, 0.25, {"backup": 1}, {"rate_limit": 1}) == (
            m["fallbacks_taken"],
            m["fallback_rate"],
            m["fallback_targets"],
            m["fallback_reasons"],
        )


class TestSnapshots:
    def test_at_least_25_metrics(self, collector):
        """A service snapshot has at least 25 metrics."""
        calls(collector, 1)
        assert len(collector.service_metrics("svc")) >= 25

    def test_limiter_and_breaker_stats(self, collector):
        """The seed's comprehensive stats hold the limiter and breaker keys plus health."""
        collector.register_service("a", requests_per_minute=60)
        collector.call_started("b")
        limiter = collector.rate_limiter_stats()
        breaker = collector.circuit_breaker_stats()
        assert ["a", "b"] == list(limiter) == list(breaker) == collector.services()
        assert {*LIMITER_KEYS, "health_status", "health_score", "health_trend"} == set(limiter["a"])
        assert {*BREAKER_KEYS, "health_status", "health_score", "health_trend"} == set(breaker["b"])
        assert (60.0, "healthy") == (
            limiter["a"]["configured_requests_per_minute"],
            limiter["a"]["health_status"],
        )

    def test_service_status(self, collector):
        """service_status has the status, score, reasons, issues and metrics."""
        collector.breaker_transition("svc", "closed", "open")
        status = collector.service_status("svc")
        assert ("svc", "critical", ["circuit breaker open"]) == (
            status["service"],
            status["status"],
            status["reasons"],
        )
        assert ["circuit_breaker_activations"] == [i["type"] for i in status["issues"]]
        assert "open" == status["metrics"]["circuit_state"]

    def test_reset_keeps_registrations(self, collector):
        """reset() forgets events and keeps the configured limits."""
        collector.register_service("svc", requests_per_minute=60)
        calls(collector, 5)
        collector.reset()
        m = collector.service_metrics("svc")
        assert (0, 60.0, ["svc"]) == (
            m["total_requests"],
            m["configured_requests_per_minute"],
            collector.services(),
        )

    def test_register_again_keeps_data(self, collector):
        """Registering a service again replaces its limits but keeps its counters."""
        calls(collector, 2)
        collector.register_service("svc", requests_per_minute=30, fail_max=5)
        m = collector.service_metrics("svc")
        assert (2, 30.0, 5) == (
            m["total_requests"],
            m["configured_requests_per_minute"],
            m["configured_fail_max"],
        )


class TestValidation:
    @pytest.mark.parametrize(
        "setting", ["requests_per_minute", "tokens_per_minute", "reset_timeout", "max_retries"]
    )
    def test_negative_limit_names_the_setting(self, collector, setting):
        """A negative configured limit raises ConfigurationError naming it."""
        with pytest.raises(ConfigurationError) as info:
            collector.register_service("svc", **{setting: -1})
        assert setting == info.value.setting

    def test_history_size_must_be_positive(self):
        """history_size 0 is refused."""
        with pytest.raises(ConfigurationError) as info:
            MetricsCollector(history_size=0)
        assert "history_size" == info.value.setting


class TestBoundedMemory:
    def test_histories_do_not_grow(self, collector, clock):
        """After 20,000 mixed events every per-service container keeps its bound."""
        for i in range(5000):
            calls(collector, 1, "success" if i % 3 else "failure")
            collector.breaker_transition("svc", "closed", "open")
            clock.advance(1.0)
        state = collector._services["svc"]
        assert (100, 100, 50, 1) == (
            len(state.recent_latencies),
            len(state.recent_outcomes),
            len(state.transitions),
            len(state.errors),
        )
        assert 60 == len(state.window.calls)
        assert 5000 == collector.service_metrics("svc")["total_requests"]
