# SPDX-License-Identifier: MIT
"""
Spans started inside the SDK's request nest under the attempt span that sent it.

``opentelemetry-instrumentation-openai-v2`` wraps ``AsyncCompletions.create``
(with wrapt) and starts its span from the current context; HTTP-client
instrumentations start theirs around the transport's send. Both run inside our
attempt's span, which is current while the attempt runs. One test runs the
real openai-v2 instrumentation; two more prove the nesting at the same two
places with spans of their own: at the transport, and at openai-v2's wrap
point through the same wrapt mechanism.
"""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
import wrapt
from openai.resources.chat.completions import AsyncCompletions
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from llm_rate_limiter import CallInfo
from llm_rate_limiter.testing import FaultConfig, FaultServer

from .helpers import MESSAGES, Telemetry, client, provider

pytestmark = pytest.mark.anyio


class TracedTransport(httpx2.AsyncHTTPTransport):
    """What an HTTP-client instrumentation does: a CLIENT span around each send."""

    def __init__(self, telemetry: Telemetry) -> None:
        super().__init__()
        self._tracer = telemetry.tracer_provider.get_tracer("test.http")

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        with self._tracer.start_as_current_span(f"HTTP {request.method}", kind=SpanKind.CLIENT):
            return await super().handle_async_request(request)


def _parents(spans: list[ReadableSpan]) -> list[int]:
    return [s.parent.span_id for s in spans if s.parent is not None]


def _ids(spans: list[ReadableSpan]) -> list[int]:
    return [s.context.span_id for s in spans if s.context is not None]


async def _retried_call(telemetry: Telemetry, **config: Any) -> list[ReadableSpan]:
    """A call that takes three attempts (two 503s); its attempt spans."""
    async with (
        FaultServer(FaultConfig(seed=3, error_503_rate=0.5)) as server,
        client(provider(server, **config)) as llm,
    ):
        telemetry.instrument(llm)
        info = CallInfo()
        await llm.chat(MESSAGES, call_info=info)
    assert 3 == info.attempts
    [call] = telemetry.chat_spans()
    return telemetry.attempts(call)


async def test_http_spans_nest_under_their_attempts(telemetry: Telemetry) -> None:
    """Each HTTP request of a retried call is a child of the attempt that sent it."""
    http = httpx2.AsyncClient(transport=TracedTransport(telemetry))
    attempts = await _retried_call(telemetry, http_client=http)
    requests = telemetry.spans("HTTP POST")
    assert 3 == len(requests)
    assert _ids(attempts) == _parents(requests)


async def test_spans_at_openai_v2_wrap_point_nest(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span started where openai-v2 wraps ``AsyncCompletions.create`` nests per attempt."""
    tracer = telemetry.tracer_provider.get_tracer("test.sdk")

    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        with tracer.start_as_current_span(f"sdk chat {kwargs['model']}", kind=SpanKind.CLIENT):
            return await wrapped(*args, **kwargs)

    original = AsyncCompletions.__dict__["create"]
    monkeypatch.setattr(AsyncCompletions, "create", wrapt.FunctionWrapper(original, wrapper))
    attempts = await _retried_call(telemetry)
    sdk = telemetry.spans("sdk chat mock-gpt")
    assert 3 == len(sdk)
    assert _ids(attempts) == _parents(sdk)


async def test_real_openai_v2_spans_nest(telemetry: Telemetry) -> None:
    """The official openai-v2 instrumentation's spans are children of our attempts."""
    # Installed by the tests group (with the httpx and util-genai it needs): never skipped.
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    try:
        attempts = await _retried_call(telemetry)
    finally:
        instrumentor.uninstrument()
    theirs = [
        s
        for s in telemetry.spans()
        if s.instrumentation_scope is not None
        # openai-v2's legacy path names its own scope; its GenAI-handler path the util's.
        and s.instrumentation_scope.name.startswith(
            ("opentelemetry.instrumentation.openai", "opentelemetry.util.genai")
        )
    ]
    assert 3 == len(theirs)
    assert _ids(attempts) == _parents(theirs)
