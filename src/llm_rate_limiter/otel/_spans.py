# SPDX-License-Identifier: MIT
"""
`Tracing`: the CLIENT span of a call, a span per attempt, and the GenAI metrics.

``chat {model}`` (kind CLIENT) covers a whole `AsyncLLMClient.chat` or
``chat_stream`` call, every provider of its fallback chain included, and
carries the GenAI conventions' attributes of the provider that answered (or
was tried last). Each attempt is a child span (current while it runs, so an
HTTP or SDK instrumentation's spans nest under the attempt that sent them).
A stream's span is current while the stream is opened and ends when the
stream does. No API key or message content goes into an attribute; content
only with ``capture_message_content``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Any, TypeVar

from openai.types.chat import ChatCompletion
from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .._errors import classify_error
from ..client._runtime import ProviderRuntime
from ..client._stream import OpenStream
from . import _semconv as sc
from ._hook import Instruments

__all__ = ["Tracing"]

T = TypeVar("T")

#: What a span that records nothing (no SDK, or sampled out) runs in: no context change.
_UNRECORDED = nullcontext()
#: What looks like an API key in an error message (some providers echo part of it).
_KEYLIKE = re.compile(r"\b(sk|key|Bearer)[-_ ][\w\-.*]{4,}")


def error_type(exc: BaseException) -> str:
    """The ``error.type`` of *exc*: its class name (``AuthenticationError``, ...)."""
    return type(exc).__qualname__


class _AttemptSpan:
    """The span of one attempt, current from enter to exit; a failure is recorded, classified."""

    __slots__ = ("_owner", "_span", "_token")

    def __init__(self, owner: Tracing, span: Span) -> None:
        self._owner = owner
        self._span = span
        self._token: object = None

    def __enter__(self) -> Span:
        self._token = context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        try:
            if exc is not None:
                self._owner.failed(span, exc)
        finally:
            context.detach(self._token)  # type: ignore[arg-type]
            span.end()


class _StreamSpan:
    """Follows an open stream's chunks into its call's span; ends the span with the stream."""

    __slots__ = ("_attrs", "_finish", "_model", "_owner", "_reasons", "_span", "_started", "_usage")

    def __init__(self, owner: Tracing, span: Span, attrs: dict[str, Any], started: float) -> None:
        self._owner = owner
        self._span = span
        self._attrs = attrs
        self._started = started
        self._model: str | None = None
        self._reasons: list[str] = []
        self._usage: Any = None

    def chunk(self, chunk: Any) -> None:
        """Keep the response model, finish reasons and usage a chunk carries."""
        self._model = getattr(chunk, "model", None) or self._model
        for choice in getattr(chunk, "choices", None) or ():
            reason = getattr(choice, "finish_reason", None)
            if reason:
                self._reasons.append(str(reason))
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self._usage = usage

    def end(self, error: BaseException | None) -> None:
        """End the call's span: read to its end, broken (*error*) or closed early."""
        owner, span = self._owner, self._span
        attrs = owner.response(span, self._attrs, self._model, self._reasons, self._usage)
        if isinstance(error, Exception):
            owner.failed(span, error)
            attrs[sc.ERROR_TYPE] = error_type(error)
        elif error is not None:
            span.set_attribute("llm_rate_limiter.closed_early", True)
        owner.instruments.duration.record(time.monotonic() - self._started, attrs)
        span.end()


class Tracing:
    """
    The `ChatTracer` of an instrumented client (and the `AttemptTracer` of its policies).

    Args:
        tracer: The OpenTelemetry tracer.
        instruments: The integration's instruments.
        capture_message_content: Record the messages sent and received
            (``gen_ai.input.messages``, ``gen_ai.output.messages``).
        secrets: Strings never to write (the providers' API keys).
    """

    def __init__(
        self,
        tracer: trace.Tracer,
        instruments: Instruments,
        *,
        capture_message_content: bool = False,
        secrets: Iterable[str] = (),
    ) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.capture_message_content = capture_message_content
        self._secrets = tuple(s for s in secrets if s)
        self._providers: dict[str, dict[str, Any]] = {}

    def _provider(self, runtime: ProviderRuntime) -> dict[str, Any]:
        """``gen_ai.provider.name``, ``server.address`` and ``server.port`` of a provider."""
        config = runtime.config
        found = self._providers.get(config.name)
        if found is None:
            host, port = sc.server_address(config.base_url)
            found = self._providers[config.name] = {
                sc.PROVIDER: sc.provider_name(config.name, config.base_url),
                sc.SERVER_ADDRESS: host,
                sc.SERVER_PORT: port,
            }
        return found

    def attempt(self, service: str, number: int) -> AbstractContextManager[object]:
        """
        The span of attempt *number* of *service*, current while the attempt runs.

        A span that records nothing (the API's no-op tracer, or sampled out) is
        not made current: the call's context stays, and nothing more is done.
        """
        span = self.tracer.start_span(
            "llm_rate_limiter.attempt",
            kind=SpanKind.INTERNAL,
            attributes={sc.SERVICE: service, sc.ATTEMPT: number},
        )
        if not span.is_recording():
            return _UNRECORDED
        return _AttemptSpan(self, span)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _KEYLIKE.sub(r"\1-***", text)

    def failed(self, span: Span, exc: BaseException) -> None:
        """Record *exc* on *span* with its classification (a cancellation is no error)."""
        if not isinstance(exc, Exception):
            span.set_attribute("llm_rate_limiter.cancelled", True)
            return
        kind = classify_error(exc).value
        span.add_event(
            "exception",
            {
                "exception.type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                "exception.message": self._scrub(str(exc)),
                sc.ERROR_KIND: kind,
            },
        )
        span.set_attributes({sc.ERROR_TYPE: error_type(exc), sc.ERROR_KIND: kind})
        span.set_status(Status(StatusCode.ERROR, kind))

    def response(
        self,
        span: Span,
        attrs: dict[str, Any],
        model: str | None,
        reasons: list[str],
        usage: Any,
    ) -> dict[str, Any]:
        """Put a response's model, finish reasons and usage on *span*; record the tokens."""
        attrs = dict(attrs)
        if model:
            attrs[sc.RESPONSE_MODEL] = model
            span.set_attribute(sc.RESPONSE_MODEL, model)
        if reasons:
            span.set_attribute(sc.FINISH_REASONS, reasons)
        if usage is not None:
            tokens = self.instruments.tokens
            for kind, key, count in (
                ("input", sc.INPUT_TOKENS, getattr(usage, "prompt_tokens", None)),
                ("output", sc.OUTPUT_TOKENS, getattr(usage, "completion_tokens", None)),
            ):
                if count is not None:
                    span.set_attribute(key, count)
                    tokens.record(count, {**attrs, sc.TOKEN_TYPE: kind})
        return attrs

    async def chat(
        self,
        client: Any,
        provider: str | None,
        model: str | None,
        call_info: Any,
        run_one: Callable[..., Awaitable[T]],
        messages: list[Any],
    ) -> T:
        """Run the client's fallback chain inside the call's CLIENT span (see `ChatTracer`)."""
        span = self.tracer.start_span(
            "chat", kind=SpanKind.CLIENT, attributes={sc.OPERATION: "chat"}
        )
        if self.capture_message_content:
            span.set_attribute(sc.INPUT_MESSAGES, self._scrub(json.dumps(messages, default=str)))
        attrs: dict[str, Any] = {sc.OPERATION: "chat"}
        started = time.monotonic()

        def step(runtime: ProviderRuntime, use_model: str, *args: Any) -> Awaitable[T]:
            if sc.REQUEST_MODEL not in attrs:  # the first provider of the chain names the span
                span.update_name(f"chat {use_model}")
            attrs.update(self._provider(runtime))
            attrs[sc.REQUEST_MODEL] = use_model
            span.set_attributes({**attrs, sc.SERVICE: runtime.config.name})
            return run_one(runtime, use_model, *args)

        token = context.attach(trace.set_span_in_context(span))
        try:
            result: Any = await client._through_chain(provider, model, call_info, step)
        except BaseException as exc:
            self.failed(span, exc)
            if isinstance(exc, Exception):
                failed = {**attrs, sc.ERROR_TYPE: error_type(exc)}
                self.instruments.duration.record(time.monotonic() - started, failed)
            span.end()
            raise
        finally:
            context.detach(token)
        if isinstance(result, OpenStream):
            first = time.monotonic() - started
            span.set_attributes({sc.REQUEST_STREAM: True, sc.TIME_TO_FIRST_CHUNK: first})
            self.instruments.first_chunk.record(first, attrs)
            result.trace(_StreamSpan(self, span, attrs, started))
        else:
            self._completed(span, attrs, result, started)
        return result  # type: ignore[no-any-return]

    def _completed(
        self, span: Span, attrs: dict[str, Any], result: ChatCompletion, started: float
    ) -> None:
        """Record a completion (its model, reasons, usage) and end the span."""
        reasons = [str(c.finish_reason) for c in result.choices if c.finish_reason]
        if result.id:
            span.set_attribute(sc.RESPONSE_ID, result.id)
        attrs = self.response(span, attrs, result.model, reasons, result.usage)
        if self.capture_message_content:
            output = [c.message.model_dump(exclude_none=True) for c in result.choices]
            span.set_attribute(sc.OUTPUT_MESSAGES, json.dumps(output, default=str))
        self.instruments.duration.record(time.monotonic() - started, attrs)
        span.end()
