# SPDX-License-Identifier: MIT
"""Streaming: the first chunk is part of the attempt; later failures are classified."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

import openai
from openai.types.chat import ChatCompletionChunk

from .._errors import classify_error
from .._hooks import CallOutcome
from .._policy import ResiliencePolicy
from .._tracing import StreamTrace
from ..exceptions import StreamInterruptedError
from ..limiter import PermitLike
from ..retry import RetryCallStats

__all__ = ["OpenStream", "open_stream"]


class OpenStream:
    """
    A stream whose first chunk has arrived; iterate it for every chunk, the first included.

    A failure after the first chunk raises `StreamInterruptedError`. The breaker
    hears of the attempt when the stream ends: a success once it is read to its
    end, a failure if it breaks, neither if it is closed early.
    """

    __slots__ = (
        "_call",
        "_chunks",
        "_first",
        "_held",
        "_latency",
        "_pending",
        "_permit",
        "_policy",
        "_started",
        "_stream",
        "_ticket",
        "_trace",
    )

    def __init__(
        self, policy: ResiliencePolicy, stream: Any, first: ChatCompletionChunk, started: float
    ) -> None:
        self._policy = policy
        self._stream = stream
        self._first: ChatCompletionChunk | None = first
        self._started = started
        self._chunks = 0
        self._permit: Any = None
        self._held: Any = None
        self._pending = False
        self._call: tuple[float, int] | None = None
        self._ticket: Any = None
        self._latency = 0.0
        self._trace: StreamTrace | None = None

    def hold(self, permit: PermitLike, context: AbstractAsyncContextManager[Any]) -> None:
        """Keep the limiter's *permit* (its concurrency slot) until the stream is closed."""
        self._permit = permit
        self._held = context

    def outcome(self, ticket: Any, latency: float) -> None:
        """Report the attempt (admitted with *ticket*, first chunk after *latency*) when it ends."""
        self._ticket = ticket
        self._latency = latency
        self._pending = True

    def call_done(self, started: float, attempts: int) -> None:
        """Report the call (begun at *started*, *attempts* attempts) when the stream ends."""
        self._call = (started, attempts)

    def trace(self, trace: StreamTrace) -> None:
        """Tell *trace* of every chunk handed out and of the stream's end (a traced call)."""
        self._trace = trace

    def _finish(self, exc: BaseException | None) -> None:
        """Tell the breaker, the metrics and the trace how the stream ended (once)."""
        trace, self._trace = self._trace, None
        if trace is not None:
            trace.end(exc)
        if not self._pending:
            return
        self._pending = False
        policy = self._policy
        breaker = policy.breaker
        hook = policy.hook
        now = policy.clock.monotonic()
        if exc is None:
            if breaker is not None:
                breaker.on_success(self._ticket, self._latency)
            hook.attempt_finished(policy.name, self._latency, None)
            outcome: CallOutcome = "success"
        elif isinstance(exc, Exception):
            if breaker is not None:
                breaker.on_failure(self._ticket, exc, now - self._started)
            hook.attempt_finished(policy.name, now - self._started, classify_error(exc))
            outcome = "failure"
        else:  # closed before its end: neither a success nor a failure of the provider
            if breaker is not None:
                breaker.on_cancel(self._ticket)
            outcome = "cancelled"
        if self._call is not None:
            started, attempts = self._call
            hook.call_finished(policy.name, outcome, now - started, attempts)

    def _settle_usage(self, chunk: ChatCompletionChunk) -> None:
        if self._trace is not None:
            self._trace.chunk(chunk)
        usage = getattr(chunk, "usage", None)
        if usage is not None and self._permit is not None:
            self._permit.settle(used_tokens=usage.total_tokens)

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ChatCompletionChunk]:
        if self._first is not None:
            first, self._first = self._first, None
            self._chunks += 1
            self._settle_usage(first)
            yield first
        try:
            async for chunk in self._stream:
                self._chunks += 1
                self._settle_usage(chunk)
                yield chunk
        except Exception as exc:
            self._finish(exc)
            raise StreamInterruptedError(
                self._policy.name, classify_error(exc), self._chunks
            ) from exc
        self._finish(None)

    async def aclose(self) -> None:
        """Close the underlying HTTP response and give the limiter its slot back."""
        held, self._held = self._held, None
        self._finish(asyncio.CancelledError())  # closed before its end: neither outcome
        try:
            await self._stream.close()
        finally:
            if held is not None:
                await held.__aexit__(None, None, None)

    async def __aenter__(self) -> OpenStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def open_stream(
    policy: ResiliencePolicy,
    sdk: openai.AsyncOpenAI,
    *,
    messages: list[Any],
    model: str,
    tokens: float,
    kwargs: Mapping[str, Any],
    stats: RetryCallStats,
    started: float,
    deadline_at: float | None = None,
    last_resort: bool = True,
) -> OpenStream:
    """Open a stream through *policy*: connect and read the first chunk, with retries."""

    async def send() -> OpenStream:
        stream: Any = await sdk.chat.completions.create(
            messages=messages, model=model, stream=True, **kwargs
        )
        try:
            first = await stream.__anext__()
        except BaseException:
            await stream.close()
            raise
        return OpenStream(policy, stream, first, started)

    def settle(opened: OpenStream) -> tuple[float | None, Any]:
        return None, opened._stream.response.headers

    opened = await policy.run(
        send,
        tokens=tokens,
        settle=settle,
        stats=stats,
        last_resort=last_resort,
        hold_permit=True,
        deadline_at=deadline_at,
    )
    policy.hook.first_token(policy.name, policy.clock.monotonic() - started)
    return opened
