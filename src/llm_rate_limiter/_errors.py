# SPDX-License-Identifier: MIT
"""
Error classification: which failures are worth another attempt.

`classify_error` maps any exception (openai SDK errors, the SDK's HTTP
transport errors, OS and timeout errors, the library's own) to a
`RetryErrorType`. It never raises.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from typing import Any

import httpx2
import openai

from .exceptions import (
    CircuitOpenError,
    ConfigurationError,
    RateLimitTimeoutError,
    RequestTooLargeError,
    SharedStateUnavailableError,
    StreamInterruptedError,
)

__all__ = [
    "RETRYABLE_BY_DEFAULT",
    "RetryErrorType",
    "classify_error",
    "classify_error_for_retry",
    "classify_status",
    "is_quota_error",
    "is_retryable",
]


class RetryErrorType(Enum):
    """
    What kind of failure an exception is, and so whether retrying may help.

    .. versionadded:: 0.1.0
    """

    TRANSIENT_NETWORK = "transient_network"
    RATE_LIMIT = "rate_limit"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    AUTHENTICATION = "authentication"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"


RETRYABLE_BY_DEFAULT: frozenset[RetryErrorType] = frozenset(
    {
        RetryErrorType.TRANSIENT_NETWORK,
        RetryErrorType.RATE_LIMIT,
        RetryErrorType.TIMEOUT,
        RetryErrorType.SERVER_ERROR,
    }
)

# 429 bodies that mean "out of money", not "too fast": never worth a retry.
_QUOTA_MARKERS = frozenset({"insufficient_quota", "exceeded_current_quota_error"})


def is_retryable(kind: RetryErrorType) -> bool:
    """
    Tell whether *kind* is retried by default.

    Args:
        kind: A classification from `classify_error`.

    Returns:
        True for transient network errors, rate limits, timeouts and server errors.

    .. versionadded:: 0.1.0
    """
    return kind in RETRYABLE_BY_DEFAULT


def classify_status(status: int, *, code: object = None, type: object = None) -> RetryErrorType:
    """
    Classify an HTTP status code and the ``code``/``type`` of its error body.

    Args:
        status: The HTTP status code.
        code: The ``error.code`` of the body, if any.
        type: The ``error.type`` of the body, if any.

    Returns:
        The classification.

    .. versionadded:: 0.1.0
    """
    if status == 429:
        if code in _QUOTA_MARKERS or type in _QUOTA_MARKERS:
            return RetryErrorType.PERMANENT
        return RetryErrorType.RATE_LIMIT
    if status >= 500:
        return RetryErrorType.SERVER_ERROR
    if status == 408:
        return RetryErrorType.TIMEOUT
    if status in (401, 403):
        return RetryErrorType.AUTHENTICATION
    if 400 <= status < 500:
        return RetryErrorType.PERMANENT
    return RetryErrorType.UNKNOWN


def _body_field(body: object, name: str) -> Any:
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            return inner.get(name)
    return None


def is_quota_error(exc: BaseException) -> bool:
    """
    Tell whether *exc* says the account's quota is exhausted (a billing state, not a rate).

    Args:
        exc: Any exception.

    Returns:
        True for a 429 whose code or type is ``insufficient_quota`` (OpenAI) or
        ``exceeded_current_quota_error`` (Moonshot).

    .. versionadded:: 0.1.0
    """
    if not isinstance(exc, openai.APIStatusError) or exc.status_code != 429:
        return False
    code = getattr(exc, "code", None) or _body_field(exc.body, "code")
    kind = getattr(exc, "type", None) or _body_field(exc.body, "type")
    return code in _QUOTA_MARKERS or kind in _QUOTA_MARKERS


def _classify_status_error(exc: openai.APIStatusError) -> RetryErrorType:
    code = getattr(exc, "code", None) or _body_field(exc.body, "code")
    kind = getattr(exc, "type", None) or _body_field(exc.body, "type")
    result = classify_status(exc.status_code, code=code, type=kind)
    try:
        should_retry = exc.response.headers.get("x-should-retry")
    except Exception:  # pragma: no cover -- a response always has headers
        should_retry = None
    if should_retry == "false" and is_retryable(result):
        return RetryErrorType.PERMANENT
    if should_retry == "true" and not is_retryable(result):
        # The server says its refusal is transient: treat it as its own trouble.
        return RetryErrorType.SERVER_ERROR
    return result


def classify_error(exc: BaseException) -> RetryErrorType:
    """
    Classify *exc* for retrying, breaking and reporting.

    Server hints win: ``x-should-retry: true|false`` overrides the status code.
    A 429 whose code or type says the quota is exhausted (OpenAI's
    ``insufficient_quota``, Moonshot's ``exceeded_current_quota_error``) is
    `RetryErrorType.PERMANENT`; other 429s are `RetryErrorType.RATE_LIMIT`.

    Args:
        exc: Any exception.

    Returns:
        The classification; `RetryErrorType.UNKNOWN` for anything unrecognised.
        It never raises.

    .. versionadded:: 0.1.0
    """
    try:
        return _classify(exc)
    except Exception:  # pragma: no cover -- defensive: a hostile __getattr__
        return RetryErrorType.UNKNOWN


def _classify(exc: BaseException) -> RetryErrorType:
    if isinstance(exc, openai.APIStatusError):
        return _classify_status_error(exc)
    if isinstance(exc, openai.APITimeoutError):
        return RetryErrorType.TIMEOUT
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        if isinstance(cause, httpx2.TimeoutException | TimeoutError):
            return RetryErrorType.TIMEOUT
        return RetryErrorType.TRANSIENT_NETWORK
    if isinstance(exc, openai.APIResponseValidationError):
        return RetryErrorType.SERVER_ERROR
    if isinstance(exc, openai.LengthFinishReasonError | openai.ContentFilterFinishReasonError):
        return RetryErrorType.PERMANENT
    if isinstance(exc, CircuitOpenError):
        return RetryErrorType.SERVER_ERROR
    if isinstance(exc, StreamInterruptedError) and isinstance(exc.kind, RetryErrorType):
        return exc.kind
    if isinstance(exc, RateLimitTimeoutError):
        return RetryErrorType.RATE_LIMIT
    if isinstance(exc, RequestTooLargeError | ConfigurationError | SharedStateUnavailableError):
        return RetryErrorType.PERMANENT
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return RetryErrorType.TIMEOUT
    if isinstance(exc, httpx2.HTTPStatusError):
        return classify_status(exc.response.status_code)
    if isinstance(exc, httpx2.TransportError | httpx2.StreamError):
        return RetryErrorType.TRANSIENT_NETWORK
    if isinstance(exc, json.JSONDecodeError):
        return RetryErrorType.SERVER_ERROR
    if isinstance(exc, OSError | EOFError):
        return RetryErrorType.TRANSIENT_NETWORK
    if _is_anyio_stream_error(exc):
        return RetryErrorType.TRANSIENT_NETWORK
    return RetryErrorType.UNKNOWN


def _is_anyio_stream_error(exc: BaseException) -> bool:
    import anyio

    return isinstance(
        exc, anyio.BrokenResourceError | anyio.ClosedResourceError | anyio.EndOfStream
    )


#: The seed's name for `classify_error`.
classify_error_for_retry = classify_error
