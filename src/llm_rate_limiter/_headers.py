# SPDX-License-Identifier: MIT
"""
Parse the rate-limit headers providers send.

``retry-after`` (seconds or an HTTP date), ``retry-after-ms``, OpenAI's
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` with durations such
as ``"1s"``, ``"20ms"``, ``"6m0s"``, and the plain ``x-ratelimit-limit``,
``-remaining``, ``-reset`` some providers send. Malformed values give None,
never an exception.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = [
    "RateLimitHeaders",
    "parse_duration",
    "parse_rate_limit_headers",
    "parse_retry_after",
    "server_pause",
]

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|us|µs|ns|h|m|s))+")
# Plain "reset" values above this are Unix timestamps, not durations.
_EPOCH_THRESHOLD = 1_000_000_000.0


def _finite_non_negative(value: float) -> float | None:
    if math.isfinite(value) and value >= 0:
        return value
    return None


@functools.lru_cache(maxsize=512)
def _parse_duration_text(text: str) -> float | None:
    try:
        return _finite_non_negative(float(text))
    except ValueError:
        pass
    if not _DURATION.fullmatch(text):
        return None
    total = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    return _finite_non_negative(total)


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
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    return _parse_duration_text(text)


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


def _get(headers: Mapping[str, str], name: str) -> str | None:
    try:
        value = headers.get(name)
    except Exception:
        return None
    return value if isinstance(value, str) else None


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """
    Read how long the server asks the client to wait, in seconds.

    ``retry-after-ms`` wins over ``retry-after``; ``retry-after`` may be
    (float) seconds or an HTTP date.

    Args:
        headers: Response headers (an ``httpx2.Headers`` or any mapping).
        now: Wall clock, for HTTP dates.

    Returns:
        Seconds to wait, or None when absent or malformed.

    .. versionadded:: 0.1.0
    """
    headers = _lower(headers)
    raw_ms = _get(headers, "retry-after-ms")
    if raw_ms is not None:
        try:
            ms = _finite_non_negative(float(raw_ms))
        except ValueError:
            ms = None
        if ms is not None:
            return ms / 1000.0
    raw = _get(headers, "retry-after")
    if raw is None:
        return None
    try:
        return _finite_non_negative(float(raw))
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

    Attributes:
        limit_requests: Requests allowed per window.
        remaining_requests: Requests left in the window.
        reset_requests: Seconds until the request window resets.
        limit_tokens: Tokens allowed per window.
        remaining_tokens: Tokens left in the window.
        reset_tokens: Seconds until the token window resets.

    .. versionadded:: 0.1.0
    """

    limit_requests: float | None = None
    remaining_requests: float | None = None
    reset_requests: float | None = None
    limit_tokens: float | None = None
    remaining_tokens: float | None = None
    reset_tokens: float | None = None

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


_NO_HEADERS = RateLimitHeaders()


def _number(headers: Mapping[str, str], name: str) -> float | None:
    raw = _get(headers, name)
    if raw is None:
        return None
    try:
        return _finite_non_negative(float(raw.strip()))
    except ValueError:
        return None


def _reset(headers: Mapping[str, str], name: str, now: Callable[[], float]) -> float | None:
    seconds = parse_duration(_get(headers, name))
    if seconds is not None and seconds > _EPOCH_THRESHOLD:
        return max(0.0, seconds - now())
    return seconds


def parse_rate_limit_headers(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> RateLimitHeaders:
    """
    Parse the ``x-ratelimit-*`` headers of a response.

    The plain ``x-ratelimit-limit``/``-remaining``/``-reset`` headers fill the
    request fields when the ``-requests`` ones are absent; a plain reset larger
    than 10^9 is read as a Unix timestamp.

    Args:
        headers: Response headers (an ``httpx2.Headers`` or any mapping).
        now: Wall clock, for reset timestamps.

    Returns:
        The parsed values; a field is None when absent or malformed.

    .. versionadded:: 0.1.0
    """
    headers = _lower(headers)
    if not headers:
        return _NO_HEADERS
    limit_requests = _number(headers, "x-ratelimit-limit-requests")
    remaining_requests = _number(headers, "x-ratelimit-remaining-requests")
    reset_requests = _reset(headers, "x-ratelimit-reset-requests", now)
    if limit_requests is None:
        limit_requests = _number(headers, "x-ratelimit-limit")
    if remaining_requests is None:
        remaining_requests = _number(headers, "x-ratelimit-remaining")
    if reset_requests is None:
        reset_requests = _reset(headers, "x-ratelimit-reset", now)
    return RateLimitHeaders(
        limit_requests=limit_requests,
        remaining_requests=remaining_requests,
        reset_requests=reset_requests,
        limit_tokens=_number(headers, "x-ratelimit-limit-tokens"),
        remaining_tokens=_number(headers, "x-ratelimit-remaining-tokens"),
        reset_tokens=_reset(headers, "x-ratelimit-reset-tokens", now),
    )


def server_pause(headers: Mapping[str, str], retry_after: float | None = None) -> float | None:
    """
    How long a 429 asks the client to pause: *retry_after* (when known), else
    ``retry-after(-ms)``, else the reset of an exhausted requests or tokens window.

    Args:
        headers: The 429 response's headers.
        retry_after: A wait already parsed from them, if any.

    Returns:
        Seconds, or None when the response says nothing usable.

    .. versionadded:: 0.1.0
    """
    if retry_after is not None:
        return retry_after
    pause = parse_retry_after(headers)
    if pause is not None:
        return pause
    seen = parse_rate_limit_headers(headers)
    resets = [
        reset
        for remaining, reset in (
            (seen.remaining_requests, seen.reset_requests),
            (seen.remaining_tokens, seen.reset_tokens),
        )
        if remaining is not None and remaining < 1.0 and reset is not None
    ]
    return max(resets, default=None)
