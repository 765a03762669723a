# SPDX-License-Identifier: MIT
"""
The rate-limit dialects providers speak, each read into the same numbers.

========  ==================================================================  ==============
dialect   what the provider sends                                             windows (s)
========  ==================================================================  ==============
openai    ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``,          60 / 60
          resets as Go durations (``"6m0s"``)
plain     ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (Moonshot), for     60 / -
          requests; a reset above 10^9 is a Unix time
groq      OpenAI's six names, but requests per *day*, tokens per minute;      86400 / 60
          every response has ``x-groq-region``
together  ``x-ratelimit-limit``/``-remaining``/``-reset`` per second, and     1 / 1
          ``x-tokenlimit-limit``/``-remaining``
azure     ``x-ratelimit-remaining-{requests,tokens}`` and no limit at all;    60 / 60
          its 429s add ``retry-after-ms`` and ``x-ms-retry-after-ms``
ietf      ``RateLimit: limit=20, remaining=3, reset=1`` (or                   the policy's w
          ``"name";r=3;t=1``) with ``RateLimit-Policy: 20;w=1`` (or
          ``"name";q=20;w=1``), or ``RateLimit-Limit``/``-Remaining``/``-Reset``
gemini    no header: a 429 ``RESOURCE_EXHAUSTED`` body whose                  -
          ``google.rpc.RetryInfo`` has ``retryDelay: "43s"`` (``parse_retry_delay``)
========  ==================================================================  ==============

`detect_dialect` tells them apart by name: ``RateLimit*`` is IETF,
``x-tokenlimit-*`` Together, OpenAI's names beside ``x-groq-region`` Groq,
OpenAI's remaining counts without any limit Azure, OpenAI's names otherwise
OpenAI, the plain names alone plain. A provider whose headers look like
another's (Together's without ``x-tokenlimit-*`` look plain, Groq's without
``x-groq-region`` look like OpenAI's) names its dialect in its profile
(``ProviderConfig.rate_limit_dialect``) and is then read as nothing else.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Callable, Mapping

__all__ = [
    "RATE_LIMIT_DIALECTS",
    "Reading",
    "detect_dialect",
    "duration",
    "finite_non_negative",
    "get",
    "read_dialect",
    "retry_delay",
]

#: Every dialect `parse_rate_limit_headers` reads (``.. versionadded:: 0.2.0``).
RATE_LIMIT_DIALECTS: tuple[str, ...] = (
    "openai",
    "plain",
    "groq",
    "together",
    "azure",
    "ietf",
    "gemini",
)

_Triple = tuple[float | None, float | None, float | None]
_Values = tuple[float | None, float | None, float | None, float | None, float | None, float | None]
#: Limit, remaining and reset of requests, the same of tokens, then the two windows.
Reading = tuple[
    float | None,
    float | None,
    float | None,
    float | None,
    float | None,
    float | None,
    float | None,
    float | None,
]
_NONE: _Triple = (None, None, None)
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|us|µs|ns|h|m|s))+")
# Plain "reset" values above this are Unix timestamps, not durations.
_EPOCH_THRESHOLD = 1_000_000_000.0
_MINUTE, _DAY = 60.0, 86_400.0
_OPENAI = tuple(
    f"x-ratelimit-{what}-{kind}"
    for kind in ("requests", "tokens")
    for what in ("limit", "remaining", "reset")
)
_PLAIN = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
_IETF = (
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
)


def finite_non_negative(value: float) -> float | None:
    """*value* when finite and >= 0, else None."""
    if math.isfinite(value) and value >= 0:
        return value
    return None


@functools.lru_cache(maxsize=512)
def _parse_duration_text(text: str) -> float | None:
    try:
        return finite_non_negative(float(text))
    except ValueError:
        pass
    if not _DURATION.fullmatch(text):
        return None
    total = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    return finite_non_negative(total)


def duration(value: str | None) -> float | None:
    """Seconds of a Go-style duration or plain seconds (see `parse_duration`), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    return _parse_duration_text(text)


def get(headers: Mapping[str, str], name: str) -> str | None:
    """The header *name* (lower case) as text, or None."""
    try:
        value = headers.get(name)
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return finite_non_negative(float(text.strip()))
    except ValueError:
        return None


def _reset(text: str | None, now: Callable[[], float]) -> float | None:
    seconds = duration(text)
    if seconds is not None and seconds > _EPOCH_THRESHOLD:
        return max(0.0, seconds - now())
    return seconds


def detect_dialect(headers: Mapping[str, str]) -> str | None:
    """
    The dialect *headers* (lower-case names) are in, or None when they carry no limit.

    .. versionadded:: 0.2.0
    """
    if "x-ratelimit-limit-requests" in headers or "x-ratelimit-limit-tokens" in headers:
        return "groq" if "x-groq-region" in headers else "openai"  # the common case first
    if any(name in headers for name in _IETF):
        return "ietf"
    if "x-tokenlimit-limit" in headers or "x-tokenlimit-remaining" in headers:
        return "together"
    if any(name in headers for name in _OPENAI):
        if "x-groq-region" in headers:
            return "groq"
        if any(name in headers for name in _PLAIN):
            return "openai"  # OpenAI's names filled in by plain ones, as ever
        return "azure"  # remaining counts and no limit at all: Azure OpenAI's way
    if any(name in headers for name in _PLAIN):
        return "plain"
    return None


def _openai_names(headers: Mapping[str, str], now: Callable[[], float]) -> _Values:
    return (
        _number(get(headers, "x-ratelimit-limit-requests")),
        _number(get(headers, "x-ratelimit-remaining-requests")),
        _reset(get(headers, "x-ratelimit-reset-requests"), now),
        _number(get(headers, "x-ratelimit-limit-tokens")),
        _number(get(headers, "x-ratelimit-remaining-tokens")),
        _reset(get(headers, "x-ratelimit-reset-tokens"), now),
    )


def _plain(headers: Mapping[str, str], now: Callable[[], float]) -> _Triple:
    limit, remaining, reset = (get(headers, name) for name in _PLAIN)
    return _number(limit), _number(remaining), _reset(reset, now)


def _window(values: _Triple, seconds: float) -> float | None:
    return None if values == (None, None, None) else seconds


def _reading(req: _Triple, tok: _Triple, req_window: float, tok_window: float) -> Reading:
    return (*req, *tok, _window(req, req_window), _window(tok, tok_window))


def read_dialect(
    headers: Mapping[str, str], dialect: str, now: Callable[[], float] = time.time
) -> Reading:
    """
    Read *headers* (lower-case names) as *dialect* says, and as nothing else.

    A window is given when a value of its kind was read. In the ``openai``
    dialect the plain headers fill request fields the ``-requests`` ones leave
    empty (as before dialects existed).

    .. versionadded:: 0.2.0
    """
    if dialect in ("openai", "groq", "azure"):
        values = _openai_names(headers, now)
        req, tok = values[:3], values[3:]
        if dialect == "openai" and None in req:
            (a, b, c), (x, y, z) = req, _plain(headers, now)
            req = (x if a is None else a, y if b is None else b, z if c is None else c)
        return _reading(req, tok, _DAY if dialect == "groq" else _MINUTE, _MINUTE)
    if dialect == "plain":
        return _reading(_plain(headers, now), _NONE, _MINUTE, _MINUTE)
    if dialect == "together":
        tok = (
            _number(get(headers, "x-tokenlimit-limit")),
            _number(get(headers, "x-tokenlimit-remaining")),
            _reset(get(headers, "x-tokenlimit-reset"), now),
        )
        return _reading(_plain(headers, now), tok, 1.0, 1.0)
    if dialect == "ietf":
        return _ietf(headers, now)
    return (None,) * 8  # gemini says nothing in headers


def _members(text: str | None) -> list[tuple[str, dict[str, str]]]:
    """The members of a structured-field list or dictionary: (head, parameters)."""
    if not text:
        return []
    out = []
    for member in text.split(",")[:16]:
        head, *params = (part.strip() for part in member.split(";"))
        values = {}
        for param in params:
            key, _, value = param.partition("=")
            values[key.strip().lower()] = value.strip()
        out.append((head, values))
    return out


def _ietf(headers: Mapping[str, str], now: Callable[[], float]) -> Reading:
    limit = remaining = reset = None
    name = None
    policies = _members(get(headers, "ratelimit-policy"))
    members = _members(get(headers, "ratelimit"))
    if any("=" in head for head, _ in members):  # draft 7: limit=.., remaining=.., reset=..
        fields = {k.strip().lower(): v for k, _, v in (h.partition("=") for h, _ in members)}
        limit, remaining = _number(fields.get("limit")), _number(fields.get("remaining"))
        reset = _reset(fields.get("reset"), now)
    elif members:  # later drafts: "name";r=..;t=..
        name, params = members[0]
        remaining, reset = _number(params.get("r")), _reset(params.get("t"), now)
    else:  # early drafts, a header a field: RateLimit-Limit: 20, 20;w=1
        limits = _members(get(headers, "ratelimit-limit"))
        limit = _number(limits[0][0]) if limits else None
        policies += limits[1:] if len(limits) > 1 else limits
        remaining = _number(get(headers, "ratelimit-remaining"))
        reset = _reset(get(headers, "ratelimit-reset"), now)
    quotas = [
        (head, _number(params.get("q", head)), _number(params.get("w")))
        for head, params in policies
        if params.get("w")
    ]
    # The policy the values are about: named so, else of the announced quota, else
    # the only one. Any other window would be a guess, and a guess is a misreading.
    if limit is not None:
        chosen = [p for p in quotas if p[1] == limit]
    else:
        chosen = [p for p in quotas if p[0] == name] or (quotas if len(quotas) == 1 else [])
    window = None
    if chosen:
        limit = chosen[0][1] if limit is None else limit
        window = chosen[0][2] or None
    req = (limit, remaining, reset)
    return (*req, None, None, None, window if req != _NONE else None, None)


def retry_delay(body: object) -> float | None:
    """The ``retryDelay`` of a Google error body (see ``parse_retry_delay``), or None."""
    if isinstance(body, str | bytes):
        if len(body) > 65_536:
            return None
        try:
            body = json.loads(body)
        except ValueError:
            return None
    for _ in range(4):  # [ {"error": {"details": [...]}} ] at most
        if isinstance(body, list) and body:
            body = body[0]
        elif isinstance(body, dict) and isinstance(body.get("error"), dict | list):
            body = body["error"]
        else:
            break
    details = body.get("details") if isinstance(body, dict) else None
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == _RETRY_INFO:
            delay = detail.get("retryDelay")
            return duration(delay) if isinstance(delay, str) else None
    return None
