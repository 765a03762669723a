# SPDX-License-Identifier: MIT
"""The OpenTelemetry SDK's in-memory span exporter and metric reader, and fault servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_rate_limiter.testing import FaultConfig, FaultServer

from .helpers import Telemetry


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


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with FaultServer(FaultConfig(seed=1)) as srv:
        yield srv


@pytest.fixture
async def backup() -> AsyncIterator[FaultServer]:
    async with FaultServer(FaultConfig(seed=2)) as srv:
        yield srv
