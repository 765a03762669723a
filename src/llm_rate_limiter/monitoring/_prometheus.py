# SPDX-License-Identifier: MIT
"""
Prometheus exposition of metrics collectors (the ``prometheus`` extra).

One `PrometheusCollector` per ``prometheus_client`` registry serves every
`MetricsCollector` registered with it: `register_prometheus` adds a collector
to the exporter of its registry (creating and registering that exporter the
first time), `unregister_prometheus` takes it out again (and
``AsyncLLMClient.aclose()`` takes out the client's own), so the exposition
has one ``# TYPE`` line per metric and no duplicate series however many
clients come and go. The families are built from the collectors' state at
scrape time (`_exposition`): recording an event costs nothing extra. Labels
are provider names, client names and fixed words, never a credential.
``prometheus_client`` is imported lazily; unregistering never imports it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from ._exposition import build_families

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from ._collector import MetricsCollector

__all__ = ["PrometheusCollector", "register_prometheus", "unregister_prometheus"]

# One lock for every exporter's membership and the maps below (re-entrant: an
# exporter created under it adds itself to _EXPORTERS).
_LOCK = threading.RLock()
#: The exporter `register_prometheus` made for each registry.
_HUBS: weakref.WeakKeyDictionary[CollectorRegistry, PrometheusCollector] = (
    weakref.WeakKeyDictionary()
)
#: Every live exporter, hand-made ones included: what `unregister_prometheus` searches.
_EXPORTERS: weakref.WeakSet[PrometheusCollector] = weakref.WeakSet()


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
    A ``prometheus_client`` collector serving any number of `MetricsCollector` objects.

    Metrics, read at scrape time (label ``provider`` is the service name):

    - ``llm_requests_total{provider, outcome}`` -- calls by outcome:
      ``success`` (served), ``failure`` (failed at the provider or locally),
      ``shed`` (turned away by the open circuit breaker without being sent;
      added in 0.3.0) and ``cancelled`` (by the caller); they add up, with the
      calls in flight, to the calls started;
    - ``llm_request_failures_total{provider, error}`` -- failed calls by the
      kind of their final error (``server_error``, ``rate_limit``,
      ``unknown``, ...; added in 0.3.0);
    - ``llm_requests_shed_total{provider, destination}`` -- shed calls by where
      they went: ``fallback`` (handed to the next provider of the chain, where
      their outcome is counted) or ``error`` (returned as ``CircuitOpenError``;
      added in 0.3.0);
    - ``llm_attempts_total{provider, outcome, error}`` -- attempts;
      ``outcome="success"`` has no ``error`` label, ``outcome="failure"`` has
      the error type (``timeout``, ``rate_limit``, ...), as OpenTelemetry's
      ``error.type`` is set only on failures;
    - ``llm_request_duration_seconds`` -- histogram of the latency of calls that
      ended (cancelled ones excluded), buckets ``LATENCY_BUCKETS``: 0.01 s
      doubling to 81.92 s, the OpenTelemetry GenAI advice;
    - ``llm_ratelimit_wait_seconds`` -- histogram of the time admitted calls
      waited in the limiter, buckets ``WAIT_BUCKETS``: 0.001 s to 60 s;
    - counters ``llm_ratelimit_denials_total``, ``llm_ratelimit_violations_total``,
      ``llm_circuit_openings_total``, ``llm_retries_total``, ``llm_fallbacks_total``,
      ``llm_tokens_estimated_total`` and ``llm_tokens_used_total``;
    - ``llm_circuit_state{provider, state}`` -- 1 for the breaker's current
      state, 0 for the other two of ``closed``, ``open``, ``half_open``;
    - ``llm_health_score`` -- 0 to 100;
    - ``llm_ratelimit_working_rate{provider, dimension}`` -- the rate the
      limiter admits at now, **per second**, for ``dimension="requests"`` and
      ``"tokens"``: the configured rate, or the working rate an adaptive
      limiter (``RateLimits(adaptive=True)``) learned; no series for a
      dimension without a limit (added in 0.2.0).

    Each collector is known by a client label: the *name* it was added with,
    else ``"default"`` for the first and ``"2"``, ``"3"``, ... for the next
    ones (kept while it stays). Every series carries ``client="<label>"`` as
    soon as the exporter serves more than one collector or one added with a
    name; with a single unnamed collector the series have no ``client`` label.
    Give every client a *name* when its series must keep one label set.

    Args:
        collector: A first collector to serve.
        name: Its client label.

    Raises:
        ImportError: ``prometheus_client`` is not installed.
        ConfigurationError: See `add`.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, collector: MetricsCollector | None = None, *, name: str | None = None
    ) -> None:
        _import_prometheus()
        self._members: dict[str, MetricsCollector] = {}
        self._named: set[str] = set()
        self._serial = 0
        with _LOCK:
            _EXPORTERS.add(self)
        if collector is not None:
            self.add(collector, name=name)

    def add(self, collector: MetricsCollector, *, name: str | None = None) -> str:
        """
        Serve *collector* too and return its client label.

        Adding a collector already served changes nothing, unless a different
        *name* is given: it is then relabelled.

        Raises:
            ConfigurationError: *name* is empty, or another collector has it.

        .. versionadded:: 0.1.0
        """
        if name is not None and (not isinstance(name, str) or not name):
            msg = f"a client name must be a non-empty string, got {name!r}"
            raise ConfigurationError("name", msg)
        with _LOCK:
            current = self._label_of(collector)
            if current is not None and name in (None, current):
                return current
            if name is not None and name in self._members:
                msg = f"client name {name!r} is already taken by another MetricsCollector"
                raise ConfigurationError("name", msg)
            if current is not None:
                del self._members[current]
                self._named.discard(current)
            label = self._next_label() if name is None else name
            self._members[label] = collector
            if name is not None:
                self._named.add(label)
            return label

    def remove(self, collector: MetricsCollector) -> bool:
        """
        Stop serving *collector*; return whether it was served.

        .. versionadded:: 0.1.0
        """
        with _LOCK:
            label = self._label_of(collector)
            if label is None:
                return False
            del self._members[label]
            self._named.discard(label)
            return True

    def _label_of(self, collector: MetricsCollector) -> str | None:
        return next((label for label, c in self._members.items() if c is collector), None)

    def _next_label(self) -> str:
        while True:
            self._serial += 1
            label = "default" if self._serial == 1 else str(self._serial)
            if label not in self._members:
                return label

    def describe(self) -> list[Metric]:
        """Describe nothing up front: names are checked at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield one family per metric, with the series of every collector served."""
        with _LOCK:
            members = list(self._members.items())
            labelled = len(members) > 1 or bool(self._named)
        if members:
            yield from build_families([(label if labelled else None, c) for label, c in members])


def _registered(registry: CollectorRegistry, exporter: PrometheusCollector) -> bool:
    # Whether a hand-made registry.unregister(exporter) took it out; without the
    # (private) map of a future prometheus_client, trust our own bookkeeping.
    known = getattr(registry, "_collector_to_names", None)
    return known is None or exporter in known


def register_prometheus(
    collector: MetricsCollector,
    registry: CollectorRegistry | None = None,
    *,
    name: str | None = None,
) -> PrometheusCollector:
    """
    Expose *collector* through the one `PrometheusCollector` of *registry*.

    The first call for a registry creates its exporter and registers it; the
    next ones add their collector to it (see `PrometheusCollector` for the
    ``client`` label). Registering a collector twice changes nothing.

    Args:
        collector: The metrics to expose (``client.metrics`` for a client).
        registry: Defaults to ``prometheus_client.REGISTRY``.
        name: The client label of *collector* (default ``"default"``, ``"2"``, ...).

    Returns:
        The registry's exporter, shared by every collector registered with it:
        remove one collector with `unregister_prometheus`.

    Raises:
        ImportError: ``prometheus_client`` is not installed; the message names
            the ``llm-rate-limiter[prometheus]`` extra.
        ConfigurationError: *name* is empty or taken by another collector.

    .. versionadded:: 0.1.0
    """
    prometheus_client = _import_prometheus()
    target: CollectorRegistry = prometheus_client.REGISTRY if registry is None else registry
    with _LOCK:
        hub = _HUBS.get(target)
        if hub is not None and not _registered(target, hub):
            del _HUBS[target]
            hub = None
        fresh = hub is None
        exporter = PrometheusCollector() if hub is None else hub
        exporter.add(collector, name=name)
        if fresh:
            target.register(exporter)
            _HUBS[target] = exporter
    return exporter


def unregister_prometheus(
    collector: MetricsCollector, registry: CollectorRegistry | None = None
) -> bool:
    """
    Stop exposing *collector*: its series leave the next scrape.

    An exporter of `register_prometheus` left serving nothing is unregistered
    from its registry. ``AsyncLLMClient.aclose()`` calls this for the
    client's ``metrics``.

    Args:
        collector: The metrics to withdraw.
        registry: Only from this registry's exporter; by default from every
            `PrometheusCollector` (every registry, hand-made exporters too).

    Returns:
        Whether *collector* was exposed anywhere it was looked for.

    .. versionadded:: 0.1.0
    """
    with _LOCK:
        if registry is None:
            exporters = list(_EXPORTERS)
        else:
            hub = _HUBS.get(registry)
            exporters = [] if hub is None else [hub]
        removed = [exporter.remove(collector) for exporter in exporters]
        for target, hub in list(_HUBS.items()):
            if hub in exporters and not hub._members:
                del _HUBS[target]
                if _registered(target, hub):
                    target.unregister(hub)
    return any(removed)
