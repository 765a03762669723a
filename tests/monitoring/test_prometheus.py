# SPDX-License-Identifier: MIT
from __future__ import annotations

import sys

import openai
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llm_rate_limiter import AsyncLLMClient, ProviderConfig, RetryPolicy
from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.monitoring import MetricsCollector, PrometheusCollector, register_prometheus
from llm_rate_limiter.monitoring._stats import LATENCY_BUCKETS, WAIT_BUCKETS
from llm_rate_limiter.testing import FakeClock, FaultServer

SECRET = "sk-test-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "hi"}]


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
        assert 3.0 == samples[key("llm_attempts_total", provider="openai", outcome="success")]
        failed = key("llm_attempts_total", provider="openai", outcome="failure", error="timeout")
        assert 1.0 == samples[failed]
        assert 1.0 == samples[key("llm_ratelimit_denials_total", provider="openai")]
        assert 1.0 == samples[key("llm_ratelimit_violations_total", provider="openai")]
        assert 1.0 == samples[key("llm_retries_total", provider="openai")]
        assert 1.0 == samples[key("llm_fallbacks_total", provider="openai")]
        assert 120.0 == samples[key("llm_tokens_used_total", provider="openai")]
        assert 100.0 == samples[key("llm_tokens_estimated_total", provider="openai")]

    def test_histograms(self, registry):
        """Call duration and limiter wait are histograms: cumulative buckets, count and sum."""
        samples = scrape(registry)
        d = "llm_request_duration_seconds"
        # Calls of 1, 2, 3 and 4 s against buckets doubling from 0.01 s.
        assert [0.0, 1.0, 2.0, 4.0, 4.0] == [
            samples[key(f"{d}_bucket", provider="openai", le=le)]
            for le in ("0.64", "1.28", "2.56", "5.12", "+Inf")
        ]
        assert 4.0 == samples[key(f"{d}_count", provider="openai")]
        assert 10.0 == samples[key(f"{d}_sum", provider="openai")]
        w = "llm_ratelimit_wait_seconds"
        assert [0.0, 4.0] == [
            samples[key(f"{w}_bucket", provider="openai", le=le)] for le in ("0.25", "0.5")
        ]
        assert 4.0 == samples[key(f"{w}_count", provider="openai")]
        assert 2.0 == samples[key(f"{w}_sum", provider="openai")]

    def test_circuit_state_and_health(self, registry):
        """Each breaker's current state is 1 and the other two 0; the health score is exposed."""
        samples = scrape(registry)
        states = ("closed", "open", "half_open")
        assert {"moonshot": [0.0, 1.0, 0.0], "openai": [1.0, 0.0, 0.0]} == {
            p: [samples[key("llm_circuit_state", provider=p, state=s)] for s in states]
            for p in ("moonshot", "openai")
        }
        assert 1.0 == samples[key("llm_circuit_openings_total", provider="moonshot")]
        assert 49.0 == samples[key("llm_health_score", provider="moonshot")]

    def test_scrape_reads_live_data(self, collector, registry):
        """A later scrape sees events recorded after registration."""
        collector.breaker_transition("moonshot", "open", "half_open")
        samples = scrape(registry)
        assert [0.0, 1.0] == [
            samples[key("llm_circuit_state", provider="moonshot", state=s)]
            for s in ("open", "half_open")
        ]

    def test_labels_are_provider_names_and_fixed_words(self, collector, registry):
        """No label value is anything but a provider name or a fixed word, even when the
        free-form strings the collector keeps (a denial's reason) carry a secret."""
        collector.limiter_denied("openai", f"max_wait exceeded for key {SECRET}")
        assert {f"max_wait exceeded for key {SECRET}": 1, "max_wait": 1} == (
            collector.service_metrics("openai")["denial_reasons"]
        )
        text = generate_latest(registry).decode()
        assert SECRET not in text
        values = {v for _, labels in scrape(registry) for _, v in labels}
        fixed = {"success", "failure", "shed", "cancelled", "timeout", "closed", "open"}
        fixed |= {"half_open", "fallback", "error"}
        bounds = {repr(float(b)) for b in (*LATENCY_BUCKETS, *WAIT_BUCKETS)} | {"+Inf"}
        assert values <= {"openai", "moonshot"} | fixed | bounds
        assert 2.0 == scrape(registry)[key("llm_ratelimit_denials_total", provider="openai")]


class TestSecrets:
    @pytest.mark.anyio
    async def test_api_key_of_real_calls_never_exposed(self):
        """A client's API key, sent on served and refused calls, appears in no metric."""
        async with FaultServer() as server:
            config = ProviderConfig(
                name="openai",
                base_url=server.base_url,
                api_key=SECRET,
                model="mock-gpt",
                retry=RetryPolicy(max_retries=0),
            )
            async with AsyncLLMClient([config]) as client:
                registry = CollectorRegistry()
                register_prometheus(client.metrics, registry)
                await client.chat(MESSAGES)
                server.set_faults(unauthorized=True)
                with pytest.raises(openai.AuthenticationError) as caught:
                    await client.chat(MESSAGES)
                text = generate_latest(registry).decode()
                samples = scrape(registry)
        assert SECRET not in text
        assert SECRET[3:] not in text  # not even without its "sk-" prefix
        assert [] == [v for _, labels in samples for _, v in labels if SECRET[3:] in v]
        # The key really went out, and the served and the refused calls were both exposed.
        assert f"Bearer {SECRET}" == caught.value.response.request.headers["authorization"]
        assert (2, 1) == (server.stats().requests, server.stats().auth_errors)
        assert [1.0, 1.0] == [
            samples[key("llm_requests_total", provider="openai", outcome=outcome)]
            for outcome in ("success", "failure")
        ]


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
