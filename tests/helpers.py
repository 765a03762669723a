# SPDX-License-Identifier: MIT
"""Shared test helpers: SDK errors built the SDK's way and a recording hook."""

from __future__ import annotations

from typing import Any

import httpx2
import openai

from llm_rate_limiter._hooks import NullHook


def sdk_error(cls: type[openai.APIStatusError], status: int, code: str | None = None) -> Any:
    """Build *cls* the way the openai SDK does, from a real response."""
    body = {"error": {"message": "m", "type": "error", "code": code}}
    request = httpx2.Request("POST", "https://x/v1/chat/completions")
    response = httpx2.Response(status, json=body, request=request)
    return cls("m", response=response, body=body["error"])


def server_error() -> openai.InternalServerError:
    """A 500, which counts as a breaker failure."""
    return sdk_error(openai.InternalServerError, 500)  # type: ignore[no-any-return]


def rate_limit_error() -> openai.RateLimitError:
    """A 429, excluded by default."""
    return sdk_error(openai.RateLimitError, 429)  # type: ignore[no-any-return]


def auth_error() -> openai.AuthenticationError:
    """A 401, excluded by default."""
    return sdk_error(openai.AuthenticationError, 401)  # type: ignore[no-any-return]


def bad_request_error() -> openai.BadRequestError:
    """A 400, excluded by default."""
    return sdk_error(openai.BadRequestError, 400)  # type: ignore[no-any-return]


class RecordingHook(NullHook):
    """A metrics hook that records the breaker events, in order."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def breaker_transition(self, service: str, old: str, new: str) -> None:
        """Record a transition."""
        self.events.append(("transition", service, old, new))

    def breaker_rejected(self, service: str) -> None:
        """Record a rejection."""
        self.events.append(("rejected", service))
