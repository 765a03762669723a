# SPDX-License-Identifier: MIT
"""
Parse the rate-limit headers providers send, in every dialect, into one model.

``retry-after`` (seconds or an HTTP date), ``retry-after-ms`` and Azure's
``x-ms-retry-after-ms``; and the limits of each dialect (`_dialects`: OpenAI's
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` with durations such
as ``"1s"``, ``"20ms"``, ``"6m0s"``, Moonshot's plain ``x-ratelimit-limit``,
``-remaining``, ``-reset``, Groq's per-day requests, Together's per-second
limits, Azure's remaining counts, the IETF ``RateLimit``/``RateLimit-Policy``
fields) read into `RateLimitHeaders`, with the window each limit applies to.
Gemini sends no header: `parse_retry_delay` reads its 429 body. Malformed
values give None, never an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from ._dialects import (
    RATE_LIMIT_DIALECTS,
    detect_dialect,
    duration,
    finite_non_negative,
    get,
    read_dialect,
    retry_delay,
)

__all__ = [
    "RATE_LIMIT_DIALECTS",
    "RateLimitHeaders",
    "parse_duration",
    "parse_rate_limit_headers",
    "parse_retry_after",
    "parse_retry_delay",
    "server_pause",
]


def parse_duration(value: str | None) -> float | None:
    """
    Parse a provider duration into seconds.

    Accepts Go-style durations (``"1s"``, ``"20ms"``, ``"6m0s"``, ``"1h2m3.5s"``)
    and plain seconds (``"2"``, ``"0.5"``).

    Args:
        value: The header value.

    Returns:
        Seconds, or None when *value* is missing or malformed.

    .. versionadded:: 0.1.0
    """
    return duration(value)


def _lower(headers: Mapping[str, str]) -> Mapping[str, str]:
    """A plain dict of the headers that matter, with lower-case names."""
    if isinstance(headers, dict):
        return {str(k).lower(): v for k, v in headers.items()}
    multi_items = getattr(headers, "multi_items", None)
    if multi_items is not None:
        # httpx2.Headers: names come lower-cased; one pass beats a dozen .get() scans.
        try:
            return {k: v for k, v in multi_items() if k[:1] in ("x", "r")}
        except Exception:
            return headers
    try:  # any other mapping: names as given, so lower-case them too
        return {str(k).lower(): v for k, v in headers.items()}
    except Exception:
        return headers


def _milliseconds(headers: Mapping[str, str], name: str) -> float | None:
    raw = get(headers, name)
    if raw is None:
        return None
    try:
        ms = finite_non_negative(float(raw))
    except ValueError:
        return None
    return None if ms is None else ms / 1000.0


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """
    Read how long the server asks the client to wait, in seconds.

    ``retry-after-ms`` wins, then Azure's ``x-ms-retry-after-ms``, then
    ``retry-after``, which may be (float) seconds or an HTTP date.

    Args:
        headers: Response headers (an ``httpx2.Headers`` or any mapping).
        now: Wall clock, for HTTP dates.

    Returns:
        Seconds to wait, or None when absent or malformed.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``x-ms-retry-after-ms`` is read.
    """
    headers = _lower(headers)
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        seconds = _milliseconds(headers, name)
        if seconds is not None:
            return seconds
    raw = get(headers, "retry-after")
    if raw is None:
        return None
    try:
        return finite_non_negative(float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # pragma: no cover -- older Pythons returned None
        return None
    try:
        return max(0.0, when.timestamp() - now())
    except (OverflowError, OSError, ValueError):  # pragma: no cover -- absurd dates
        return None


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """
    What the provider says about its limits in one response.

    A limit counts requests (or tokens) per its window: OpenAI's per minute
    (window 60), Groq's requests per day (86400), Together's per second (1),
    an IETF policy's ``w``. `requests_per_minute` and `tokens_per_minute` put
    every dialect on the same scale.

    Attributes:
        limit_requests: Requests allowed per ``request_window``.
        remaining_requests: Requests left in the window.
        reset_requests: Seconds until the request window resets.
        limit_tokens: Tokens allowed per ``token_window``.
        remaining_tokens: Tokens left in the window.
        reset_tokens: Seconds until the token window resets.
        request_window: Seconds the request limit applies to; None when unknown
            (or no request value was read).
        token_window: Seconds the token limit applies to; None likewise.
        dialect: The dialect the values were read in (one of
            `RATE_LIMIT_DIALECTS`); None when nothing was read.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``request_window``, ``token_window`` and ``dialect``.
    """

    limit_requests: float | None = None
    remaining_requests: float | None = None
    reset_requests: float | None = None
    limit_tokens: float | None = None
    remaining_tokens: float | None = None
    reset_tokens: float | None = None
    request_window: float | None = None
    token_window: float | None = None
    dialect: str | None = None

    @property
    def empty(self) -> bool:
        """True when the response carried no rate-limit header at all."""
        return all(
            v is None
            for v in (
                self.limit_requests,
                self.remaining_requests,
                self.reset_requests,
                self.limit_tokens,
                self.remaining_tokens,
                self.reset_tokens,
            )
        )

    @property
    def requests_per_minute(self) -> float | None:
        """
        The request limit per minute, whatever its window; None when limit or window is unknown.

        .. versionadded:: 0.2.0
        """
        return _per_minute(self.limit_requests, self.request_window)

    @property
    def tokens_per_minute(self) -> float | None:
        """
        The token limit per minute, whatever its window; None when limit or window is unknown.

        .. versionadded:: 0.2.0
        """
        return _per_minute(self.limit_tokens, self.token_window)


def _per_minute(limit: float | None, window: float | None) -> float | None:
    if limit is None or not window:
        return None
    return limit * 60.0 / window


_NO_HEADERS = RateLimitHeaders()
_NOTHING = (None,) * 8


def parse_rate_limit_headers(
    headers: Mapping[str, str],
    *,
    now: Callable[[], float] = time.time,
    dialect: str | None = None,
) -> RateLimitHeaders:
    """
    Parse the rate-limit headers of a response, in *dialect* or the one they are in.

    Without *dialect* it is detected from the header names (see `_dialects`);
    with one, the headers are read as that dialect only, so a provider whose
    headers look like another's is never misread. In the ``openai`` dialect
    the plain ``x-ratelimit-limit``/``-remaining``/``-reset`` headers fill the
    request fields the ``-requests`` ones leave empty; a plain reset larger
    than 10^9 is read as a Unix timestamp.

    Args:
        headers: Response headers (an ``httpx2.Headers`` or any mapping).
        now: Wall clock, for reset timestamps.
        dialect: One of `RATE_LIMIT_DIALECTS`, or None to detect it.

    Returns:
        The parsed values; a field is None when absent or malformed. A response
        with nothing to read gives an empty value whose ``dialect`` is None.

    Raises:
        ValueError: *dialect* is not one of `RATE_LIMIT_DIALECTS`.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``dialect=``; every dialect, and the windows.
    """
    if dialect is not None and dialect not in RATE_LIMIT_DIALECTS:
        msg = f"unknown rate-limit dialect {dialect!r}; expected one of {RATE_LIMIT_DIALECTS}"
        raise ValueError(msg)
    headers = _lower(headers)
    if not headers:
        return _NO_HEADERS
    if dialect is None:
        dialect = detect_dialect(headers)
        if dialect is None:
            return _NO_HEADERS
    reading = read_dialect(headers, dialect, now)
    if reading == _NOTHING:
        return _NO_HEADERS
    return RateLimitHeaders(*reading, dialect=dialect)


def server_pause(
    headers: Mapping[str, str], retry_after: float | None = None, *, dialect: str | None = None
) -> float | None:
    """
    How long a 429 asks the client to pause: *retry_after* (when known), else
    ``retry-after(-ms)``, else the reset of an exhausted requests or tokens window.

    Args:
        headers: The 429 response's headers.
        retry_after: A wait already parsed from them, if any.
        dialect: The provider's rate-limit dialect, or None to detect it.

    Returns:
        Seconds, or None when the response says nothing usable.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``dialect=``.
    """
    if retry_after is not None:
        return retry_after
    pause = parse_retry_after(headers)
    if pause is not None:
        return pause
    seen = parse_rate_limit_headers(headers, dialect=dialect)
    resets = [
        reset
        for remaining, reset in (
            (seen.remaining_requests, seen.reset_requests),
            (seen.remaining_tokens, seen.reset_tokens),
        )
        if remaining is not None and remaining < 1.0 and reset is not None
    ]
    return max(resets, default=None)


def parse_retry_delay(body: object) -> float | None:
    """
    The ``retryDelay`` of a Google ``RESOURCE_EXHAUSTED`` error body, in seconds.

    Gemini's 429 carries no header: its body's ``details`` hold a
    ``google.rpc.RetryInfo`` with a protobuf duration (``"43s"``, ``"0.5s"``).
    The body may be the decoded JSON, ``{"error": {...}}``, the unwrapped error
    (an SDK's ``exc.body``), a list of those (Gemini's OpenAI-compatible
    endpoint), or its raw text.

    Args:
        body: The error body.

    Returns:
        Seconds, or None when the body has no readable retry delay.

    .. versionadded:: 0.2.0
    """
    return retry_delay(body)
