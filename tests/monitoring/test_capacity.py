# SPDX-License-Identifier: MIT
"""The capacity detectors (monitoring/_capacity.py) on recorded events: triggers and advice."""

from __future__ import annotations

import pytest

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.monitoring import MetricsCollector

from .helpers import calls, issues


def shed(c: MetricsCollector, n: int, fallback: str | None = None) -> None:
    """Record *n* calls the open breaker turned away (handed to *fallback* if given)."""
    for _ in range(n):
        c.call_started("svc")
        c.breaker_rejected("svc")
        c.call_finished("svc", "shed", 0.0, 0)
        if fallback is not None:  # as the client does: the call ends here, then moves on
            c.fallback_taken("svc", fallback, RetryErrorType.SERVER_ERROR)


class TestDenials:
    def run(self, c: MetricsCollector, denials: int, rpm: float | None = 60) -> None:
        """100 served calls, *denials* of the 100 limiter decisions refused."""
        c.register_service("svc", requests_per_minute=rpm)
        calls(c, 100)
        for _ in range(100 - denials):
            c.limiter_waited("svc", 0.5, 1.0)
        for _ in range(denials):
            c.limiter_denied("svc", "max_wait")

    def test_at_threshold_no_issue(self, collector):
        """A denial rate of exactly 10% is not an issue."""
        self.run(collector, 10)
        assert [] == issues(collector, "high_rate_limit_denial")

    def test_unknown_provider_limit(self, collector):
        """11% denials, no announced limit: queue, or raise 60 to 68 if the provider allows."""
        self.run(collector, 11)
        [issue] = issues(collector, "high_rate_limit_denial")
        assert ("svc", "medium") == (issue["service"], issue["severity"])
        assert "11.0% of the limiter's decisions in the last 60s were denials" in issue["detail"]
        assert "(> 10%; 11 of 100 in all)" in issue["detail"]
        assert issue["recommendation"].startswith("raise max_wait so the excess queues")
        # 60 / (1 - 0.11) = 67.4 -> 68 requests/minute would admit the refused share.
        assert (
            "or raise requests_per_minute from 60 to 68 if the provider's limit allows it"
            in (issue["recommendation"])
        )

    def test_provider_allows_more(self, collector):
        """The provider announces more: raise to what admits the refused share, at most that."""
        self.run(collector, 50)
        collector.server_limits_seen("svc", 100.0, None)
        [issue] = issues(collector, "high_rate_limit_denial")
        assert "high" == issue["severity"]
        assert issue["recommendation"].startswith(
            "raise requests_per_minute from 60 to 100: the provider allows 100 and 50% of calls"
        )

    def test_provider_allows_no_more(self, collector):
        """The provider's limit is the configured one: raising would only move the refusals."""
        self.run(collector, 50)
        collector.server_limits_seen("svc", 60.0, None)
        [issue] = issues(collector, "high_rate_limit_denial")
        assert "raise requests_per_minute" not in issue["recommendation"]
        assert (
            "the provider allows 60 requests/minute, no more than the 60 configured"
            in (issue["recommendation"])
        )

    def test_no_configured_limit(self, collector):
        """Denials without a configured rate (a concurrency limit): queue or fall back."""
        self.run(collector, 30, rpm=None)
        [issue] = issues(collector, "high_rate_limit_denial")
        assert issue["recommendation"].endswith("; 30% of calls are refused locally")


class TestBreaker:
    def test_no_opening_no_issue(self, collector):
        """Served calls without an opening are not an activation issue."""
        calls(collector, 20)
        assert [] == issues(collector, "circuit_breaker_activations")

    def test_open_without_fallback(self, collector):
        """Open now with calls failing as CircuitOpenError: high, add a fallback."""
        collector.register_service("svc", fail_max=3, reset_timeout=30)
        calls(collector, 0, 1)
        collector.breaker_transition("svc", "closed", "open")
        shed(collector, 5)
        [issue] = issues(collector, "circuit_breaker_activations")
        assert "high" == issue["severity"]
        assert "opened 1 time(s) from closed, now open (for 0.0s)" in issue["detail"]
        assert "5 call(s) shed (0 to a fallback, 5 failed with CircuitOpenError)" in issue["detail"]
        assert issue["recommendation"].startswith("add a fallback provider for 'svc'")

    def test_open_with_fallback(self, collector):
        """Open now, the fallback takes the shed calls: check the provider, tried every 30s."""
        collector.register_service("svc", fail_max=3, reset_timeout=30)
        collector.breaker_transition("svc", "closed", "open")
        shed(collector, 5, "backup")
        [issue] = issues(collector, "circuit_breaker_activations")
        assert "high" == issue["severity"]
        assert issue["recommendation"].startswith(
            "check 'svc''s status: its calls go to the fallback while the breaker is open, and "
            "it is tried again every 30s"
        )

    def test_just_opened_without_fallback(self, collector):
        """Open, nothing shed yet and no fallback taken: the advice is still a fallback."""
        collector.breaker_transition("svc", "closed", "open")
        [issue] = issues(collector, "circuit_breaker_activations")
        assert "high" == issue["severity"]
        assert issue["recommendation"].startswith(
            "add a fallback provider for 'svc' (fallbacks={'svc': [...]}): while the breaker is "
            "open its calls fail with CircuitOpenError or wait for it"
        )

    def test_open_with_fallback_unknown_reset_timeout(self, collector):
        """Without a registered reset_timeout the advice does not invent one."""
        collector.breaker_transition("svc", "closed", "open")
        shed(collector, 2, "backup")
        [issue] = issues(collector, "circuit_breaker_activations")
        assert issue["recommendation"].endswith("it is tried again after each reset_timeout")

    def test_failed_trials_then_recovered(self, collector):
        """Failed trials, then closed: low, and the reset_timeout trade-off with its numbers."""
        collector.register_service("svc", fail_max=5, reset_timeout=2)
        for old, new in (
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
        ):
            collector.breaker_transition("svc", old, new)
        [issue] = issues(collector, "circuit_breaker_activations")
        assert "low" == issue["severity"]
        assert (
            "opened 1 time(s) from closed and 1 time(s) after a failed trial call, now closed"
        ) in issue["detail"]
        assert "1 of 2 recovery trials succeeded" in issue["detail"]
        assert issue["recommendation"].startswith(
            "raise reset_timeout from 2s to 4s to send fewer trial calls to a provider that is "
            "down (1 of 2 failed), or keep 2s to notice its recovery sooner"
        )

    def test_recovered_at_first_trial(self, collector):
        """One episode, closed at the first trial: low, nothing to change."""
        collector.breaker_transition("svc", "closed", "open")
        shed(collector, 4, "backup")
        collector.breaker_transition("svc", "open", "half_open")
        collector.breaker_transition("svc", "half_open", "closed")
        [issue] = issues(collector, "circuit_breaker_activations")
        assert ("low", "nothing to change: the breaker shed 4 call(s)") == (
            issue["severity"],
            issue["recommendation"][:45],
        )

    def test_flapping(self, collector):
        """Three openings from closed with a low failure rate: medium, twice fail_max."""
        collector.register_service("svc", fail_max=3)
        calls(collector, 95, 5)
        for _ in range(3):
            collector.breaker_transition("svc", "closed", "open")
            collector.breaker_transition("svc", "open", "closed")
        [issue] = issues(collector, "circuit_breaker_activations")
        assert "medium" == issue["severity"]
        assert issue["recommendation"].startswith(
            "raise fail_max from 3 to 6: the breaker opened 3 times while only 5.0% of calls failed"
        )

    def test_closed_for_a_window_is_history(self, collector, clock):
        """Closed for longer than the window: no longer reported."""
        collector.breaker_transition("svc", "closed", "open")
        collector.breaker_transition("svc", "open", "closed")
        clock.advance(61.0)
        assert [] == issues(collector, "circuit_breaker_activations")
        assert 1 == collector.service_metrics("svc")["breaker_openings"]


class TestLimitsAboveProvider:
    def test_fixed_limiter_above_announced(self, collector):
        """A fixed limiter at 600 against 500 announced (and tokens): lower both, medium."""
        collector.register_service("svc", requests_per_minute=600, tokens_per_minute=200_000)
        collector.server_limits_seen("svc", 500.0, 150_000.0)
        [issue] = issues(collector, "limits_above_provider")
        assert "medium" == issue["severity"]
        assert issue["recommendation"] == (
            "lower requests_per_minute from 600 to 500; lower tokens_per_minute from 200000 to "
            "150000: the limiter admits the configured rate (adaptive=False) and sends above "
            "what the provider allows"
        )

    @pytest.mark.parametrize(("violations", "severity"), [(0, "low"), (2, "medium"), (6, "high")])
    def test_adaptive_limiter_follows(self, collector, violations, severity):
        """An adaptive limiter at the announced rate: low unless its first burst cost 429s."""
        collector.register_service("svc", requests_per_minute=660)
        collector.server_limits_seen("svc", 600.0, None)
        collector.working_rate_changed("svc", 600.0, None, "announced")
        calls(collector, 100)
        for _ in range(violations):
            collector.rate_limit_violation("svc", 1.0)
        [issue] = issues(collector, "limits_above_provider")
        assert severity == issue["severity"]
        assert "provider announces 600, limiter admits 600" in issue["detail"]
        assert issue["recommendation"] == (
            "lower requests_per_minute from 660 to 600: the adaptive limiter already follows the "
            "announced limit since the first response, so only the first burst (before any "
            f"response) can go above it; it cost {violations} 429(s)"
        )

    @pytest.mark.parametrize(("violations", "found"), [(1, False), (2, True)])
    def test_violation_rate_boundary(self, collector, violations, found):
        """1% of attempts answered 429 is tolerated; 2% is reported."""
        collector.register_service("svc", requests_per_minute=600)
        calls(collector, 100)
        for _ in range(violations):
            collector.rate_limit_violation("svc", 1.0)
        assert found == bool(issues(collector, "limits_above_provider"))

    def test_violations_without_announced_limit(self, collector):
        """20% of attempts refused by the server recommend 600 -> 480."""
        collector.register_service("svc", requests_per_minute=600)
        calls(collector, 100)
        for _ in range(20):
            collector.rate_limit_violation("svc", 1.0)
        [issue] = issues(collector, "limits_above_provider")
        assert "high" == issue["severity"]
        assert (
            "20 server 429(s) despite local limiting (20.0% of attempts in the last 60s)"
            in (issue["detail"])
        )
        assert issue["recommendation"].startswith("lower requests_per_minute from 600 to 480")

    def test_violations_under_the_announced_limit(self, collector):
        """429s although the limit is the announced one: another client shares the key."""
        collector.register_service("svc", requests_per_minute=600)
        collector.server_limits_seen("svc", 600.0, None)
        calls(collector, 100)
        for _ in range(5):
            collector.rate_limit_violation("svc", 1.0)
        [issue] = issues(collector, "limits_above_provider")
        assert issue["recommendation"].startswith(
            "the provider announces 600, no less than configured: another client spends the "
            "same key's quota; share the limits through Redis"
        )

    def test_violations_without_configured_limits(self, collector):
        """Server 429s with no local limits recommend setting them."""
        calls(collector, 100)
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
        calls(collector, 100)
        for _ in range(fallbacks):
            collector.fallback_taken("svc", "backup", RetryErrorType.SERVER_ERROR)
        found_issues = issues(collector, "fallback_overuse")
        assert found == bool(found_issues)
        if found:
            assert "21 of 100 in all" in found_issues[0]["detail"]
            assert found_issues[0]["recommendation"].startswith(
                "fix 'svc' first (fallbacks are taken for server_error) or make backup the "
                "primary: 21% of calls already end up there"
            )

    def test_shed_handovers_are_not_overuse(self, collector):
        """Calls the open breaker shed to the fallback are the breaker's issue, not overuse."""
        calls(collector, 10)
        collector.breaker_transition("svc", "closed", "open")
        shed(collector, 30, "backup")
        assert [] == issues(collector, "fallback_overuse")
        assert 1 == len(issues(collector, "circuit_breaker_activations"))

    def test_rate_limited_primary(self, collector):
        """Fallbacks taken for rate limits say the primary is too small, naming its limit."""
        collector.register_service("svc", requests_per_minute=60)
        calls(collector, 10)
        for _ in range(5):
            collector.fallback_taken("svc", "backup", RetryErrorType.RATE_LIMIT)
        [issue] = issues(collector, "fallback_overuse")
        assert (
            "the primary is too small for the load: move 50% of traffic to backup deliberately "
            "or raise its quota; requests_per_minute is 60"
        ) == issue["recommendation"]
