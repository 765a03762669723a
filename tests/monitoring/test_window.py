# SPDX-License-Identifier: MIT
"""Health about now: the window, its minimum of calls, the trend and the last status change."""

from __future__ import annotations

from typing import Any

import pytest

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.exceptions import ConfigurationError
from llm_rate_limiter.monitoring import HealthThresholds, MetricsCollector
from llm_rate_limiter.monitoring._recent import BUCKETS, RecentWindow
from llm_rate_limiter.monitoring._timeline import state_at
from llm_rate_limiter.monitoring._window import MinuteWindow
from llm_rate_limiter.testing import FakeClock

# 1200 s is the start of a 3 s bucket (the default window's) and of a minute.
START = 1200.0
WINDOW = 60.0


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock on a bucket boundary."""
    return FakeClock(start=START)


def outcomes(c: MetricsCollector, ok: int, failed: int, service: str = "svc") -> None:
    """Record *ok* served and *failed* failed one-attempt calls, now."""
    for outcome, n in (("success", ok), ("failure", failed)):
        error = None if outcome == "success" else RetryErrorType.SERVER_ERROR
        for _ in range(n):
            c.call_started(service)
            c.attempt_finished(service, 0.1, error)
            c.call_finished(service, outcome, 0.1, 1)  # type: ignore[arg-type]


def shed(c: MetricsCollector, n: int, *, to_fallback: bool, service: str = "svc") -> None:
    """Record *n* calls the open breaker turned away, handed to a fallback or not."""
    for _ in range(n):
        c.call_started(service)
        c.breaker_rejected(service)
        c.call_finished(service, "shed", 0.0, 1)
        if to_fallback:
            c.fallback_taken(service, "backup", RetryErrorType.SERVER_ERROR)


def health(c: MetricsCollector, service: str = "svc") -> dict[str, Any]:
    """One service's health entry."""
    entry: dict[str, Any] = c.health()["services"][service]
    return entry


def pick(c: MetricsCollector, *keys: str) -> tuple[Any, ...]:
    """Those keys of service "svc"'s health entry."""
    h = health(c)
    return tuple(h[k] for k in keys)


class TestThresholds:
    def test_window_defaults(self):
        """The window is 60 s and needs 10 calls by default."""
        t = HealthThresholds()
        assert (60.0, 10) == (t.window_seconds, t.window_min_calls)

    @pytest.mark.parametrize(
        ("setting", "value"),
        [("window_seconds", 0.0), ("window_seconds", -5.0), ("window_min_calls", -1)],
    )
    def test_invalid_window_is_named(self, setting, value):
        """A non-positive window or a negative minimum raises ConfigurationError naming it."""
        with pytest.raises(ConfigurationError) as info:
            HealthThresholds(**{setting: value})
        assert setting == info.value.setting


class TestWindow:
    def test_failures_leave_the_window_after_window_seconds(self, collector, clock):
        """Failures count for window_seconds; then clean calls alone decide: healthy."""
        outcomes(collector, 0, 50)
        assert ("critical", 40.0) == (
            health(collector)["status"],
            health(collector)["health_score"],
        )
        clock.advance(WINDOW - 0.5)
        assert "critical" == health(collector)["status"]
        assert 50 == collector.service_metrics("svc")["window_failed"]
        clock.advance(0.5)
        outcomes(collector, 10, 0)
        h = health(collector)
        assert ("healthy", 100.0, 10) == (h["status"], h["health_score"], h["window_calls"])
        m = collector.service_metrics("svc")
        assert (0, 10, 50) == (m["window_failed"], m["window_served"], m["failed_requests"])

    def test_clean_traffic_outweighs_failures_inside_the_window(self, collector):
        """19 clean calls per failure in the window are healthy (95% success)."""
        outcomes(collector, 0, 5)
        outcomes(collector, 94, 0)
        assert "degraded" == health(collector)["status"]
        outcomes(collector, 1, 0)
        assert ("healthy", 90.0) == (health(collector)["status"], health(collector)["health_score"])

    def test_too_few_calls_in_the_window_are_not_judged(self, clock):
        """Below window_min_calls the window's rates are not judged; at it they are."""
        lax = MetricsCollector(clock=clock, thresholds=HealthThresholds(window_min_calls=5))
        strict = MetricsCollector(clock=clock)
        for c in (lax, strict):
            outcomes(c, 0, 5)
        assert "critical" == health(lax)["status"]
        assert ("healthy", 100.0) == (health(strict)["status"], health(strict)["health_score"])

    def test_configured_window(self, clock):
        """A 10 s window forgets failures after 10 s, not 60."""
        c = MetricsCollector(clock=clock, thresholds=HealthThresholds(window_seconds=10.0))
        outcomes(c, 0, 20)
        clock.advance(10.0)
        outcomes(c, 10, 0)
        assert ("healthy", 10.0) == (health(c)["status"], health(c)["window_seconds"])

    def test_changing_the_window_restarts_it(self, collector):
        """Setting thresholds with another window_seconds starts the windows afresh."""
        outcomes(collector, 0, 20)
        collector.thresholds = HealthThresholds()  # same window: kept
        assert 20 == collector.service_metrics("svc")["window_failed"]
        collector.thresholds = HealthThresholds(window_seconds=30.0)
        m = collector.service_metrics("svc")
        assert (30.0, 0, 20) == (m["window_seconds"], m["window_failed"], m["failed_requests"])

    def test_memory_is_bounded(self, collector, clock):
        """Two windows of buckets per service, however many events and however long."""
        for _ in range(500):
            outcomes(collector, 3, 1)
            clock.advance(1.7)
        ring = collector._services["svc"].recent
        assert all(2 * BUCKETS == len(getattr(ring, f)) for f in ("served", "failed", "shed"))


class TestShed:
    def test_shed_calls_do_not_make_a_serving_provider_critical(self, collector):
        """Many shed calls and a few served ones, breaker closed again: healthy at 100."""
        outcomes(collector, 20, 0)
        shed(collector, 200, to_fallback=True)
        h = health(collector)
        assert ("healthy", 100.0, []) == (h["status"], h["health_score"], h["reasons"])
        m = collector.service_metrics("svc")
        assert (0.0, 200, 0.0) == (
            m["window_failure_rate"],
            m["window_shed"],
            m["window_fallback_rate"],
        )

    def test_an_open_breaker_counts_by_its_state(self, collector):
        """An open breaker is critical by its state, whatever the shed count."""
        outcomes(collector, 20, 0)
        collector.breaker_transition("svc", "closed", "open")
        shed(collector, 1, to_fallback=False)
        h = health(collector)
        assert ("critical", ["circuit breaker open"]) == (h["status"], h["reasons"])


class TestTrend:
    def test_worsening_then_recovering_then_stable(self, collector, clock):
        """Worse than one window ago is worsening, better is recovering, alike is stable."""
        outcomes(collector, 20, 0)
        assert "stable" == health(collector)["trend"]
        outcomes(collector, 0, 20)
        assert ("critical", "worsening") == (
            health(collector)["status"],
            health(collector)["trend"],
        )
        clock.advance(WINDOW)
        outcomes(collector, 20, 0)
        assert ("healthy", "recovering") == (
            health(collector)["status"],
            health(collector)["trend"],
        )
        clock.advance(WINDOW)
        outcomes(collector, 20, 0)
        assert ("healthy", "stable") == pick(collector, "status", "trend")

    def test_system_trend(self, collector):
        """The system worsens when any service worsens."""
        outcomes(collector, 20, 0, service="a")
        assert "stable" == collector.health()["trend"]
        outcomes(collector, 0, 20, service="b")
        assert "worsening" == collector.health()["trend"]

    def test_breaker_state_of_the_past_window(self, collector, clock):
        """A breaker open one window ago and closed since makes the trend recovering."""
        collector.breaker_transition("svc", "closed", "open")
        clock.advance(WINDOW)
        collector.breaker_transition("svc", "open", "half_open")
        collector.breaker_transition("svc", "half_open", "closed")
        clock.advance(WINDOW / 2)
        h = health(collector)
        assert ("healthy", "recovering", "critical") == (
            h["status"],
            h["trend"],
            h["previous_status"],
        )

    def test_state_at(self):
        """The breaker state at a past time is read back from the transitions."""
        transitions = [(10.0, "closed", "open"), (20.0, "open", "half_open")]
        assert ["closed", "open", "open", "half_open"] == [
            state_at("half_open", transitions, t) for t in (5.0, 10.0, 19.9, 25.0)
        ]


class TestLastChange:
    def test_seconds_since_change(self, collector, clock):
        """The status dates from its last change: failures at 1200 leave the window at 1260."""
        collector.register_service("svc")
        assert (0.0, None) == (
            health(collector)["seconds_since_change"],
            health(collector)["previous_status"],
        )
        outcomes(collector, 0, 20)
        clock.advance(30.0)
        assert ("critical", 30.0) == (
            health(collector)["status"],
            health(collector)["seconds_since_change"],
        )
        clock.advance(40.0)  # 1270: the failures left at 1260, the window is empty
        h = health(collector)
        assert ("healthy", 10.0, "critical") == (
            h["status"],
            h["seconds_since_change"],
            h["previous_status"],
        )

    @pytest.mark.parametrize("asked_between", [False, True])
    def test_a_breaker_change_is_dated_to_its_transition(self, collector, clock, asked_between):
        """A status the breaker changed dates from the transition, not from its bucket's start."""
        outcomes(collector, 20, 0)
        clock.advance(1.7)
        collector.breaker_transition("svc", "closed", "open")
        assert ("critical", 0.0) == (
            health(collector)["status"],
            health(collector)["seconds_since_change"],
        )
        clock.advance(4.6)
        if asked_between:
            health(collector)
        collector.breaker_transition("svc", "open", "closed")
        clock.advance(5.0)
        h = health(collector)
        assert ("healthy", 5.0, "critical") == (
            h["status"],
            h["seconds_since_change"],
            h["previous_status"],
        )

    def test_last_change_does_not_depend_on_how_often_health_is_asked(self, clock):
        """Asked every second or only at the end, the status changed at the same time."""
        often, once = MetricsCollector(clock=clock), MetricsCollector(clock=clock)
        for step in range(90):
            for c in (often, once):
                if step == 5:
                    outcomes(c, 0, 20)
                elif step % 3 == 0:
                    outcomes(c, 1, 0)
            health(often)
            clock.advance(1.0)
        h_often, h_once = health(often), health(once)
        assert h_often["seconds_since_change"] == h_once["seconds_since_change"]
        assert ("healthy", "critical") == (h_once["status"], h_once["previous_status"])
        # The failures (at 1205, bucket 401) left the window at the start of bucket 421: 1263.
        assert START + 90 - 1263.0 == h_once["seconds_since_change"]


class TestRings:
    @pytest.mark.parametrize("ring", ["recent", "window"])
    def test_a_bucket_still_held_keeps_its_counts(self, ring):
        """Back in a bucket the ring still holds (a clock read out of order), nothing is cleared."""
        if ring == "recent":
            r = RecentWindow(WINDOW)
            first = r.slot(START)
            r.served[first] += 2
            r.slot(START + 3.0)
            assert (first, 2) == (r.slot(START + 1.0), r.served[first])
        else:
            w = MinuteWindow()
            first = w.slot(START)
            w.calls[first] += 2
            w.slot(START + 60.0)
            assert (first, 2) == (w.slot(START + 1.0), w.calls[first])
