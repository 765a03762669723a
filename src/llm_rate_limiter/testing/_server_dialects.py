# SPDX-License-Identifier: MIT
"""
How the fault server announces its limits, in the dialect of the provider it plays.

Every bucket is read the same way (`Level`: refill rate, what is left, time
until full); each dialect only writes it down differently. A dimension
without a limit is a bucket that never drains, at the `FaultConfig` constants
`UNLIMITED_REQUESTS_PER_MINUTE` and `UNLIMITED_TOKENS_PER_MINUTE`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ._server_bodies import format_duration
from ._server_config import UNLIMITED_REQUESTS_PER_MINUTE, UNLIMITED_TOKENS_PER_MINUTE

__all__ = ["Level", "limit_headers", "retry_headers", "unlimited"]

Headers = list[tuple[bytes, bytes]]
_MINUTE, _DAY = 60.0, 86_400.0


@dataclass(frozen=True, slots=True)
class Level:
    """
    One bucket as a response describes it.

    Attributes:
        rate: Refill per second.
        remaining: Whole units left now; None when the bucket never drains (no limit).
        reset: Seconds until the bucket is full again.
        per_second: The limit was set per second (``rps``/``tps``), not per minute.
    """

    rate: float
    remaining: int | None
    reset: float
    per_second: bool = False

    def left(self, window: float) -> float:
        """What is left, out of a limit of ``rate * window``."""
        return self.rate * window if self.remaining is None else float(self.remaining)


def unlimited(kind: str) -> Level:
    """The level of a dimension the server does not limit."""
    per_minute = (
        UNLIMITED_REQUESTS_PER_MINUTE if kind == "requests" else UNLIMITED_TOKENS_PER_MINUTE
    )
    return Level(per_minute / _MINUTE, None, 0.0)


def _number(value: float) -> bytes:
    """A count as providers print it: no exponent, no trailing zeros."""
    if value == int(value):
        return str(int(value)).encode()
    return f"{value:.6f}".rstrip("0").rstrip(".").encode()


def _seconds(value: float) -> bytes:
    return f"{max(0.0, value):.3f}".rstrip("0").rstrip(".").encode()


def _six(req: Level, tok: Level, request_window: float) -> Headers:
    out: Headers = []
    for kind, level, window in (("requests", req, request_window), ("tokens", tok, _MINUTE)):
        out += [
            (f"x-ratelimit-limit-{kind}".encode(), _number(level.rate * window)),
            (f"x-ratelimit-remaining-{kind}".encode(), _number(level.left(window))),
            (f"x-ratelimit-reset-{kind}".encode(), format_duration(level.reset).encode()),
        ]
    return out


def _openai(req: Level, tok: Level) -> Headers:
    return _six(req, tok, _MINUTE)


def _groq(req: Level, tok: Level) -> Headers:
    return [*_six(req, tok, _DAY), (b"x-groq-region", b"mock")]


def _plain(req: Level, tok: Level) -> Headers:
    return [
        (b"x-ratelimit-limit", _number(req.rate * _MINUTE)),
        (b"x-ratelimit-remaining", _number(req.left(_MINUTE))),
        (b"x-ratelimit-reset", _seconds(req.reset)),
    ]


def _together(req: Level, tok: Level) -> Headers:
    return [
        (b"x-ratelimit-limit", _number(req.rate)),
        (b"x-ratelimit-remaining", _number(req.left(1.0))),
        (b"x-ratelimit-reset", _seconds(req.reset)),
        (b"x-tokenlimit-limit", _number(tok.rate)),
        (b"x-tokenlimit-remaining", _number(tok.left(1.0))),
    ]


def _azure(req: Level, tok: Level) -> Headers:
    return [
        (b"x-ratelimit-remaining-requests", _number(req.left(_MINUTE))),
        (b"x-ratelimit-remaining-tokens", _number(tok.left(_MINUTE))),
        (b"x-ms-region", b"mock"),
    ]


def _ietf(req: Level, tok: Level) -> Headers:
    window = 1.0 if req.per_second else _MINUTE
    limit = _number(req.rate * window)
    remaining = _number(req.left(window))
    reset = str(math.ceil(req.reset)).encode()
    return [
        (b"ratelimit", b"limit=" + limit + b", remaining=" + remaining + b", reset=" + reset),
        (b"ratelimit-policy", limit + b";w=" + _number(window)),
    ]


def _nothing(req: Level, tok: Level) -> Headers:
    return []


_LIMITS: dict[str, Callable[[Level, Level], Headers]] = {
    "openai": _openai,
    "moonshot": _plain,
    "plain": _plain,
    "groq": _groq,
    "together": _together,
    "azure": _azure,
    "ietf": _ietf,
    "gemini": _nothing,
}


def limit_headers(dialect: str, requests: Level, tokens: Level) -> Headers:
    """The rate-limit headers of a response in *dialect*, from the two buckets' levels."""
    return _LIMITS[dialect](requests, tokens)


def retry_headers(dialect: str, wait: float) -> Headers:
    """The headers of a 429 that asks for *wait* seconds, in *dialect* (gemini: none)."""
    if dialect == "gemini":
        return []
    headers = [(b"retry-after", str(max(1, math.ceil(wait))).encode())]
    if dialect in ("openai", "moonshot", "azure"):
        headers.append((b"retry-after-ms", _seconds(wait * 1000.0)))
    if dialect == "azure":
        headers.append((b"x-ms-retry-after-ms", _seconds(wait * 1000.0)))
    return headers
