# SPDX-License-Identifier: MIT
from __future__ import annotations

import sys

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.monitoring import MetricsCollector, PrometheusCollector, register_prometheus
from llm_rate_limiter.testing import FakeClock

SECRET = "sk-test-0123456789abcdef"


def scrape(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse the exposition text into {(sample name, labels): value}."""
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def collector() -> MetricsCollector:
    """A collector with a little traffic on two providers."""
    c = MetricsCollector(clock=FakeClock())
    for i in range(1, 5):
        c.call_started("openai")
        c.limiter_waited("openai", 0.5, 100.0)
        c.attempt_finished("openai", float(i), None if i < 4 else RetryErrorType.TIMEOUT)
        c.call_finished("openai", "success" if i < 4 else "failure", float(i), 1)
    c.retry_scheduled("openai", 1, 1.0, RetryErrorType.TIMEOUT)
    c.limiter_denied("openai", "max_wait")
    c.rate_limit_violation("openai", 2.0)
    c.tokens_used("openai", 100.0, 120.0)
    c.fallback_taken("openai", "moonshot", RetryErrorType.TIMEOUT)
    c.breaker_transition("moonshot", "closed", "open")
    return c


@pytest.fixture
def registry(collector: MetricsCollector) -> CollectorRegistry:
    """A fresh registry exposing the collector."""
    registry = CollectorRegistry()
    register_prometheus(collector, registry)
    return registry


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    """A sample key."""
    return name, frozenset(labels.items())


class TestExposition:
    def test_counters_and_labels(self, registry):
        """Requests, denials, violations, retries, fallbacks and tokens are exposed."""
        samples = scrape(registry)
        assert 3.0 == samples[key("llm_requests_total", provider="openai", outcome="success")]
        assert 1.0 == samples[key("llm_requests_total", provider="openai", outcome="failure")]
        assert 1.0 == samples[key("llm_attempts_total", provider="openai", error="timeout")]
        assert 1.0 == samples[key("llm_ratelimit_denials_total", provider="openai")]
        assert 1.0 == samples[key("llm_ratelimit_violations_total", provider="openai")]
        assert 1.0 == samples[key("llm_retries_total", provider="openai")]
        assert 1.0 == samples[key("llm_fallbacks_total", provider="openai")]
        assert 120.0 == samples[key("llm_tokens_total", provider="openai", kind="used")]
        assert 100.0 == samples[key("llm_tokens_total", provider="openai", kind="estimated")]

    def test_summaries(self, registry):
        """Call duration has quantiles, count and sum; the limiter wait has count and sum."""
        samples = scrape(registry)
        d = "llm_request_duration_seconds"
        assert 2.0 == samples[key(d, provider="openai", quantile="0.5")]
        assert 4.0 == samples[key(d, provider="openai", quantile="0.99")]
        assert 4.0 == samples[key(f"{d}_count", provider="openai")]
        assert 10.0 == samples[key(f"{d}_sum", provider="openai")]
        assert 4.0 == samples[key("llm_ratelimit_wait_seconds_count", provider="openai")]
        assert 2.0 == samples[key("llm_ratelimit_wait_seconds_sum", provider="openai")]

    def test_circuit_state_and_health(self, registry):
        """An open breaker is 1 and a closed one 0; the health score is exposed."""
        samples = scrape(registry)
        assert 1.0 == samples[key("llm_circuit_state", provider="moonshot")]
        assert 0.0 == samples[key("llm_circuit_state", provider="openai")]
        assert 1.0 == samples[key("llm_circuit_openings_total", provider="moonshot")]
        assert 49.0 == samples[key("llm_health_score", provider="moonshot")]

    def test_scrape_reads_live_data(self, collector, registry):
        """A later scrape sees events recorded after registration."""
        collector.breaker_transition("moonshot", "open", "half_open")
        assert 2.0 == scrape(registry)[key("llm_circuit_state", provider="moonshot")]

    def test_labels_are_provider_names_and_fixed_words(self, registry):
        """No label value is anything but a provider name or a fixed word."""
        text = generate_latest(registry).decode()
        assert SECRET not in text
        values = {v for _, labels in scrape(registry) for _, v in labels}
        fixed = {"success", "failure", "cancelled", "none", "estimated", "used", "timeout"}
        assert values <= {"openai", "moonshot", "0.5", "0.95", "0.99"} | fixed


class TestOptionalImport:
    def test_missing_prometheus_client_names_the_extra(self, monkeypatch):
        """Without prometheus_client the ImportError names llm-rate-limiter[prometheus]."""
        monkeypatch.setitem(sys.modules, "prometheus_client", None)
        with pytest.raises(ImportError, match=r"llm-rate-limiter\[prometheus\]"):
            PrometheusCollector(MetricsCollector())

    def test_default_registry(self, monkeypatch):
        """Without a registry the default REGISTRY is used."""
        import prometheus_client

        registry = CollectorRegistry()
        monkeypatch.setattr(prometheus_client, "REGISTRY", registry)
        exporter = register_prometheus(MetricsCollector())
        assert b"# TYPE llm_requests_total counter" in generate_latest(registry)
        registry.unregister(exporter)
