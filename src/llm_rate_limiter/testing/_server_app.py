# SPDX-License-Identifier: MIT
"""The fault server's routes: an OpenAI-compatible API that rate-limits and fails on purpose."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import math
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp

from .._clock import Clock
from ..exceptions import ConfigurationError
from ._server_bodies import chunk_events, completion, error_body, estimate_prompt_tokens
from ._server_config import apply_changes
from ._server_dialects import retry_headers
from ._server_responses import (
    AbortResponse,
    EventStreamResponse,
    HangResponse,
    expose_transport,
    json_response,
)
from ._server_state import ServerState

__all__ = ["FaultApp"]

_STATUS = {"500": 500, "502": 502, "503": 503}
_BROKEN = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"ind'


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class FaultApp:
    """
    The starlette application of one fault server, and the state behind it.

    Args:
        state: Limits, counters and fault draws.
        clock: Sleeps the configured latency.
        release: Set at shutdown: every hanging request drops its connection.
    """

    def __init__(self, state: ServerState, clock: Clock, release: asyncio.Event) -> None:
        self.state = state
        self.clock = clock
        self.release = release
        self._ids = itertools.count(1)
        routes = [
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/_control", self.control, methods=["POST"]),
            Route("/_stats", self.stats, methods=["GET"]),
            Route("/_reset", self.reset, methods=["POST"]),
        ]
        self.asgi: ASGIApp = expose_transport(Starlette(routes=routes))

    async def models(self, request: Request) -> Any:
        """``GET /v1/models``: the one model this server plays."""
        model = {"id": self.state.config.model, "object": "model", "created": 0, "owned_by": "mock"}
        return json_response(200, {"object": "list", "data": [model]})

    async def stats(self, request: Request) -> Any:
        """``GET /_stats``: the counters and the timeline."""
        return json_response(200, self.state.stats.snapshot().as_dict())

    async def reset(self, request: Request) -> Any:
        """``POST /_reset``: zero counters, refill buckets, end outages."""
        self.state.reset()
        return json_response(200, {"reset": True})

    async def control(self, request: Request) -> Any:
        """``POST /_control``: change settings; ``outage_seconds`` starts an outage now."""
        try:
            changes = json.loads(await request.body())
        except ValueError:
            return _bad_control(None, "the body is not valid JSON")
        if not isinstance(changes, dict):
            return _bad_control(None, "the body must be a JSON object")
        outage = changes.pop("outage_seconds", None)
        if outage is not None and (
            isinstance(outage, bool)
            or not isinstance(outage, int | float)
            or not math.isfinite(outage)
            or outage < 0
        ):
            return _bad_control("outage_seconds", "must be a number of seconds >= 0")
        try:
            config = apply_changes(self.state.config, changes)
        except ConfigurationError as exc:
            return _bad_control(exc.setting, str(exc))
        self.state.set_config(config)
        if outage:
            self.state.outage(float(outage))
        return json_response(200, {"config": dataclasses.asdict(config)})

    async def chat(self, request: Request) -> Any:
        """``POST /v1/chat/completions``: limits first, then the configured faults."""
        state, stats = self.state, self.state.stats
        config = state.config
        second = state.second()
        stats.arrival(second)
        key = _bearer(request)
        if config.unauthorized or key is None:
            stats.outcome(second, "auth_errors", "error")
            return self._error(401, "unauthorized", key)
        if state.in_outage():
            stats.server_error(second, 503, outage=True)
            return self._error(503, "overloaded", key)
        if config.insufficient_quota:
            stats.rate_limited(second, "insufficient_quota")
            return self._error(429, "insufficient_quota", key)
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            stats.outcome(second, "bad_requests", "error")
            return self._error(400, "bad_request", key)
        prompt = estimate_prompt_tokens(body["messages"])
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0:
            cost, reply = prompt + max_tokens, min(config.completion_tokens, max_tokens)
        else:
            cost, reply = prompt + config.completion_tokens, config.completion_tokens
        verdict = state.admit(key, cost)
        if verdict.refused is not None:
            stats.rate_limited(second, verdict.refused)
            headers = verdict.headers + retry_headers(config.dialect, verdict.wait)
            body = error_body(verdict.refused, config.dialect, verdict.wait)
            return json_response(429, body, headers)
        stats.accepted(second, cost)
        return await self._serve(body, key, prompt, reply, verdict.headers)

    async def _serve(
        self,
        body: dict[str, Any],
        key: str,
        prompt: int,
        reply: int,
        headers: list[tuple[bytes, bytes]],
    ) -> Any:
        state, stats, config = self.state, self.state.stats, self.state.config
        second = state.second()
        stream = body.get("stream") is True
        handed_over = False
        try:
            fault = state.draw_fault()
            delay = state.latency()
            if delay > 0.0:
                await self.clock.sleep(delay)
            if fault == "hang":
                stats.outcome(second, "hangs", "error")
                handed_over = True
                return HangResponse(self.release, config.hang_seconds, lambda: state.release(key))
            if fault == "drop":
                stats.outcome(second, "drops", "error")
                return AbortResponse(headers, json_body=True)
            if fault is not None and fault.startswith("error_"):
                status = _STATUS[fault.removeprefix("error_")]
                stats.server_error(second, status)
                kind = "overloaded" if status == 503 else "server_error"
                return json_response(status, error_body(kind, config.dialect), headers)
            model = str(body.get("model") or config.model)
            ident = f"chatcmpl-{next(self._ids):012x}"
            created = int(time.time())
            if fault == "malformed":
                stats.outcome(second, "malformed", "error")
                if not stream:
                    return json_response(200, _BROKEN, headers)
                events = chunk_events(ident, created, model, prompt, reply, include_usage=False)
                broken = [events[0], b"data: " + _BROKEN + b"\n\n", b"data: [DONE]\n\n"]
                return EventStreamResponse(headers, broken, _noop)
            if not stream:
                stats.outcome(second, "succeeded")
                return json_response(200, completion(ident, created, model, prompt, reply), headers)
            options = body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            events = chunk_events(ident, created, model, prompt, reply, include_usage=usage)
            if fault == "stream_failure":
                stats.outcome(second, "stream_failures", "error")
                return AbortResponse(headers, events[: max(1, len(events) // 2)], json_body=False)
            stats.outcome(second, "succeeded")
            handed_over = True
            return EventStreamResponse(headers, events, lambda: state.release(key))
        finally:
            if not handed_over:
                state.release(key)

    def _error(self, status: int, kind: str, key: str | None) -> Any:
        headers = self.state.headers(key) if key is not None else []
        return json_response(status, error_body(kind, self.state.config.dialect), headers)


def _noop() -> None:
    pass


def _bad_control(param: str | None, message: str) -> Any:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return json_response(400, {"error": error})
