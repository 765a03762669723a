# SPDX-License-Identifier: MIT
"""The fault server's settings: limits, faults and dialect, validated field by field."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from .._validate import check_number
from ..exceptions import ConfigurationError

__all__ = [
    "DIALECTS",
    "FAULT_RATE_FIELDS",
    "UNLIMITED_REQUESTS_PER_MINUTE",
    "UNLIMITED_TOKENS_PER_MINUTE",
    "FaultConfig",
    "apply_changes",
]

Dialect = Literal["openai", "moonshot", "plain", "groq", "together", "azure", "ietf", "gemini"]
#: The providers' ways of announcing limits and errors the server can play.
DIALECTS: tuple[str, ...] = (
    "openai",
    "moonshot",
    "plain",
    "groq",
    "together",
    "azure",
    "ietf",
    "gemini",
)
#: What a dimension without a limit announces, per minute: headers on every
#: response, as OpenAI sends them, above any real tier (OpenAI's tier 5 stops at
#: 30,000 requests and 150M tokens a minute), so no local limit looks too high.
UNLIMITED_REQUESTS_PER_MINUTE = 1_000_000
UNLIMITED_TOKENS_PER_MINUTE = 1_000_000_000

#: The probability fields, in the order one uniform draw is mapped onto them.
FAULT_RATE_FIELDS: tuple[str, ...] = (
    "hang_rate",
    "drop_rate",
    "error_500_rate",
    "error_502_rate",
    "error_503_rate",
    "malformed_rate",
    "stream_failure_rate",
)
_OPTIONAL_RATES = ("rpm", "rps", "tpm", "tps", "request_burst", "token_burst")
_BOOLS = ("insufficient_quota", "unauthorized")


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """
    What the fault server enforces and which faults it injects.

    Limits apply per API key (the ``Authorization: Bearer`` value). Each rate
    is a token bucket: give it per minute (``rpm``/``tpm``) or per second
    (``rps``/``tps``), not both; its burst defaults to one second's worth (at
    least one request, and for tokens at least the largest request).

    Attributes:
        rpm: Requests per minute, or None.
        rps: Requests per second, or None.
        request_burst: Capacity of the requests bucket; None for one second's worth.
        tpm: Tokens per minute, or None.
        tps: Tokens per second, or None.
        token_burst: Capacity of the tokens bucket; None for one second's worth.
        max_concurrency: Concurrent requests allowed per key, or None.
        completion_tokens: Completion tokens of each reply (bounded by ``max_tokens``).
        latency: Fixed delay before each accepted reply, in seconds.
        latency_jitter: Extra uniform random delay in ``[0, latency_jitter)`` seconds.
        error_500_rate: Probability of a 500 reply.
        error_502_rate: Probability of a 502 reply.
        error_503_rate: Probability of a 503 reply.
        hang_rate: Probability of never answering (until ``hang_seconds`` or shutdown).
        hang_seconds: How long a hung request waits before its connection is dropped.
        drop_rate: Probability of closing the connection without a response.
        stream_failure_rate: Probability of a stream aborted after half its chunks.
        malformed_rate: Probability of a 200 reply with a broken JSON body.
        insufficient_quota: Answer every request with a 429 ``insufficient_quota``.
        unauthorized: Answer every request with a 401 ``invalid_api_key``.
        dialect: The provider the server plays, in its rate-limit headers and error
            bodies (`DIALECTS`): ``"openai"`` all six ``x-ratelimit-*`` on every
            response (per minute), ``"moonshot"`` Moonshot's error bodies and plain
            headers, ``"plain"`` ``x-ratelimit-limit``/``-remaining``/``-reset``
            (per minute), ``"groq"`` OpenAI's names with requests per day and
            ``x-groq-region``, ``"together"`` per-second ``x-ratelimit-*`` and
            ``x-tokenlimit-*``, ``"azure"`` remaining counts only and
            ``x-ms-retry-after-ms``, ``"ietf"`` ``RateLimit``/``RateLimit-Policy``
            (``w=1`` for ``rps``, else 60), ``"gemini"`` no header, a Google
            ``RESOURCE_EXHAUSTED`` body with a ``retryDelay``. A dimension without
            a limit announces `UNLIMITED_REQUESTS_PER_MINUTE` /
            `UNLIMITED_TOKENS_PER_MINUTE` (in the dialect's window), always
            fully remaining.
        outages: Scheduled outage windows as ``(start, duration)`` seconds after start.
        seed: Seed of the server's random generator (None: unseeded).
        model: Model name reported when a request names none.

    Raises:
        ConfigurationError: A setting is out of range; its name is in the error.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 every dialect of `DIALECTS`; unlimited dimensions announce limits too.
    """

    rpm: float | None = None
    rps: float | None = None
    request_burst: float | None = None
    tpm: float | None = None
    tps: float | None = None
    token_burst: float | None = None
    max_concurrency: int | None = None
    completion_tokens: int = 16
    latency: float = 0.0
    latency_jitter: float = 0.0
    error_500_rate: float = 0.0
    error_502_rate: float = 0.0
    error_503_rate: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 3600.0
    drop_rate: float = 0.0
    stream_failure_rate: float = 0.0
    malformed_rate: float = 0.0
    insufficient_quota: bool = False
    unauthorized: bool = False
    dialect: Dialect = "openai"
    outages: tuple[tuple[float, float], ...] = field(default=())
    seed: int | None = 0
    model: str = "mock-gpt"

    def __post_init__(self) -> None:
        for name in _OPTIONAL_RATES:
            value = check_number(
                name, getattr(self, name), minimum=0.0, inclusive=False, allow_none=True
            )
            object.__setattr__(self, name, value)
        for a, b in (("rpm", "rps"), ("tpm", "tps")):
            if getattr(self, a) is not None and getattr(self, b) is not None:
                msg = f"give {a} or {b}, not both"
                raise ConfigurationError(a, msg)
        _check_int_or_none("max_concurrency", self.max_concurrency, minimum=1)
        _check_int_or_none("completion_tokens", self.completion_tokens, minimum=1)
        for name in ("latency", "latency_jitter", "hang_seconds"):
            object.__setattr__(self, name, check_number(name, getattr(self, name)))
        total = 0.0
        for name in FAULT_RATE_FIELDS:
            value = check_number(name, getattr(self, name))
            assert value is not None
            if value > 1.0:
                msg = f"must be a probability in [0, 1], got {value:g}"
                raise ConfigurationError(name, msg)
            object.__setattr__(self, name, value)
            total += value
        if total > 1.0 + 1e-9:
            msg = f"the fault probabilities add up to {total:g}, more than 1"
            raise ConfigurationError("error_rates", msg)
        for name in _BOOLS:
            if not isinstance(getattr(self, name), bool):
                msg = f"must be true or false, got {getattr(self, name)!r}"
                raise ConfigurationError(name, msg)
        if self.dialect not in DIALECTS:
            msg = f"must be one of {', '.join(DIALECTS)}; got {self.dialect!r}"
            raise ConfigurationError("dialect", msg)
        object.__setattr__(self, "outages", _check_outages(self.outages))
        _check_int_or_none("seed", self.seed, minimum=-(2**63))
        if not isinstance(self.model, str) or not self.model:
            msg = f"must be a non-empty string, got {self.model!r}"
            raise ConfigurationError("model", msg)

    @property
    def request_rate(self) -> float | None:
        """Requests per second refilled, or None when unlimited."""
        return _per_second(self.rpm, self.rps)

    @property
    def token_rate(self) -> float | None:
        """Tokens per second refilled, or None when unlimited."""
        return _per_second(self.tpm, self.tps)


def _per_second(per_minute: float | None, per_second: float | None) -> float | None:
    if per_minute is not None:
        return per_minute / 60.0
    return per_second


def _check_int_or_none(name: str, value: object, *, minimum: int) -> None:
    if value is None and name in ("max_concurrency", "seed"):
        return
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"must be an integer, got {value!r}"
        raise ConfigurationError(name, msg)
    if value < minimum:
        msg = f"must be >= {minimum}, got {value}"
        raise ConfigurationError(name, msg)


def _check_outages(outages: object) -> tuple[tuple[float, float], ...]:
    if not isinstance(outages, tuple | list):
        msg = f"must be a sequence of (start, duration) pairs, got {outages!r}"
        raise ConfigurationError("outages", msg)
    windows: list[tuple[float, float]] = []
    for window in outages:
        if not isinstance(window, tuple | list) or len(window) != 2:
            msg = f"each window must be a (start, duration) pair, got {window!r}"
            raise ConfigurationError("outages", msg)
        start = check_number("outages", window[0])
        duration = check_number("outages", window[1], inclusive=False)
        assert start is not None
        assert duration is not None
        windows.append((start, duration))
    return tuple(windows)


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "insufficient_quota": (bool,),
    "unauthorized": (bool,),
    "dialect": (str,),
    "model": (str,),
    "outages": (list,),
    "max_concurrency": (int, type(None)),
    "completion_tokens": (int,),
    "seed": (int, type(None)),
}


def apply_changes(config: FaultConfig, changes: Mapping[str, Any]) -> FaultConfig:
    """
    Return *config* with *changes* applied, each checked by name and type.

    Durations may be given as `timedelta`; JSON lists are accepted for ``outages``.

    Raises:
        ConfigurationError: An unknown field, a value of the wrong type or out of range.
    """
    known = {f.name for f in dataclasses.fields(FaultConfig)}
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in known:
            msg = "unknown setting"
            raise ConfigurationError(name, msg)
        expected = _JSON_TYPES.get(name)
        if expected is not None:
            ok = isinstance(value, expected) and not (
                bool not in expected and isinstance(value, bool)
            )
            if name == "outages" and isinstance(value, tuple):
                ok = True
            if not ok:
                msg = f"has the wrong type: {type(value).__name__}"
                raise ConfigurationError(name, msg)
        elif isinstance(value, timedelta):
            value = value.total_seconds()
        elif value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value)
        ):
            msg = f"must be a number, got {type(value).__name__}"
            raise ConfigurationError(name, msg)
        if name == "outages":
            value = tuple(tuple(w) if isinstance(w, list) else w for w in value)
        clean[name] = value
    return dataclasses.replace(config, **clean)
