# SPDX-License-Identifier: MIT
"""The Prometheus exposition stays valid with many clients: one exporter per registry."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import AsyncIterator

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llm_rate_limiter import AsyncLLMClient, ProviderConfig
from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.exceptions import ConfigurationError
from llm_rate_limiter.monitoring import (
    MetricsCollector,
    PrometheusCollector,
    register_prometheus,
    unregister_prometheus,
)
from llm_rate_limiter.testing import FakeClock

pytestmark = pytest.mark.anyio

Key = tuple[str, frozenset[tuple[str, str]]]


def traffic(metrics: MetricsCollector, service: str, ok: int, failed: int = 0) -> None:
    """Record *ok* successful and *failed* timed-out calls of 1 s each, with tokens."""
    for i in range(ok + failed):
        error = None if i < ok else RetryErrorType.TIMEOUT
        metrics.call_started(service)
        metrics.limiter_waited(service, 0.0, 10.0)
        metrics.attempt_finished(service, 1.0, error)
        metrics.call_finished(service, "success" if error is None else "failure", 1.0, 1)
        metrics.tokens_used(service, 10.0, 12.0)


def client(*providers: str) -> AsyncLLMClient:
    """A real client whose providers point at a closed local port (nothing is sent)."""
    configs = [
        ProviderConfig(name=name, base_url="http://127.0.0.1:9/v1", api_key="sk-test")
        for name in providers
    ]
    return AsyncLLMClient(configs, clock=FakeClock())


def families(registry: CollectorRegistry) -> list[prometheus_client.Metric]:
    """Parse the registry's exposition text."""
    return list(text_string_to_metric_families(generate_latest(registry).decode()))


def samples(registry: CollectorRegistry) -> list[tuple[Key, float]]:
    """Every sample of the exposition as ((name, labels), value), duplicates kept."""
    return [
        ((s.name, frozenset(s.labels.items())), s.value)
        for family in families(registry)
        for s in family.samples
    ]


def key(name: str, **labels: str) -> Key:
    """A sample key."""
    return name, frozenset(labels.items())


def duplicates(registry: CollectorRegistry) -> tuple[list[str], list[Key]]:
    """The family names and the (name, labels) series that occur more than once."""
    names = Counter(f.name for f in families(registry))
    series = Counter(k for k, _ in samples(registry))
    return [n for n, c in names.items() if c > 1], [k for k, c in series.items() if c > 1]


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry per test."""
    return CollectorRegistry()


@pytest.fixture
async def clients(registry: CollectorRegistry) -> AsyncIterator[tuple[AsyncLLMClient, ...]]:
    """Two live clients, both with a provider named openai, registered on *registry*."""
    a, b = client("openai", "moonshot"), client("openai")
    traffic(a.metrics, "openai", ok=3, failed=1)
    traffic(a.metrics, "moonshot", ok=1)
    traffic(b.metrics, "openai", ok=5)
    register_prometheus(a.metrics, registry)
    register_prometheus(b.metrics, registry)
    yield a, b
    await a.aclose()
    await b.aclose()


class TestManyClients:
    async def test_two_clients_give_one_family_per_metric_and_distinct_series(
        self, registry, clients
    ):
        """Two clients sharing a provider name give no duplicate family and no duplicate series."""
        text = generate_latest(registry).decode()
        assert ([], []) == duplicates(registry)
        assert 1 == text.count("# TYPE llm_requests_total counter")

    async def test_each_client_keeps_its_own_values(self, registry, clients):
        """Each client's series carry its client label and its own counts."""
        found = dict(samples(registry))
        success = {"provider": "openai", "outcome": "success"}
        assert 3.0 == found[key("llm_requests_total", client="default", **success)]
        assert 5.0 == found[key("llm_requests_total", client="2", **success)]
        moonshot = {"provider": "moonshot", "outcome": "success"}
        assert 1.0 == found[key("llm_requests_total", client="default", **moonshot)]

    async def test_closed_client_series_leave(self, registry, clients):
        """After one client closes only the other's series remain, without a client label."""
        a, _ = clients
        await a.aclose()
        found = dict(samples(registry))
        labels = {label for k, _ in found.items() for label, _ in k[1]}
        assert ([], []) == duplicates(registry)
        assert 5.0 == found[key("llm_requests_total", provider="openai", outcome="success")]
        assert "client" not in labels
        assert not any(("provider", "moonshot") in k[1] for k in found)

    async def test_named_clients_keep_their_label_after_one_closes(self, registry):
        """Clients registered with a name keep client=<name>; a closed one's series are gone."""
        a, b = client("openai"), client("openai")
        traffic(a.metrics, "openai", ok=2)
        traffic(b.metrics, "openai", ok=4)
        register_prometheus(a.metrics, registry, name="tenant-a")
        register_prometheus(b.metrics, registry, name="tenant-b")
        await a.aclose()
        clients_seen = {dict(k[1]).get("client") for k, _ in samples(registry)}
        success = key("llm_requests_total", client="tenant-b", provider="openai", outcome="success")
        assert {"tenant-b"} == clients_seen
        assert 4.0 == dict(samples(registry))[success]
        await b.aclose()

    async def test_last_close_unregisters_the_exporter(self, registry, clients):
        """When every client is closed the exporter leaves the registry; a new one starts afresh."""
        exporter = register_prometheus(clients[0].metrics, registry)  # already there: the same
        for c in clients:
            await c.aclose()
        empty = generate_latest(registry)
        with pytest.raises(KeyError):
            registry.unregister(exporter)
        fresh = MetricsCollector()
        traffic(fresh, "openai", ok=1)
        register_prometheus(fresh, registry)
        found = dict(samples(registry))
        assert b"" == empty
        assert 1.0 == found[key("llm_requests_total", provider="openai", outcome="success")]


class TestRegistration:
    async def test_a_name_taken_by_another_collector_is_refused(self, registry):
        """A second collector asking for a client name already in use gets ConfigurationError."""
        register_prometheus(MetricsCollector(), registry, name="tenant")
        with pytest.raises(ConfigurationError, match="tenant"):
            register_prometheus(MetricsCollector(), registry, name="tenant")

    async def test_auto_labels_skip_explicit_names(self, registry):
        """An unnamed collector never takes a label another collector was given by name."""
        hub = register_prometheus(MetricsCollector(), registry, name="2")
        assert ["default", "3"] == [hub.add(MetricsCollector()), hub.add(MetricsCollector())]

    async def test_registering_twice_changes_nothing(self, registry):
        """The same collector registered twice is served once, under its first label."""
        metrics = MetricsCollector()
        traffic(metrics, "openai", ok=1)
        first = register_prometheus(metrics, registry)
        assert first is register_prometheus(metrics, registry)
        assert ([], []) == duplicates(registry)
        assert (
            1.0
            == dict(samples(registry))[
                key("llm_requests_total", provider="openai", outcome="success")
            ]
        )

    async def test_unregister_reports_whether_it_removed(self, registry):
        """unregister_prometheus answers True once, then False; the registry is left empty."""
        metrics = MetricsCollector()
        register_prometheus(metrics, registry)
        other = CollectorRegistry()
        results = [unregister_prometheus(metrics, other), unregister_prometheus(metrics, registry)]
        assert [False, True, False] == [*results, unregister_prometheus(metrics)]
        assert b"" == generate_latest(registry)

    async def test_default_registry_round_trip(self, monkeypatch):
        """Without a registry both calls use prometheus_client.REGISTRY."""
        default = CollectorRegistry()
        monkeypatch.setattr(prometheus_client, "REGISTRY", default)
        metrics = MetricsCollector()
        register_prometheus(metrics)
        exposed = b"# TYPE llm_requests_total counter" in generate_latest(default)
        unregister_prometheus(metrics)
        assert (True, b"") == (exposed, generate_latest(default))

    async def test_hand_unregistered_exporter_is_replaced(self, registry):
        """After registry.unregister(exporter) by hand, the next registration exposes again."""
        registry.unregister(register_prometheus(MetricsCollector(), registry))
        metrics = MetricsCollector()
        traffic(metrics, "openai", ok=1)
        register_prometheus(metrics, registry)
        found = dict(samples(registry))
        assert 1.0 == found[key("llm_requests_total", provider="openai", outcome="success")]

    async def test_aclose_leaves_hand_made_exporters_too(self, registry):
        """A client's aclose() also withdraws its metrics from a hand-made PrometheusCollector."""
        c = client("openai")
        traffic(c.metrics, "openai", ok=1)
        registry.register(PrometheusCollector(c.metrics))
        before = len(samples(registry))
        await c.aclose()
        assert (True, []) == (before > 0, samples(registry))

    async def test_aclose_without_prometheus_client(self, monkeypatch):
        """aclose() and unregister_prometheus() work when prometheus_client cannot be imported."""
        c = client("openai")
        monkeypatch.setitem(sys.modules, "prometheus_client", None)
        await c.aclose()
        assert False is unregister_prometheus(c.metrics)


class TestConventions:
    async def test_histogram_buckets_are_cumulative_and_count_every_call(self, registry):
        """Latency buckets are cumulative and include their bound; +Inf and _count are the calls."""
        metrics = MetricsCollector()
        latencies = [0.01, 0.015, 0.3, 2.0, 100.0]
        for latency in latencies:
            metrics.call_finished("openai", "success", latency, 1)
        metrics.call_finished("openai", "cancelled", 5.0, 1)  # not a latency
        register_prometheus(metrics, registry)
        found = samples(registry)
        name = "llm_request_duration_seconds"
        buckets = [(dict(k[1])["le"], v) for k, v in found if k[0] == f"{name}_bucket"]
        values = dict(found)
        counts = [v for _, v in buckets]
        assert sorted(counts) == counts
        chosen = tuple(dict(buckets)[le] for le in ("0.01", "0.02", "0.32", "2.56"))
        assert (1.0, 2.0, 3.0, 4.0) == chosen
        assert 5.0 == dict(buckets)["+Inf"] == values[key(f"{name}_count", provider="openai")]
        assert sum(latencies) == pytest.approx(values[key(f"{name}_sum", provider="openai")])

    async def test_wait_histogram(self, registry):
        """Limiter waits are a histogram: an immediate admission falls in the first bucket."""
        metrics = MetricsCollector()
        for seconds in (0.0, 0.5, 61.0):
            metrics.limiter_waited("openai", seconds, 1.0)
        register_prometheus(metrics, registry)
        values = dict(samples(registry))
        name = "llm_ratelimit_wait_seconds"
        les = [
            values[key(f"{name}_bucket", provider="openai", le=le)]
            for le in ("0.001", "0.5", "60.0", "+Inf")
        ]
        assert ([1.0, 2.0, 2.0, 3.0], 3.0) == (les, values[key(f"{name}_count", provider="openai")])
        assert {"histogram"} == {f.type for f in families(registry) if f.name == name}

    async def test_circuit_state_has_one_current_state(self, registry, clients):
        """Every provider of every client has the three states, exactly one of them at 1."""
        a, _ = clients
        a.metrics.breaker_transition("openai", "closed", "open")
        states: dict[tuple[str, str], dict[str, float]] = {}
        for (name, labels), value in samples(registry):
            if name == "llm_circuit_state":
                d = dict(labels)
                states.setdefault((d["client"], d["provider"]), {})[d["state"]] = value
        assert {("default", "openai"), ("default", "moonshot"), ("2", "openai")} == set(states)
        every = {"closed", "open", "half_open"}
        assert all(
            (every, [0.0, 0.0, 1.0]) == (set(s), sorted(s.values())) for s in states.values()
        )
        assert 1.0 == states["default", "openai"]["open"] == states["2", "openai"]["closed"]

    async def test_tokens_are_two_counters(self, registry):
        """Estimated and used tokens are separate counters; there is no kind label."""
        metrics = MetricsCollector()
        metrics.tokens_used("openai", 100.0, 120.0)
        register_prometheus(metrics, registry)
        values = dict(samples(registry))
        names = {f.name for f in families(registry)}
        assert 100.0 == values[key("llm_tokens_estimated_total", provider="openai")]
        assert 120.0 == values[key("llm_tokens_used_total", provider="openai")]
        assert "llm_tokens" not in names

    async def test_attempts_name_an_error_only_on_failures(self, registry):
        """Successful attempts have outcome=success and no error label; failures carry the kind."""
        metrics = MetricsCollector()
        traffic(metrics, "openai", ok=3, failed=2)
        register_prometheus(metrics, registry)
        attempts = {k[1]: v for k, v in samples(registry) if k[0] == "llm_attempts_total"}
        success = frozenset({("provider", "openai"), ("outcome", "success")})
        failure = success - {("outcome", "success")} | {
            ("outcome", "failure"),
            ("error", "timeout"),
        }
        assert {success: 3.0, failure: 2.0} == attempts
