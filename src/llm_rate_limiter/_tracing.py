# SPDX-License-Identifier: MIT
"""
The seam for tracing: what a policy and a client call when a tracer is installed.

Nothing here imports a tracing library. A `ResiliencePolicy` has ``tracer``
(None unless instrumented: one ``is None`` check per attempt); when set,
`Attempt` runs each attempt inside ``tracer.attempt(...)``, which makes the
attempt's span current, so spans started inside the send (an HTTP client's,
the SDK's instrumentation's) nest under it. An `AsyncLLMClient` has a
`ChatTracer` the same way, for the span of a whole call (all providers of
its fallback chain); a stream's span ends when the stream does
(`StreamTrace`). ``llm_rate_limiter.otel`` implements them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

__all__ = ["AttemptTracer", "ChatTracer", "StreamTrace"]

T = TypeVar("T")


class AttemptTracer(Protocol):
    """Opens the span of one attempt of a policy (current while the attempt runs)."""

    def attempt(self, service: str, number: int) -> AbstractContextManager[object]:
        """A context manager around attempt *number* (1 for the first) of *service*."""


class ChatTracer(AttemptTracer, Protocol):
    """Opens the span of a whole client call, around its fallback chain."""

    async def chat(
        self,
        client: Any,
        provider: str | None,
        model: str | None,
        call_info: Any,
        run_one: Callable[..., Awaitable[T]],
        messages: list[Any],
    ) -> T:
        """
        Run ``client._through_chain(provider, model, call_info, step)`` inside the call's span.

        *step* is *run_one*, the client's per-provider step, wrapped as the
        tracer likes (to see which provider and model each step uses);
        *messages* are the call's messages, recorded only when the tracer was
        told to.
        """


class StreamTrace(Protocol):
    """Hears of each chunk of a traced stream and of its end (once)."""

    def chunk(self, chunk: Any) -> None:
        """A chunk was handed to the caller."""

    def end(self, error: BaseException | None) -> None:
        """The stream ended: read to its end (None), broke (*error*) or was closed early."""
