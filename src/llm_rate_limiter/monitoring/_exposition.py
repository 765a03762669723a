# SPDX-License-Identifier: MIT
"""
The metric families of the Prometheus exporter, built at scrape time.

`build_families` turns ``(client label, MetricsCollector)`` pairs into one
``prometheus_client`` family per metric name, however many collectors there
are, so the exposition never repeats a ``# TYPE`` line. A series is labelled
by its provider and, when the exporter says so, its client: two clients with
a provider of the same name never share a label set. The caller imports
``prometheus_client`` first (`_prometheus` raises the ImportError that names
the extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._stats import LATENCY_BUCKETS, WAIT_BUCKETS

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ._collector import MetricsCollector

__all__ = ["CIRCUIT_STATES", "build_families"]

#: The states of ``llm_circuit_state``: one series each, 1 for the current state.
CIRCUIT_STATES = ("closed", "open", "half_open")

#: Plain counters: (snapshot key, metric name without ``_total``, help).
_COUNTERS = (
    ("denials", "llm_ratelimit_denials", "Calls the local limiter refused."),
    ("rate_limit_violations", "llm_ratelimit_violations", "Server 429s despite local limiting."),
    ("breaker_openings", "llm_circuit_openings", "Times the circuit breaker opened."),
    ("retries", "llm_retries", "Retries scheduled."),
    ("fallbacks_taken", "llm_fallbacks", "Calls handed to a fallback provider."),
    ("tokens_estimated", "llm_tokens_estimated", "Tokens estimated before sending."),
    ("tokens_used", "llm_tokens_used", "Tokens consumed (the reported usage, else the estimate)."),
)
_OUTCOMES = (
    ("success", "successful_requests"),
    ("failure", "failed_requests"),
    ("shed", "shed_requests"),
    ("cancelled", "cancelled_requests"),
)
#: Where shed calls went: (``destination`` label, snapshot key).
_SHED = (("fallback", "shed_to_fallback"), ("error", "shed_unserved"))


def _bounds(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The ``le`` values of *bounds* and +Inf, written as prometheus_client writes them."""
    return (*(repr(float(b)) for b in bounds), "+Inf")


def build_families(members: Sequence[tuple[str | None, MetricsCollector]]) -> list[Metric]:
    """
    Return the metric families of every collector in *members*.

    Args:
        members: ``(client label, collector)`` pairs; a label of None adds no
            ``client`` label (the exporter passes None for all or for none).
    """
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )
    from prometheus_client.samples import Sample

    requests = CounterMetricFamily(
        "llm_requests", "Calls by outcome: success, failure, shed (by the open breaker), cancelled."
    )
    failures = CounterMetricFamily(
        "llm_request_failures", "Failed calls by the kind of their final error."
    )
    shed = CounterMetricFamily(
        "llm_requests_shed",
        "Calls the open breaker turned away, by destination: fallback, or error (the caller).",
    )
    attempts = CounterMetricFamily(
        "llm_attempts", "Attempts by outcome; a failure carries its error type."
    )
    duration = HistogramMetricFamily(
        "llm_request_duration_seconds", "Latency of the calls that ended, all attempts included."
    )
    wait = HistogramMetricFamily(
        "llm_ratelimit_wait_seconds", "Time an admitted call waited in the rate limiter."
    )
    counters = [(key, CounterMetricFamily(name, text)) for key, name, text in _COUNTERS]
    state = GaugeMetricFamily(
        "llm_circuit_state", "Circuit breaker state: 1 for the current state, 0 for the others."
    )
    score = GaugeMetricFamily("llm_health_score", "Health score, 0 to 100.")
    working = GaugeMetricFamily(
        "llm_ratelimit_working_rate",
        "Rate the limiter admits at now, per second, by dimension (requests, tokens): "
        "the configured rate, or the working rate an adaptive limiter learned.",
    )
    latency_les, wait_les = _bounds(LATENCY_BUCKETS), _bounds(WAIT_BUCKETS)

    def add(family: Metric, suffix: str, labels: dict[str, str], value: float) -> None:
        family.samples.append(Sample(family.name + suffix, labels, value))

    def histogram(
        family: Metric,
        labels: dict[str, str],
        les: tuple[str, ...],
        counts: list[int],
        total: float,
    ) -> None:
        running = 0  # the counts are per bucket: the exposition wants them cumulative
        for le, n in zip(les, counts or [0] * len(les), strict=True):
            running += n
            add(family, "_bucket", {**labels, "le": le}, running)
        add(family, "_count", labels, running)
        add(family, "_sum", labels, total)

    for client, collector in members:
        health = collector.health()["services"]
        for name in collector.services():
            m = collector.service_metrics(name)
            base = {"provider": name} if client is None else {"client": client, "provider": name}
            for outcome, key in _OUTCOMES:
                add(requests, "_total", {**base, "outcome": outcome}, m[key])
            for kind, n in m["failures_by_kind"].items():
                add(failures, "_total", {**base, "error": kind}, n)
            for destination, key in _SHED:
                add(shed, "_total", {**base, "destination": destination}, m[key])
            ok = m["total_attempts"] - m["failed_attempts"]
            add(attempts, "_total", {**base, "outcome": "success"}, ok)
            for kind, n in m["error_patterns"].items():
                add(attempts, "_total", {**base, "outcome": "failure", "error": kind}, n)
            s = collector._services.get(name)  # None if reset() ran since services()
            if s is None:
                histogram(duration, base, latency_les, [], 0.0)
                histogram(wait, base, wait_les, [], 0.0)
            else:  # copies: a scrape may run in another thread
                histogram(
                    duration, base, latency_les, list(s.latency_buckets), s.call_latency_total
                )
                histogram(wait, base, wait_les, list(s.wait_buckets), s.wait_total)
            for key, family in counters:
                add(family, "_total", base, m[key])
            for circuit in CIRCUIT_STATES:
                add(state, "", {**base, "state": circuit}, float(m["circuit_state"] == circuit))
            if name in health:
                add(score, "", base, health[name]["health_score"])
            for dimension in ("requests", "tokens"):
                per_minute = m[f"working_{dimension}_per_minute"]
                if per_minute is not None:
                    add(working, "", {**base, "dimension": dimension}, per_minute / 60.0)
    families = [requests, failures, shed, attempts, duration, wait, *(f for _, f in counters)]
    return [*families, state, score, working]
