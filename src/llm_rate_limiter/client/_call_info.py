# SPDX-License-Identifier: MIT
"""`CallInfo`: what happened during one `AsyncLLMClient` call."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._errors import RetryErrorType

__all__ = ["CallInfo", "FallbackRecord"]


@dataclass(frozen=True, slots=True)
class FallbackRecord:
    """
    One move along a fallback chain.

    Attributes:
        from_provider: The provider that could not serve the call.
        to_provider: The provider tried next.
        reason: Why: the classification of the error that ended *from_provider*.
        error: The error's class name (never its text, which may echo secrets).

    .. versionadded:: 0.1.0
    """

    from_provider: str
    to_provider: str
    reason: RetryErrorType
    error: str


@dataclass(slots=True)
class CallInfo:
    """
    Filled in by `AsyncLLMClient.chat` / `chat_stream` when passed as ``call_info=``.

    Attributes:
        provider: The provider that served the call (None if none did).
        providers_tried: Every provider tried, in order.
        attempts: Attempts made over all providers.
        retry_wait: Seconds slept between attempts.
        latency: Seconds from the call's start to its result (or first chunk).
        fallbacks: Each move to a fallback provider.
        errors: The class name of each failed attempt's final error, per provider.

    .. versionadded:: 0.1.0
    """

    provider: str | None = None
    providers_tried: list[str] = field(default_factory=list)
    attempts: int = 0
    retry_wait: float = 0.0
    latency: float = 0.0
    fallbacks: list[FallbackRecord] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
