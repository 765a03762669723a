# SPDX-License-Identifier: MIT
"""The OpenTelemetry SDK's in-memory span exporter and metric reader; tests/client's servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.client.conftest import backup, server

from .helpers import Telemetry

__all__ = ["backup", "server", "telemetry"]  # the fault servers are tests/client's


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """A real SDK tracer provider and meter provider that keep everything in memory."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(exporter, tracer_provider, reader, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()
