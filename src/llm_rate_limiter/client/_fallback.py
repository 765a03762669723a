# SPDX-License-Identifier: MIT
"""When a call moves on to the next provider of its fallback chain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import openai

from .._errors import RetryErrorType, classify_error
from ..exceptions import CircuitOpenError, ConfigurationError, LLMRateLimiterError

__all__ = ["fallback_reason", "validate_fallbacks"]


def _codes(exc: BaseException) -> set[str]:
    found: set[str] = set()
    for attr in ("code", "type"):
        value = getattr(exc, attr, None)
        if isinstance(value, str):
            found.add(value)
    return found


def fallback_reason(
    exc: BaseException, retry_on: frozenset[RetryErrorType], fallback_codes: frozenset[str]
) -> RetryErrorType | None:
    """
    Tell why *exc* should send the call to the next provider, or None to fail now.

    A call moves on when the breaker is open, when the limiter refused it, when
    retries were exhausted on a retryable error, or when the provider answered
    with an error of its own (authentication, quota, context length, content
    filter: see ``fallback_codes``). A malformed request (other 4xx) fails at once:
    another provider would refuse it too.
    """
    if isinstance(exc, CircuitOpenError):
        return RetryErrorType.SERVER_ERROR
    kind = classify_error(exc)
    if isinstance(exc, LLMRateLimiterError):
        return kind if kind is not RetryErrorType.UNKNOWN else None
    if kind in retry_on or kind is RetryErrorType.AUTHENTICATION:
        return kind
    if isinstance(exc, openai.LengthFinishReasonError | openai.ContentFilterFinishReasonError):
        return kind
    if kind is RetryErrorType.PERMANENT and _codes(exc) & fallback_codes:
        return kind
    return None


def validate_fallbacks(
    fallbacks: Mapping[str, Sequence[str]], names: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """Check that every provider named in *fallbacks* exists; return a normalised copy."""
    known = set(names)
    result: dict[str, tuple[str, ...]] = {}
    for primary, chain in fallbacks.items():
        if primary not in known:
            msg = f"unknown provider {primary!r} (known: {sorted(known)})"
            raise ConfigurationError("fallbacks", msg)
        if isinstance(chain, str):
            chain = (chain,)
        for backup in chain:
            if backup not in known:
                msg = f"unknown fallback provider {backup!r} for {primary!r}"
                raise ConfigurationError("fallbacks", msg)
            if backup == primary:
                msg = f"provider {primary!r} cannot fall back to itself"
                raise ConfigurationError("fallbacks", msg)
        result[primary] = tuple(dict.fromkeys(chain))
    return result
