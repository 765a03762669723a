# SPDX-License-Identifier: MIT
"""Reading what the in-memory exporter and reader hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_rate_limiter import AsyncLLMClient, ProviderConfig
from llm_rate_limiter.otel import instrument
from llm_rate_limiter.otel._instrument import SCOPE
from llm_rate_limiter.testing import FaultServer
from tests.client.helpers import MESSAGES
from tests.client.helpers import provider as client_provider

__all__ = ["MESSAGES", "Telemetry", "attrs", "client", "events", "provider"]


@dataclass
class Telemetry:
    """The SDK's providers and what they collected."""

    exporter: InMemorySpanExporter
    tracer_provider: TracerProvider
    reader: InMemoryMetricReader
    meter_provider: MeterProvider

    def instrument(self, client: Any, **kwargs: Any) -> None:
        instrument(
            client,
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            **kwargs,
        )

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans (named *name*), in the order they ended."""
        found = self.exporter.get_finished_spans()
        return [s for s in found if name is None or s.name == name]

    def chat_spans(self) -> list[ReadableSpan]:
        """Our CLIENT ``chat {model}`` spans (not another instrumentation's of the same name)."""
        return [
            s
            for s in self.spans()
            if s.name.startswith("chat")
            and s.instrumentation_scope is not None
            and s.instrumentation_scope.name == SCOPE
        ]

    def attempts(self, parent: ReadableSpan) -> list[ReadableSpan]:
        """The attempt spans under *parent*, by attempt number."""
        assert parent.context is not None
        found = [
            s
            for s in self.spans("llm_rate_limiter.attempt")
            if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]
        return sorted(found, key=lambda s: attrs(s)["llm_rate_limiter.attempt"])

    def metrics(self) -> dict[str, Metric]:
        """Every metric collected now, by name."""
        data = self.reader.get_metrics_data()
        found: dict[str, Metric] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = metric
        return found

    def points(self, name: str) -> list[Any]:
        metric = self.metrics().get(name)
        return [] if metric is None else list(metric.data.data_points)


def attrs(item: Any) -> dict[str, Any]:
    """The attributes of a span or data point, as a dict."""
    return dict(item.attributes or {})


def events(span: ReadableSpan, name: str) -> list[dict[str, Any]]:
    """The attributes of each event *name* of *span*."""
    return [dict(e.attributes or {}) for e in span.events if e.name == name]


def provider(server: FaultServer, name: str = "openai", **kwargs: Any) -> ProviderConfig:
    """`tests.client.helpers.provider`, named "openai" unless *name* says otherwise."""
    return client_provider(server, name, **kwargs)


def client(*configs: ProviderConfig, **kwargs: Any) -> AsyncLLMClient:
    return AsyncLLMClient(list(configs), **kwargs)
