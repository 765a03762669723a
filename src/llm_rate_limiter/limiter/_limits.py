# SPDX-License-Identifier: MIT
"""
`RateLimits`: a provider's request, token and concurrency limits.

How the limits become buckets (see `ProviderLimiter`):

- Each per-minute rate becomes a leaky bucket that drains at ``rate / 60`` per
  second and holds ``burst`` seconds' worth of it. Providers enforce their
  per-minute limits over short slices (a limit of 600 RPM is typically a
  bucket of 10 refilled at 10 per second), so a burst must stay within one
  second of the limit. The default ``burst=0.95`` stays a twentieth of a
  second below it: the server's bucket starts refilling only when the first request
  *arrives*, and requests admitted ``1 / rate`` apart can arrive closer
  together, so a bucket exactly as large as the server's draws a few 429s
  at start-up and under jitter (measured against the fault server: 4 of 150
  requests at 40 per second with ``burst=1.0``, none with 0.9; at 50 per
  second 0.95 drew no 429 in three runs and used 0.986 of the capacity,
  against 0.982 for 0.9). The request
  bucket holds at least one request.
- The token bucket may be smaller than one request. A request that costs more
  than the bucket holds, but no more than the per-minute (and per-day) limit,
  is still admitted: it waits until the bucket is empty and the excess is
  carried as debt, paid before the next admission. Over any window the rate
  is kept; only a request larger than ``tokens_per_minute`` (or
  ``tokens_per_day``) can never be served and fails with
  `RequestTooLargeError`.
- ``tokens_per_day`` is a bucket that holds the whole day's quota and drains
  at ``tokens_per_day / 86400`` per second.
- With ``adaptive=True`` (the default) the request and token rates are a
  ceiling: the buckets drain at a *working rate* at or below it, which adopts
  the limits the provider announces and backs off on 429s (see ``_adaptive``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .._validate import check_int, check_number
from ..exceptions import ConfigurationError

__all__ = ["RateLimits"]

_ENV_PREFIX = "LLMRL_"
_ENV_FIELDS = {
    "RPM": "requests_per_minute",
    "TPM": "tokens_per_minute",
    "TPD": "tokens_per_day",
    "MAX_CONCURRENCY": "max_concurrency",
    "MAX_WAIT": "max_wait",
    "BURST": "burst",
    "COMPLETION_TOKENS": "completion_tokens",
    "ADAPTIVE": "adaptive",
}
_INT_FIELDS = frozenset({"max_concurrency", "completion_tokens"})
_BOOL_FIELDS = frozenset({"adaptive"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _check_rate(setting: str, value: float | None) -> None:
    check_number(setting, value, minimum=0.0, inclusive=False, allow_none=True)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """
    A provider's limits; every field is optional and None means "no limit".

    Attributes:
        requests_per_minute: Requests admitted per minute.
        tokens_per_minute: Tokens (prompt + completion) admitted per minute.
        tokens_per_day: Tokens admitted per day.
        max_concurrency: Requests in flight at once.
        burst: Seconds' worth of each per-minute rate a bucket holds (default
            0.95: a little under the one second providers allow, a margin for
            network jitter). The request bucket holds at least one request;
            larger token requests are admitted on an empty bucket with the
            excess carried as debt.
        max_wait: Longest predicted wait a call accepts; a call predicted to
            wait longer fails at once with `RateLimitTimeoutError`. None waits
            as long as needed.
        completion_tokens: Completion allowance added to a request's estimate
            when it sets no ``max_tokens``.
        adaptive: Let the limits learn (default True). The configured rates
            become a ceiling that is never exceeded; below it each kind
            (requests, tokens) has a working rate that takes the provider's
            announced ``x-ratelimit-limit-*`` at once when lower, is cut to
            0.7x by a 429 local limiting did not prevent and climbs back
            along a cubic curve (about 3 s to the rate before the cut), never
            above the announced limit. With no rate and no concurrency limit
            configured, requests start at 1 per second and double each second
            they are in demand (slow start) until the provider announces a
            limit or answers 429. False keeps the configured rates fixed.

    Raises:
        ConfigurationError: A rate or ``burst`` not finite and > 0,
            ``max_concurrency`` < 1, ``max_wait`` < 0, ``completion_tokens`` < 0
            or ``adaptive`` not a bool.

    .. versionadded:: 0.1.0
    .. versionadded:: 0.2.0
       The ``adaptive`` setting (``LLMRL_ADAPTIVE``).
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    tokens_per_day: float | None = None
    max_concurrency: int | None = None
    burst: float = 0.95
    max_wait: float | None = None
    completion_tokens: int = 256
    adaptive: bool = True

    def __post_init__(self) -> None:
        _check_rate("requests_per_minute", self.requests_per_minute)
        _check_rate("tokens_per_minute", self.tokens_per_minute)
        _check_rate("tokens_per_day", self.tokens_per_day)
        if self.max_concurrency is not None:
            check_int("max_concurrency", self.max_concurrency, minimum=1)
        check_number("burst", self.burst, minimum=0.0, inclusive=False)
        max_wait = check_number("max_wait", self.max_wait, allow_none=True)
        if max_wait is not None:
            object.__setattr__(self, "max_wait", max_wait)
        check_int("completion_tokens", self.completion_tokens, minimum=0)
        if not isinstance(self.adaptive, bool):
            msg = f"must be True or False, got {self.adaptive!r}"
            raise ConfigurationError("adaptive", msg)

    @property
    def max_request_tokens(self) -> float:
        """
        The largest token cost a request may have (``inf`` without token limits).

        .. versionadded:: 0.1.0
        """
        return min(self.tokens_per_minute or math.inf, self.tokens_per_day or math.inf)

    @classmethod
    def from_env(
        cls, service: str | None = None, *, environ: Mapping[str, str] | None = None
    ) -> RateLimits:
        """
        Read limits from ``LLMRL_*`` environment variables.

        ``LLMRL_RPM``, ``LLMRL_TPM``, ``LLMRL_TPD``, ``LLMRL_MAX_CONCURRENCY``,
        ``LLMRL_MAX_WAIT``, ``LLMRL_BURST``, ``LLMRL_COMPLETION_TOKENS`` and
        ``LLMRL_ADAPTIVE`` (``1``/``true``/``yes``/``on`` or
        ``0``/``false``/``no``/``off``) set the defaults; ``LLMRL_<SERVICE>_RPM``
        and friends (service upper-cased, ``-`` as ``_``) override them for one
        service.

        Args:
            service: The provider whose overrides to read.
            environ: The environment (default `os.environ`).

        Returns:
            The limits; unset variables keep the field defaults.

        Raises:
            ConfigurationError: A variable is not a number (not a boolean for
                ``LLMRL_ADAPTIVE``) or names a bad setting.

        .. versionadded:: 0.1.0
        """
        env = os.environ if environ is None else environ
        prefixes = [_ENV_PREFIX]
        if service:
            prefixes.append(f"{_ENV_PREFIX}{service.upper().replace('-', '_')}_")
        values: dict[str, float | int | bool] = {}
        for prefix in prefixes:
            for suffix, field in _ENV_FIELDS.items():
                name = prefix + suffix
                raw = env.get(name)
                if raw is None or not raw.strip():
                    continue
                values[field] = _parse_env(name, field, raw)
        return cls(**values)  # type: ignore[arg-type]


def _parse_env(name: str, field: str, raw: str) -> float | int | bool:
    if field in _BOOL_FIELDS:
        word = raw.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        msg = f"must be one of 1, true, yes, on, 0, false, no, off; got {raw!r}"
        raise ConfigurationError(name, msg)
    try:
        if field in _INT_FIELDS:
            return int(raw.strip())
        return float(raw.strip())
    except ValueError:
        msg = f"must be a number, got {raw!r}"
        raise ConfigurationError(name, msg) from None
