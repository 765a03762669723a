# SPDX-License-Identifier: MIT
"""
Prometheus exposition of the metrics collector (the ``prometheus`` extra).

`PrometheusCollector` is a custom ``prometheus_client`` collector: it builds
metric families from the `MetricsCollector` snapshot at scrape time, so
recording an event costs nothing extra. Labels are service names and fixed
words only, never a credential. ``prometheus_client`` is imported lazily.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from ._collector import MetricsCollector

__all__ = ["PrometheusCollector", "register_prometheus"]

#: Circuit states as numbers for ``llm_circuit_state``.
CIRCUIT_STATE_VALUES = {"closed": 0.0, "open": 1.0, "half_open": 2.0}
_QUANTILES = (("0.5", "p50_latency"), ("0.95", "p95_latency"), ("0.99", "p99_latency"))


def _import_prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        msg = (
            "Prometheus export needs prometheus-client: "
            "install it with `pip install 'llm-rate-limiter[prometheus]'`"
        )
        raise ImportError(msg) from exc
    return prometheus_client


class PrometheusCollector:
    """
    A ``prometheus_client`` collector reading a `MetricsCollector` at scrape time.

    Metrics (label ``provider`` is the service name): ``llm_requests_total``
    {provider, outcome}, ``llm_attempts_total``{provider, error},
    ``llm_request_duration_seconds`` (summary, p50/p95/p99 of recent calls),
    ``llm_ratelimit_wait_seconds`` (summary), ``llm_ratelimit_denials_total``,
    ``llm_ratelimit_violations_total``, ``llm_circuit_state`` (0 closed, 1 open,
    2 half-open), ``llm_circuit_openings_total``, ``llm_retries_total``,
    ``llm_fallbacks_total``, ``llm_tokens_total``{provider, kind} and
    ``llm_health_score``.

    Args:
        collector: The metrics to expose.

    Raises:
        ImportError: ``prometheus_client`` is not installed.

    .. versionadded:: 0.1.0
    """

    def __init__(self, collector: MetricsCollector) -> None:
        _import_prometheus()
        self._collector = collector

    def describe(self) -> list[Metric]:
        """Describe nothing up front: names are checked at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families of the current snapshot."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            SummaryMetricFamily,
        )
        from prometheus_client.samples import Sample

        snapshots = {s: self._collector.service_metrics(s) for s in self._collector.services()}
        health = self._collector.health()["services"]
        p = ["provider"]
        requests = CounterMetricFamily("llm_requests", "Calls by outcome.", labels=[*p, "outcome"])
        attempts = CounterMetricFamily(
            "llm_attempts", "Attempts by error type ('none' = success).", labels=[*p, "error"]
        )
        duration = SummaryMetricFamily(
            "llm_request_duration_seconds", "Call latency (all attempts).", labels=p
        )
        wait = SummaryMetricFamily(
            "llm_ratelimit_wait_seconds", "Time spent waiting in the limiter.", labels=p
        )
        simple = {
            "denials": CounterMetricFamily(
                "llm_ratelimit_denials", "Calls the local limiter refused.", labels=p
            ),
            "rate_limit_violations": CounterMetricFamily(
                "llm_ratelimit_violations", "Server 429s despite local limiting.", labels=p
            ),
            "breaker_openings": CounterMetricFamily(
                "llm_circuit_openings", "Times the circuit breaker opened.", labels=p
            ),
            "retries": CounterMetricFamily("llm_retries", "Retries scheduled.", labels=p),
            "fallbacks_taken": CounterMetricFamily(
                "llm_fallbacks", "Calls handed to a fallback provider.", labels=p
            ),
        }
        state = GaugeMetricFamily(
            "llm_circuit_state", "Circuit state: 0 closed, 1 open, 2 half-open.", labels=p
        )
        tokens = CounterMetricFamily("llm_tokens", "Tokens by kind.", labels=[*p, "kind"])
        score = GaugeMetricFamily("llm_health_score", "Health score, 0 to 100.", labels=p)
        for name, m in snapshots.items():
            for outcome, key in (
                ("success", "successful_requests"),
                ("failure", "failed_requests"),
                ("cancelled", "cancelled_requests"),
            ):
                requests.add_metric([name, outcome], m[key])
            attempts.add_metric([name, "none"], m["total_attempts"] - m["failed_attempts"])
            for kind, n in m["error_patterns"].items():
                attempts.add_metric([name, kind], n)
            ended = m["successful_requests"] + m["failed_requests"]
            for quantile, key in _QUANTILES:
                if m[key] is not None:
                    duration.samples.append(
                        Sample(duration.name, {"provider": name, "quantile": quantile}, m[key])
                    )
            duration.add_metric([name], ended, m["average_call_latency"] * ended)
            wait.add_metric([name], m["limiter_admissions"], m["total_wait_time"])
            for key, family in simple.items():
                family.add_metric([name], m[key])
            state.add_metric([name], CIRCUIT_STATE_VALUES.get(m["circuit_state"], 0.0))
            tokens.add_metric([name, "estimated"], m["tokens_estimated"])
            tokens.add_metric([name, "used"], m["tokens_used"])
            score.add_metric([name], health[name]["health_score"])
        yield from (requests, attempts, duration, wait, *simple.values(), state, tokens, score)


def register_prometheus(
    collector: MetricsCollector, registry: CollectorRegistry | None = None
) -> PrometheusCollector:
    """
    Expose *collector* to Prometheus by registering a `PrometheusCollector`.

    Args:
        collector: The metrics to expose.
        registry: Defaults to ``prometheus_client.REGISTRY``.

    Returns:
        The registered collector (pass it to ``registry.unregister`` to remove it).

    Raises:
        ImportError: ``prometheus_client`` is not installed; the message names
            the ``llm-rate-limiter[prometheus]`` extra.

    .. versionadded:: 0.1.0
    """
    prometheus_client = _import_prometheus()
    exporter = PrometheusCollector(collector)
    (registry or prometheus_client.REGISTRY).register(exporter)
    return exporter
