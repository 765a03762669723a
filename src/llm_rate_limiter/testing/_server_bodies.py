# SPDX-License-Identifier: MIT
"""What the fault server says: completions, stream chunks, error bodies, durations."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = [
    "chunk_events",
    "completion",
    "error_body",
    "estimate_prompt_tokens",
    "format_duration",
]

_WORDS = ("mock", "reply", "from", "the", "fault", "server")

# (status, kind) -> (openai type, openai code, moonshot type, message)
_ERRORS: dict[str, tuple[str, str | None, str, str]] = {
    "requests": (
        "requests",
        "rate_limit_exceeded",
        "rate_limit_reached_error",
        "Rate limit reached for requests. Please try again later.",
    ),
    "tokens": (
        "tokens",
        "rate_limit_exceeded",
        "rate_limit_reached_error",
        "Rate limit reached for tokens. Please try again later.",
    ),
    "concurrency": (
        "requests",
        "rate_limit_exceeded",
        "rate_limit_reached_error",
        "Too many concurrent requests. Please try again later.",
    ),
    "insufficient_quota": (
        "insufficient_quota",
        "insufficient_quota",
        "exceeded_current_quota_error",
        "You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    ),
    "unauthorized": (
        "invalid_request_error",
        "invalid_api_key",
        "invalid_authentication_error",
        "Incorrect API key provided.",
    ),
    "server_error": (
        "server_error",
        None,
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
    ),
    "overloaded": (
        "server_error",
        None,
        "engine_overloaded_error",
        "The engine is currently overloaded, please try again later.",
    ),
    "bad_request": (
        "invalid_request_error",
        None,
        "invalid_request_error",
        "The request body is not a valid chat completion request.",
    ),
}


def format_duration(seconds: float) -> str:
    """
    Format *seconds* the way OpenAI's reset headers do (``"20ms"``, ``"1s"``, ``"6m0s"``).

    Args:
        seconds: A non-negative duration.

    Returns:
        Milliseconds under one second, else hours/minutes/seconds as in Go.

    .. versionadded:: 0.1.0
    """
    seconds = max(0.0, seconds)
    if seconds == 0.0:
        return "0s"
    if seconds < 1.0:
        ms = math.ceil(seconds * 1000.0)
        return f"{ms}ms" if ms < 1000 else "1s"
    whole_ms = math.ceil(seconds * 1000.0)
    hours, rest_ms = divmod(whole_ms, 3_600_000)
    minutes, rest_ms = divmod(rest_ms, 60_000)
    secs = f"{rest_ms / 1000.0:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def estimate_prompt_tokens(messages: object) -> int:
    """Estimate prompt tokens: ceil(characters / 4) + 4 per message, plus 3 for the reply."""
    if not isinstance(messages, list):
        return 0
    total = 3
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            text = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        else:
            text = content if isinstance(content, str) else ""
        total += math.ceil(len(text) / 4) + 4
    return total


# kind -> (HTTP status, google.rpc status) of Gemini's errors.
_GOOGLE: dict[str, tuple[int, str]] = {
    "requests": (429, "RESOURCE_EXHAUSTED"),
    "tokens": (429, "RESOURCE_EXHAUSTED"),
    "concurrency": (429, "RESOURCE_EXHAUSTED"),
    "insufficient_quota": (429, "RESOURCE_EXHAUSTED"),
    "unauthorized": (401, "UNAUTHENTICATED"),
    "server_error": (500, "INTERNAL"),
    "overloaded": (503, "UNAVAILABLE"),
    "bad_request": (400, "INVALID_ARGUMENT"),
}
_GOOGLE_TYPE = "type.googleapis.com/google.rpc."
_QUOTA_IDS = {
    "requests": "GenerateRequestsPerMinutePerProjectPerModel",
    "tokens": "GenerateContentInputTokensPerModelPerMinute",
    "concurrency": "GenerateRequestsPerMinutePerProjectPerModel",
    "insufficient_quota": "GenerateRequestsPerDayPerProjectPerModel",
}


def error_body(kind: str, dialect: str, retry_delay: float | None = None) -> bytes:
    """
    The JSON error body of *kind* in *dialect*.

    ``"moonshot"`` bodies have a type and no code; ``"gemini"`` ones are
    Google's, wrapped in a list as its OpenAI-compatible endpoint sends them,
    a 429 with the wait *retry_delay* in a ``google.rpc.RetryInfo``; every
    other dialect gets OpenAI's.
    """
    openai_type, code, moonshot_type, message = _ERRORS[kind]
    if dialect == "moonshot":
        return json.dumps({"error": {"message": message, "type": moonshot_type}}).encode()
    if dialect == "gemini":
        return json.dumps([{"error": _google_error(kind, message, retry_delay)}]).encode()
    error = {"message": message, "type": openai_type, "param": None, "code": code}
    return json.dumps({"error": error}).encode()


def _google_error(kind: str, message: str, retry_delay: float | None) -> dict[str, Any]:
    status, name = _GOOGLE[kind]
    quota = _QUOTA_IDS.get(kind)
    if quota is not None:
        message = "Resource has been exhausted (e.g. check quota)."
    error: dict[str, Any] = {"code": status, "message": message, "status": name}
    if quota is not None:
        violation = {"quotaMetric": "generativelanguage.googleapis.com/mock", "quotaId": quota}
        details: list[dict[str, Any]] = [
            {"@type": _GOOGLE_TYPE + "QuotaFailure", "violations": [violation]}
        ]
        if retry_delay is not None:
            delay = f"{max(0.0, retry_delay):.3f}".rstrip("0").rstrip(".") + "s"
            details.append({"@type": _GOOGLE_TYPE + "RetryInfo", "retryDelay": delay})
        error["details"] = details
    return error


def _words(n: int) -> list[str]:
    return [_WORDS[i % len(_WORDS)] + ("" if i == n - 1 else " ") for i in range(n)]


def _usage(prompt: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def completion(ident: str, created: int, model: str, prompt: int, completion_tokens: int) -> bytes:
    """A ``chat.completion`` document of *completion_tokens* words."""
    doc = {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(_words(completion_tokens))},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(prompt, completion_tokens),
    }
    return json.dumps(doc).encode()


def chunk_events(
    ident: str,
    created: int,
    model: str,
    prompt: int,
    completion_tokens: int,
    *,
    include_usage: bool,
) -> list[bytes]:
    """Every server-sent event of a stream, ``data: [DONE]`` last."""
    base: dict[str, Any] = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    events = [event([choice({"role": "assistant", "content": ""})])]
    events.extend(event([choice({"content": word})]) for word in _words(completion_tokens))
    events.append(event([choice({}, "stop")]))
    if include_usage:
        events.append(event([], usage=_usage(prompt, completion_tokens)))
    events.append(b"data: [DONE]\n\n")
    return events
