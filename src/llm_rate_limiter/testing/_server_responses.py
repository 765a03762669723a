# SPDX-License-Identifier: MIT
"""
ASGI responses the fault server needs beyond starlette's: streams and aborts.

Closing a connection without a reply needs the server's transport: the
outermost ASGI wrapper, `expose_transport`, stores uvicorn's request cycle
(the owner of its ``send``) in the scope; `abort_connection` closes its
transport and waits until uvicorn has seen the connection go, so it neither
logs an error nor sends a 500 of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "AbortResponse",
    "EventStreamResponse",
    "HangResponse",
    "abort_connection",
    "expose_transport",
    "json_response",
]

_CYCLE = "llm_rate_limiter.cycle"
_JSON = (b"content-type", b"application/json")
_SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


def expose_transport(app: ASGIApp) -> ASGIApp:
    """Wrap *app* so responses below can reach uvicorn's connection."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        scope[_CYCLE] = getattr(send, "__self__", None)
        await app(scope, receive, send)

    return wrapper


async def abort_connection(scope: Scope) -> None:
    """Close the request's connection without (finishing) a reply."""
    cycle = scope.get(_CYCLE)
    transport = getattr(cycle, "transport", None)
    if transport is None:  # pragma: no cover -- only uvicorn runs the fault server
        msg = "the fault server can only drop connections when run by uvicorn"
        raise RuntimeError(msg)
    transport.close()
    for _ in range(1000):
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0)


class AbortResponse:
    """Close the connection, after sending *events* with status 200 when given."""

    def __init__(
        self, headers: list[tuple[bytes, bytes]], events: Sequence[bytes] = (), *, json_body: bool
    ) -> None:
        self.headers = headers
        self.events = events
        self.json_body = json_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send what there is to send, then abort."""
        if self.events:
            kind = [_JSON] if self.json_body else _SSE
            await send(
                {"type": "http.response.start", "status": 200, "headers": kind + self.headers}
            )
            for event in self.events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
        await abort_connection(scope)


class HangResponse:
    """Answer nothing until the client leaves, *release* is set or *seconds* pass; then drop."""

    def __init__(
        self, release: asyncio.Event, seconds: float, on_close: Callable[[], None]
    ) -> None:
        self.release = release
        self.seconds = seconds
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wait, then close the connection."""
        waiters = {
            asyncio.ensure_future(self.release.wait()),
            asyncio.ensure_future(_disconnected(receive)),
        }
        try:
            await asyncio.wait(waiters, timeout=self.seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            for waiter in waiters:
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
            self.on_close()
        await abort_connection(scope)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStreamResponse:
    """A server-sent event stream; *on_close* runs when it ends, however it ends."""

    def __init__(
        self,
        headers: list[tuple[bytes, bytes]],
        events: Sequence[bytes],
        on_close: Callable[[], None],
    ) -> None:
        self.headers = headers
        self.events = events
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send every event as its own body part."""
        try:
            await send(
                {"type": "http.response.start", "status": 200, "headers": _SSE + self.headers}
            )
            for event in self.events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.on_close()


class _RawResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.body = body
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [_JSON, (b"content-length", str(len(self.body)).encode()), *self.headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


def json_response(
    status: int, body: bytes | dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> _RawResponse:
    """A JSON reply with exactly *headers* (a cheaper starlette ``JSONResponse``)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return _RawResponse(status, raw, headers or [])
