# SPDX-License-Identifier: MIT
"""`OtelHook`: every event reaches the inner hook first, then the instruments and the span."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from llm_rate_limiter import MetricsCollector, RetryErrorType
from llm_rate_limiter.otel._hook import Instruments, OtelHook
from llm_rate_limiter.testing import FakeClock

from .helpers import Telemetry, attrs, events

#: Every event of the hook protocol, with arguments.
EVENTS: list[tuple[str, tuple[Any, ...]]] = [
    ("call_started", ("svc",)),
    ("call_finished", ("svc", "success", 0.5, 1)),
    ("attempt_finished", ("svc", 0.25, RetryErrorType.SERVER_ERROR)),
    ("limiter_waited", ("svc", 0.125, 10.0)),
    ("limiter_denied", ("svc", "max_wait")),
    ("rate_limit_violation", ("svc", 2.0)),
    ("cooldown_started", ("svc", 2.0)),
    ("server_limits_seen", ("svc", 100.0, 1000.0)),
    ("working_rate_changed", ("svc", 60.0, 600.0, "decrease")),
    ("tokens_used", ("svc", 10.0, 8.0)),
    ("breaker_transition", ("svc", "closed", "open")),
    ("breaker_rejected", ("svc",)),
    ("retry_scheduled", ("svc", 1, 0.5, RetryErrorType.RATE_LIMIT)),
    ("retry_gave_up", ("svc", 3, RetryErrorType.RATE_LIMIT)),
    ("retry_budget_refused", ("svc",)),
    ("quota_exhausted", ("svc",)),
    ("fallback_taken", ("svc", "backup", RetryErrorType.SERVER_ERROR)),
    ("shared_state_changed", ("svc", False)),
    ("first_token", ("svc", 0.1)),
]


class Recorder:
    """An inner hook that keeps every call it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record


class OldHook:
    """A hook older than 0.2: no working_rate_changed, no shared_state_changed."""

    def __getattr__(self, name: str) -> Any:
        if name in ("working_rate_changed", "shared_state_changed"):
            raise AttributeError(name)
        return lambda *args: None


def _hook(inner: Any) -> tuple[OtelHook, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    return OtelHook(inner, Instruments(meter), "svc", "openai"), reader


def _values(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, Any] = {}
    for metric in data.resource_metrics[0].scope_metrics[0].metrics:
        point: Any
        [point] = metric.data.data_points
        found[metric.name] = getattr(point, "value", None)
        if found[metric.name] is None:
            found[metric.name] = (point.count, point.sum)
    return found


def test_every_event_reaches_the_inner_hook_in_order() -> None:
    """Each of the protocol's events is passed on unchanged, once, in order."""
    inner = Recorder()
    hook, _ = _hook(inner)
    for name, args in EVENTS:
        getattr(hook, name)(*args)
    assert EVENTS == inner.calls


def test_events_become_instruments() -> None:
    """Each event of the limiter, retrier and breaker lands in its instrument with its value."""
    hook, reader = _hook(MetricsCollector(clock=FakeClock()))
    for name, args in EVENTS:
        getattr(hook, name)(*args)
    assert {
        "llm_rate_limiter.limiter.wait": (1, 0.125),
        "llm_rate_limiter.limiter.denials": 1,
        "llm_rate_limiter.rate_limited": 1,
        "llm_rate_limiter.limiter.cooldowns": 1,
        "llm_rate_limiter.limiter.working_rate.requests": 60.0,
        "llm_rate_limiter.limiter.working_rate.tokens": 600.0,
        "llm_rate_limiter.breaker.state": 2,
        "llm_rate_limiter.breaker.transitions": 1,
        "llm_rate_limiter.breaker.rejections": 1,
        "llm_rate_limiter.retries": 1,
        "llm_rate_limiter.retry.give_ups": 1,
        "llm_rate_limiter.quota_exhausted": 1,
        "llm_rate_limiter.fallbacks": 1,
    } == _values(reader)


def test_hooks_older_than_0_2_are_fine() -> None:
    """An inner hook without the newer events gets none of them, and nothing breaks."""
    hook, reader = _hook(OldHook())
    hook.working_rate_changed("svc", None, 600.0, "start")
    hook.working_rate_changed("svc", None, None, "announced")  # no limit: not reported
    hook.shared_state_changed("svc", True)
    assert {"llm_rate_limiter.limiter.working_rate.tokens": 600.0} == _values(reader)


def test_unknown_service_is_its_own_provider() -> None:
    """An event for another service name carries that name as its provider."""
    hook, reader = _hook(Recorder())
    hook.breaker_rejected("other")
    data = reader.get_metrics_data()
    assert data is not None
    [point] = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert {"llm_rate_limiter.provider": "other", "gen_ai.provider.name": "other"} == attrs(point)


def test_events_land_on_the_current_span(telemetry: Telemetry) -> None:
    """Inside a recording span the explaining events become span events with their values."""
    hook, _ = _hook(Recorder())
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("outer"):
        for name, args in EVENTS:
            getattr(hook, name)(*args)
    [span] = telemetry.spans("outer")
    assert [
        "llm_rate_limiter.limiter.wait",
        "llm_rate_limiter.limiter.denied",
        "llm_rate_limiter.limiter.cooldown",
        "llm_rate_limiter.breaker.transition",
        "llm_rate_limiter.breaker.rejected",
        "llm_rate_limiter.retry",
        "llm_rate_limiter.retry.gave_up",
        "llm_rate_limiter.retry.budget_refused",
        "llm_rate_limiter.fallback",
    ] == [e.name for e in span.events]
    [wait] = events(span, "llm_rate_limiter.limiter.wait")
    assert {"llm_rate_limiter.limiter.wait": 0.125, "llm_rate_limiter.limiter.tokens": 10.0} == wait


@pytest.mark.parametrize("seconds", [0.0])
def test_a_wait_of_nothing_is_no_event(telemetry: Telemetry, seconds: float) -> None:
    """An admission that did not wait is measured but adds no span event."""
    hook, reader = _hook(Recorder())
    with telemetry.tracer_provider.get_tracer("test").start_as_current_span("outer"):
        hook.limiter_waited("svc", seconds, 0.0)
    assert [] == list(telemetry.spans("outer")[0].events)
    assert (1, 0.0) == _values(reader)["llm_rate_limiter.limiter.wait"]
