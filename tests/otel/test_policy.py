# SPDX-License-Identifier: MIT
"""`instrument` on a bare `ResiliencePolicy`, bad targets, and the cost of not instrumenting."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.trace import NoOpTracerProvider, StatusCode

import llm_rate_limiter
from llm_rate_limiter import (
    ConfigurationError,
    MetricsCollector,
    ResiliencePolicy,
    RetryErrorType,
    RetryPolicy,
)
from llm_rate_limiter.otel import instrument, uninstrument
from llm_rate_limiter.testing import FakeClock, FaultServer

from .helpers import MESSAGES, Telemetry, attrs, client, events, provider

pytestmark = pytest.mark.anyio


async def test_policy_attempts_are_spans(telemetry: Telemetry) -> None:
    """A policy around any coroutine gets a span per attempt, the retry as an event."""
    clock = FakeClock()
    collector = MetricsCollector(clock=clock)
    retry = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02)
    policy = ResiliencePolicy("search", retry=retry, hook=collector, clock=clock)
    telemetry.instrument(policy)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError("reset")
        return "ok"

    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request"):
        assert "ok" == await policy.run(flaky)
    [outer] = telemetry.spans("request")
    attempts = telemetry.attempts(outer)
    assert [StatusCode.ERROR, StatusCode.UNSET] == [a.status.status_code for a in attempts]
    assert "ConnectionResetError" == attrs(attempts[0])["error.type"]
    kind = RetryErrorType.TRANSIENT_NETWORK.value
    assert kind == attrs(attempts[0])["llm_rate_limiter.error.kind"]
    [retry_event] = events(outer, "llm_rate_limiter.retry")
    assert "transient_network" == retry_event["llm_rate_limiter.retry.kind"]
    assert 1 == telemetry.points("llm_rate_limiter.retries")[0].value
    uninstrument(policy)
    assert policy.hook is collector
    assert "ok" == await policy.run(flaky)
    assert 2 == len(telemetry.spans("llm_rate_limiter.attempt"))


async def test_uninstrumented_between_attempts(telemetry: Telemetry) -> None:
    """A call that is uninstrumented while it runs makes its later attempts without spans."""
    retry = RetryPolicy(max_retries=1, base_delay=0.001, max_delay=0.001)
    policy = ResiliencePolicy("svc", retry=retry)
    telemetry.instrument(policy)
    calls = 0

    async def first_fails() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            uninstrument(policy)
            raise ConnectionResetError("reset")
        return "ok"

    assert "ok" == await policy.run(first_fails)
    assert 2 == calls
    assert [1] == [attrs(s)["llm_rate_limiter.attempt"] for s in telemetry.spans()]


async def test_no_tracer_still_measures(server: FaultServer, telemetry: Telemetry) -> None:
    """With OpenTelemetry's no-op tracer the GenAI metrics are recorded, and no span is made."""
    async with client(provider(server)) as llm:
        instrument(
            llm, tracer_provider=NoOpTracerProvider(), meter_provider=telemetry.meter_provider
        )
        await llm.chat(MESSAGES)
    assert [] == telemetry.spans()
    [point] = telemetry.points("gen_ai.client.operation.duration")
    assert 1 == point.count
    assert "mock-gpt" == attrs(point)["gen_ai.response.model"]


async def test_cancelled_attempt_is_no_error(telemetry: Telemetry) -> None:
    """An attempt cancelled by its caller ends its span without an error status."""
    policy = ResiliencePolicy("svc")
    telemetry.instrument(policy)

    async def never() -> None:
        raise KeyboardInterrupt  # a BaseException that is not an Exception

    with pytest.raises(KeyboardInterrupt):
        await policy.run(never)
    [span] = telemetry.spans("llm_rate_limiter.attempt")
    assert StatusCode.UNSET == span.status.status_code
    assert attrs(span)["llm_rate_limiter.cancelled"] is True


def test_bad_target_names_the_setting() -> None:
    """Instrumenting something that is neither a client nor a policy says so."""
    with pytest.raises(ConfigurationError, match="client: must be an AsyncLLMClient"):
        instrument(object())  # type: ignore[arg-type]


def test_library_never_imports_opentelemetry() -> None:
    """Only ``llm_rate_limiter.otel`` imports opentelemetry; only it and the CLI import ``otel``."""
    package = Path(llm_rate_limiter.__file__).parent
    importers = []
    for path in sorted(package.rglob("*.py")):
        if "otel" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            where = path.relative_to(package)
            if any(n.startswith("opentelemetry") for n in names) or (
                where.parts[0] != "cli" and any(n.endswith("otel") for n in names)
            ):
                importers.append(str(where))
    assert [] == importers


def test_using_the_client_loads_no_otel_package() -> None:
    """Building and importing the client leaves ``llm_rate_limiter.otel`` unloaded."""
    code = textwrap.dedent(
        """
        import sys
        from llm_rate_limiter import AsyncLLMClient, ProviderConfig
        import llm_rate_limiter.client, llm_rate_limiter.testing, llm_rate_limiter.cli
        AsyncLLMClient([ProviderConfig(name="a", api_key="sk-x", model="m")])
        print(sorted(m for m in sys.modules if m.startswith("llm_rate_limiter.otel")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "[]" == out.stdout.strip()
