# SPDX-License-Identifier: MIT
"""SDK providers that print spans and metrics (``llm-rate-limiter demo --otel console``)."""

from __future__ import annotations

from typing import IO, Any

__all__ = ["console_providers"]


def console_providers(out: IO[str]) -> tuple[Any, Any]:
    """
    A tracer provider and a meter provider of the OpenTelemetry SDK that write to *out*.

    Spans are printed in batches as they end, metrics every 10 s and at shutdown;
    the caller shuts both down (which flushes them).

    Raises:
        ImportError: ``opentelemetry-sdk`` is not installed.
    """
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=out)))
    reader = PeriodicExportingMetricReader(
        ConsoleMetricExporter(out=out), export_interval_millis=10_000
    )
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    return tracer_provider, meter_provider
