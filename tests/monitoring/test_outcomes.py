# SPDX-License-Identifier: MIT
"""Outcomes kept apart: served, failed (by kind), shed (and where it went), cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from llm_rate_limiter import AsyncLLMClient, BreakerPolicy, ProviderConfig, RetryPolicy
from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.exceptions import CircuitOpenError
from llm_rate_limiter.monitoring import MetricsCollector, register_prometheus
from llm_rate_limiter.testing import FakeClock, FaultServer

from .test_prometheus import key, scrape

MESSAGES = [{"role": "user", "content": "hello"}]
OUTCOME_KEYS = ("served_requests", "failed_requests", "shed_requests", "cancelled_requests")


def balance(m: dict[str, Any]) -> tuple[int, int]:
    """``(served + failed + shed + cancelled + in_flight, started)`` of a snapshot."""
    return sum(m[k] for k in OUTCOME_KEYS) + m["in_flight"], m["total_requests"]


def fail(c: MetricsCollector, error: RetryErrorType, *, gave_up: bool = False) -> None:
    """One call whose only attempt failed with *error* (retries exhausted if *gave_up*)."""
    c.call_started("svc")
    c.attempt_finished("svc", 0.1, error)
    if gave_up:
        c.retry_gave_up("svc", 1, error)
    c.call_finished("svc", "failure", 0.1, 1)


class TestOutcomes:
    def test_each_outcome_is_counted_apart(self, collector):
        """Served, failed, shed (to a fallback or not), cancelled and in flight add up."""
        collector.call_started("svc")
        collector.attempt_finished("svc", 0.1, None)
        collector.call_finished("svc", "success", 0.1, 1)
        fail(collector, RetryErrorType.SERVER_ERROR, gave_up=True)
        for to_fallback in (True, True, False):
            collector.call_started("svc")
            collector.call_finished("svc", "shed", 0.0, 1)
            if to_fallback:
                collector.fallback_taken("svc", "backup", RetryErrorType.SERVER_ERROR)
        collector.call_started("svc")
        collector.call_finished("svc", "cancelled", 0.2, 1)
        collector.call_started("svc")
        m = collector.service_metrics("svc")
        assert (1, 1, 3, 2, 1, 1, 1) == (
            m["served_requests"],
            m["failed_requests"],
            m["shed_requests"],
            m["shed_to_fallback"],
            m["shed_unserved"],
            m["cancelled_requests"],
            m["in_flight"],
        )
        assert (7, 7) == balance(m)
        assert (0.5, 0.5) == (m["success_rate"], m["failure_rate"])

    def test_failures_by_final_error_kind(self, collector):
        """A failed call counts under its last error: give-up, attempt, or limiter denial."""
        fail(collector, RetryErrorType.TIMEOUT, gave_up=True)
        fail(collector, RetryErrorType.AUTHENTICATION)
        fail(collector, RetryErrorType.AUTHENTICATION)
        collector.call_started("svc")
        collector.limiter_denied("svc", "max_wait")
        collector.call_finished("svc", "failure", 5.0, 1)
        m = collector.service_metrics("svc")
        assert {"authentication": 2, "timeout": 1, "rate_limit": 1} == m["failures_by_kind"]
        assert m["failed_requests"] == sum(m["failures_by_kind"].values())

    def test_a_retried_error_is_not_the_final_one(self, collector):
        """An error followed by a retry is forgotten: a call ending without one is unknown."""
        collector.call_started("svc")
        collector.attempt_finished("svc", 0.1, RetryErrorType.SERVER_ERROR)
        collector.retry_scheduled("svc", 1, 0.1, RetryErrorType.SERVER_ERROR)
        collector.call_finished("svc", "failure", 3.0, 1)  # e.g. its deadline in the queue
        fail(collector, RetryErrorType.RATE_LIMIT)
        collector.call_started("svc")
        collector.attempt_finished("svc", 0.1, None)
        collector.call_finished("svc", "failure", 0.1, 1)  # no error told after a success
        assert {"unknown": 2, "rate_limit": 1} == collector.service_metrics("svc")[
            "failures_by_kind"
        ]

    def test_a_fallback_after_an_unserved_shed_is_not_a_shed_handover(self, collector):
        """Only the hand-over right after a shed call is counted as that call's."""
        collector.call_started("svc")
        collector.call_finished("svc", "shed", 0.0, 1)  # returned as CircuitOpenError
        fail(collector, RetryErrorType.SERVER_ERROR, gave_up=True)
        collector.fallback_taken("svc", "backup", RetryErrorType.SERVER_ERROR)
        m = collector.service_metrics("svc")
        assert (1, 0, 1, 1) == (
            m["shed_requests"],
            m["shed_to_fallback"],
            m["shed_unserved"],
            m["fallbacks_taken"],
        )

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["start", "success", "failure", "shed", "shed+", "cancelled"]),
                st.sampled_from([None, *RetryErrorType]),
                st.integers(min_value=0, max_value=8),
            ),
            max_size=120,
        )
    )
    def test_invariant_holds_for_any_interleaving(self, ops):
        """served + failed + shed + cancelled + in_flight == started, whatever the order."""
        clock = FakeClock()
        c = MetricsCollector(clock=clock)
        started = ended = 0
        ends: list[tuple[str, int]] = []
        expected = dict.fromkeys(("success", "failure", "shed", "cancelled", "to_fallback"), 0)
        for op, error, seconds in ops:
            clock.advance(float(seconds))
            if op == "start" or started == ended:
                c.call_started("svc")
                started += 1
                continue
            outcome = op.rstrip("+")
            if error is not None:
                c.attempt_finished("svc", 0.1, error)
            c.call_finished("svc", outcome, 0.1, 1)
            if op == "shed+":
                c.fallback_taken("svc", "backup", RetryErrorType.SERVER_ERROR)
                expected["to_fallback"] += 1
            expected[outcome] += 1
            ended += 1
            ends.append((outcome, int(clock.monotonic() // 3.0)))  # its 3 s window bucket
        m = c.service_metrics("svc")
        assert (started, started) == balance(m)
        assert (
            expected["success"],
            expected["failure"],
            expected["shed"],
            expected["cancelled"],
            started - ended,
        ) == (*(m[k] for k in OUTCOME_KEYS), m["in_flight"])
        assert m["failed_requests"] == sum(m["failures_by_kind"].values())
        assert (expected["to_fallback"], expected["shed"] - expected["to_fallback"]) == (
            m["shed_to_fallback"],
            m["shed_unserved"],
        )
        # The window holds the calls that ended in the last 20 buckets, whatever the ring wrapped.
        now = int(clock.monotonic() // 3.0)
        recent = [o for o, bucket in ends if bucket > now - 20]
        assert tuple(recent.count(o) for o in ("success", "failure", "shed", "cancelled")) == (
            m["window_served"],
            m["window_failed"],
            m["window_shed"],
            m["window_cancelled"],
        )


class TestReported:
    def test_report_keeps_the_totals_apart(self, collector):
        """The performance report sums each outcome and the failure kinds over services."""
        fail(collector, RetryErrorType.TIMEOUT, gave_up=True)
        collector.call_started("svc")
        collector.call_finished("svc", "shed", 0.0, 1)
        collector.fallback_taken("svc", "other", RetryErrorType.SERVER_ERROR)
        collector.call_started("other")
        collector.attempt_finished("other", 0.1, None)
        collector.call_finished("other", "success", 0.1, 1)
        report = collector.performance_report()
        perf = report["performance_metrics"]
        assert (3, 1, 1, 1, 1, 0, {"timeout": 1}) == (
            perf["total_requests"],
            perf["served_requests"],
            perf["failed_requests"],
            perf["shed_requests"],
            perf["shed_to_fallback"],
            perf["shed_unserved"],
            perf["failures_by_kind"],
        )
        assert (0, 1, 1) == tuple(
            report["services"]["svc"][k] for k in ("served", "failed", "shed")
        )
        assert "trend" in report["health"]

    def test_prometheus_outcomes(self, collector):
        """llm_requests_total has a shed outcome; failures by kind and shed by destination."""
        fail(collector, RetryErrorType.SERVER_ERROR, gave_up=True)
        for to_fallback in (True, False, False):
            collector.call_started("svc")
            collector.call_finished("svc", "shed", 0.0, 1)
            if to_fallback:
                collector.fallback_taken("svc", "backup", RetryErrorType.SERVER_ERROR)
        registry = CollectorRegistry()
        register_prometheus(collector, registry)
        samples = scrape(registry)
        assert (3.0, 1.0, 0.0) == tuple(
            samples[key("llm_requests_total", provider="svc", outcome=o)]
            for o in ("shed", "failure", "success")
        )
        assert (
            1.0 == samples[key("llm_request_failures_total", provider="svc", error="server_error")]
        )
        assert (1.0, 2.0) == tuple(
            samples[key("llm_requests_shed_total", provider="svc", destination=d)]
            for d in ("fallback", "error")
        )


def _config(
    server: FaultServer, name: str, breaker: BreakerPolicy | None = None, retries: int = 1
) -> ProviderConfig:
    """A provider of the real SDK on *server*; a call its open breaker refuses is not held."""
    return ProviderConfig(
        name=name,
        base_url=server.base_url,
        api_key=f"sk-outcomes-{name}",
        model="mock-gpt",
        retry=RetryPolicy(
            max_retries=retries, base_delay=0.01, max_delay=0.02, wait_for_breaker=False
        ),
        breaker=breaker,
        timeout=10.0,
    )


@pytest.mark.anyio
class TestEndToEnd:
    async def test_shed_calls_go_to_the_fallback_and_health_recovers(self):
        """Real SDK: an outage opens the breaker; shed calls are served by the fallback,
        counted as shed (not failed), and the primary is healthy again once it serves."""
        clock = FakeClock()
        metrics = MetricsCollector(clock=clock)
        breaker = BreakerPolicy(fail_max=2, reset_timeout=600.0)
        async with (
            FaultServer() as primary_server,
            FaultServer() as backup_server,
        ):
            primary = _config(primary_server, "primary", breaker)
            backup = _config(backup_server, "backup")
            async with AsyncLLMClient(
                [primary, backup], metrics=metrics, fallbacks={"primary": ["backup"]}
            ) as client:
                primary_server.outage(600.0)
                with anyio.fail_after(30):
                    for _ in range(12):
                        await client.chat(MESSAGES, provider="primary", max_tokens=4)
                m = metrics.service_metrics("primary")
                # Two calls failed at the provider (the 503s open the breaker: fail_max=2
                # counts attempts), the rest were shed to the backup: all 12 answered.
                assert (0, 12) == (
                    m["served_requests"],
                    metrics.service_metrics("backup")["served_requests"],
                )
                failed = m["failed_requests"]
                assert 1 <= failed <= 2
                assert {"server_error": failed} == m["failures_by_kind"]
                assert (12 - failed, 12 - failed, 0) == (
                    m["shed_requests"],
                    m["shed_to_fallback"],
                    m["shed_unserved"],
                )
                assert (12, 12) == balance(m)
                h = client.health()["services"]["primary"]
                assert ("critical", ["circuit breaker open"]) == (h["status"], h["reasons"])

                half = metrics.thresholds.window_seconds / 2
                clock.advance(half)  # the breaker stays open for half a window
                primary_server.reset()  # the provider is back
                client.reset_breaker("primary")
                clock.advance(half)  # the 503s have left the window
                with anyio.fail_after(30):
                    for _ in range(10):
                        await client.chat(MESSAGES, provider="primary", max_tokens=4)
                h = client.health()["services"]["primary"]
                assert ("healthy", 100.0, "recovering") == (
                    h["status"],
                    h["health_score"],
                    h["trend"],
                )
                m = metrics.service_metrics("primary")
                assert (10, failed, 12 - failed) == (
                    m["served_requests"],
                    m["failed_requests"],
                    m["shed_requests"],
                )

    async def test_shed_without_fallback_and_cancelled(self):
        """Real SDK: a shed call with no fallback is an error to the caller (shed_unserved);
        a call the caller cancels while the server hangs is cancelled, not failed."""
        metrics = MetricsCollector(clock=FakeClock())
        async with FaultServer() as server:
            breaker = BreakerPolicy(fail_max=1, reset_timeout=600.0)
            config = _config(server, "solo", breaker, retries=0)
            async with AsyncLLMClient([config], metrics=metrics) as client:
                server.outage(600.0)
                with anyio.fail_after(30):
                    with pytest.raises(Exception):  # noqa: B017 -- the 503, whatever its class
                        await client.chat(MESSAGES, max_tokens=4)
                    with pytest.raises(CircuitOpenError):
                        await client.chat(MESSAGES, max_tokens=4)
                server.reset()
                client.reset_breaker("solo")
                server.set_faults(hang_rate=1.0, hang_seconds=30.0)
                task = asyncio.create_task(client.chat(MESSAGES, max_tokens=4))
                with anyio.fail_after(30):
                    await server.wait_until(lambda s: s.hangs >= 1)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                m = metrics.service_metrics("solo")
                assert (0, 1, 1, 0, 1, 1) == (
                    m["served_requests"],
                    m["failed_requests"],
                    m["shed_requests"],
                    m["shed_to_fallback"],
                    m["shed_unserved"],
                    m["cancelled_requests"],
                )
                assert (3, 3) == balance(m)
