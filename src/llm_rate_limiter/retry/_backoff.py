# SPDX-License-Identifier: MIT
"""
Wait arithmetic: exponential backoff with jitter, and the server's Retry-After.

`calculate_backoff_delay` is the seed's function: capped exponential backoff
plus up to 10% of additive jitter. `backoff_delay` is what `RetryPolicy` uses:
full jitter. `server_retry_after` reads ``retry-after-ms``/``retry-after``
(or a Gemini body's ``retryDelay``) from an SDK or HTTP error.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx2
import openai

from .._headers import parse_retry_after, parse_retry_delay
from ..exceptions import ConfigurationError

__all__ = [
    "RETRY_AFTER_SPREAD",
    "SEED_JITTER",
    "backoff_cap",
    "backoff_delay",
    "calculate_backoff_delay",
    "server_retry_after",
]

#: Jitter added on top of a Retry-After: up to this fraction of ``retry_after + base_delay``.
RETRY_AFTER_SPREAD = 0.1
#: Additive jitter of `calculate_backoff_delay`: up to this fraction of the delay.
SEED_JITTER = 0.1
# 2.0 ** 1000 is still a finite float; beyond, every sane cap has long been reached.
_MAX_EXPONENT = 1000


def backoff_cap(exponent: int, base_delay: float, max_delay: float) -> float:
    """``min(max_delay, base_delay * 2 ** exponent)``, safe against float overflow."""
    if base_delay == 0.0:
        return 0.0
    return min(max_delay, base_delay * 2.0 ** min(exponent, _MAX_EXPONENT))


def backoff_delay(
    retry_number: int,
    base_delay: float,
    max_delay: float,
    *,
    jitter: bool,
    rng: Callable[[], float],
) -> float:
    """
    The wait before retry *retry_number* (1-based): full jitter over the capped backoff.

    Returns a value in ``[0, min(max_delay, base_delay * 2 ** (retry_number - 1))]``;
    exactly the upper bound when *jitter* is off.
    """
    cap = backoff_cap(max(0, retry_number - 1), base_delay, max_delay)
    return rng() * cap if jitter else cap


def calculate_backoff_delay(
    attempt: int, base_delay: float, max_delay: float, jitter: bool = True
) -> float:
    """
    The seed's backoff: ``min(max_delay, base_delay * 2 ** attempt)`` plus jitter.

    The jitter is additive and bounded: up to 10% of the capped delay, so the
    result lies in ``[d, 1.1 * d]`` where ``d`` is the capped delay.

    Args:
        attempt: The 0-based number of the retry (0 gives *base_delay*).
        base_delay: The first delay, in seconds.
        max_delay: The cap before jitter, in seconds.
        jitter: Add random jitter (prevents a thundering herd).

    Returns:
        Seconds to wait.

    Raises:
        ConfigurationError: A negative *attempt* or delay, or *max_delay* under *base_delay*.

    .. versionadded:: 0.1.0
    """
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
        msg = f"must be an integer >= 0, got {attempt!r}"
        raise ConfigurationError("attempt", msg)
    if not base_delay >= 0.0:
        msg = f"must be >= 0, got {base_delay!r}"
        raise ConfigurationError("base_delay", msg)
    if not max_delay >= base_delay:
        msg = f"must be >= base_delay ({base_delay:g}), got {max_delay!r}"
        raise ConfigurationError("max_delay", msg)
    delay = backoff_cap(attempt, base_delay, max_delay)
    if jitter:
        delay += random.uniform(0.0, SEED_JITTER * delay)
    return delay


def server_retry_after(exc: BaseException) -> float | None:
    """
    The wait the server asked for in the response that *exc* carries, if any.

    Reads ``retry-after-ms`` (which wins), ``x-ms-retry-after-ms`` and
    ``retry-after`` from ``exc.response.headers`` of `openai.APIStatusError`
    and `httpx2.HTTPStatusError`; without them, the ``retryDelay`` of a
    Google ``RESOURCE_EXHAUSTED`` body (Gemini sends no header).

    Returns:
        Seconds, or None when the response asks for no wait (or there is none).

    .. versionchanged:: 0.2.0 a Gemini body's ``retryDelay`` is read.
    """
    if isinstance(exc, openai.APIStatusError | httpx2.HTTPStatusError):
        try:
            headers = exc.response.headers
        except Exception:  # pragma: no cover -- defensive: a response without headers
            return None
        wait = parse_retry_after(headers)
        if wait is None and exc.response.status_code == 429:
            wait = parse_retry_delay(_body(exc))
        return wait
    return None


def _body(exc: openai.APIStatusError | httpx2.HTTPStatusError) -> object:
    """The error body: the SDK's decoded one, else the response's text when it was read."""
    if isinstance(exc, openai.APIStatusError):
        return exc.body
    try:
        return exc.response.text
    except Exception:  # a streamed response not read: no body to look at
        return None
