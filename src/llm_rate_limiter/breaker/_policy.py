# SPDX-License-Identifier: MIT
"""
`BreakerPolicy`: the settings of one service's circuit breaker, checked at construction.

The settings follow pybreaker (``fail_max``, ``reset_timeout``,
``success_threshold``) and add what resilience4j has and pybreaker lacks: a
limit on concurrent half-open trial calls, and failure-rate and slow-call-rate
trips over a count- or time-based window with a minimum number of calls.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .._errors import RetryErrorType
from .._validate import check_fraction, check_int, check_number
from ..exceptions import ConfigurationError

__all__ = ["DEFAULT_EXCLUDED", "BreakerPolicy"]

#: Errors that never count as breaker failures by default: they are the
#: caller's or the limiter's business, not signs of an unhealthy provider.
DEFAULT_EXCLUDED: frozenset[RetryErrorType] = frozenset(
    {RetryErrorType.RATE_LIMIT, RetryErrorType.AUTHENTICATION, RetryErrorType.PERMANENT}
)

_NONE_WORDS = frozenset({"", "none", "null", "off"})


def _error_kinds(value: object) -> frozenset[RetryErrorType]:
    """Normalise ``excluded``: an iterable of kinds or their names/values, or one string."""
    items: Iterable[object]
    if isinstance(value, str | RetryErrorType):
        items = [value]
    elif isinstance(value, Iterable):
        items = value
    else:
        msg = f"must be an iterable of RetryErrorType, got {value!r}"
        raise ConfigurationError("excluded", msg)
    kinds: set[RetryErrorType] = set()
    for item in items:
        if isinstance(item, RetryErrorType):
            kinds.add(item)
            continue
        if isinstance(item, str):
            for part in (p.strip() for p in item.split(",")):
                if not part:
                    continue
                try:
                    kinds.add(RetryErrorType(part.lower()))
                except ValueError:
                    known = ", ".join(sorted(k.value for k in RetryErrorType))
                    msg = f"unknown error type {part!r} (known: {known})"
                    raise ConfigurationError("excluded", msg) from None
            continue
        msg = f"must hold RetryErrorType values, got {item!r}"
        raise ConfigurationError("excluded", msg)
    return frozenset(kinds)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """
    How one service's circuit breaker decides to open, probe and close.

    Durations are float seconds (a `datetime.timedelta` is converted).

    Attributes:
        fail_max: Consecutive counted failures that open the breaker.
        reset_timeout: Seconds the breaker stays open before it allows trial calls.
        success_threshold: Successful trial calls needed to close it from half-open.
        half_open_max_calls: Trial calls allowed at once in half-open; other
            callers get `CircuitOpenError` at once.
        failure_rate_threshold: In (0, 1]; open when the failure rate over the
            window reaches it, once the window holds ``minimum_calls`` calls.
            None disables the failure-rate trip.
        slow_call_duration: A call that takes longer than this is slow.
        slow_call_rate_threshold: In (0, 1]; open when the slow-call rate over
            the window reaches it (``minimum_calls`` applies). Needs
            ``slow_call_duration``.
        window_size: The window holds the last *window_size* calls ...
        window_seconds: ... or, when set, the calls of the last *window_seconds*.
        minimum_calls: Calls the window must hold before a rate can trip it.
        excluded: Error kinds that never count as failures. Cancellation never
            counts either. Names or values (``"rate_limit"``) are accepted.

    Raises:
        ConfigurationError: A setting is impossible; the error names it.

    .. versionadded:: 0.1.0
    """

    fail_max: int = 5
    reset_timeout: float = 30.0
    success_threshold: int = 1
    half_open_max_calls: int = 1
    failure_rate_threshold: float | None = None
    slow_call_duration: float | None = None
    slow_call_rate_threshold: float | None = None
    window_size: int = 100
    window_seconds: float | None = None
    minimum_calls: int = 10
    excluded: frozenset[RetryErrorType] = DEFAULT_EXCLUDED

    def __post_init__(self) -> None:
        """Check and normalise every setting."""
        put = object.__setattr__
        check_int("fail_max", self.fail_max, minimum=1)
        put(self, "reset_timeout", check_number("reset_timeout", self.reset_timeout))
        check_int("success_threshold", self.success_threshold, minimum=1)
        check_int("half_open_max_calls", self.half_open_max_calls, minimum=1)
        check_int("window_size", self.window_size, minimum=1)
        check_int("minimum_calls", self.minimum_calls, minimum=1)
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            value = getattr(self, name)
            if value is not None:
                put(self, name, check_fraction(name, value))
        put(
            self,
            "slow_call_duration",
            check_number(
                "slow_call_duration", self.slow_call_duration, inclusive=False, allow_none=True
            ),
        )
        put(
            self,
            "window_seconds",
            check_number("window_seconds", self.window_seconds, inclusive=False, allow_none=True),
        )
        if self.slow_call_rate_threshold is not None and self.slow_call_duration is None:
            msg = "needs slow_call_duration to say which calls are slow"
            raise ConfigurationError("slow_call_rate_threshold", msg)
        if self.window_seconds is None and self.minimum_calls > self.window_size:
            msg = (
                f"is {self.minimum_calls} but the window holds only window_size="
                f"{self.window_size} calls, so no rate could ever trip the breaker"
            )
            raise ConfigurationError("minimum_calls", msg)
        put(self, "excluded", _error_kinds(self.excluded))

    @classmethod
    def from_env(
        cls, service: str | None = None, *, environ: Mapping[str, str] | None = None
    ) -> BreakerPolicy:
        """
        Build a policy from ``LLMRL_BREAKER_*`` variables, overridden per service.

        Each field has a variable named after it in upper case:
        ``LLMRL_BREAKER_FAIL_MAX``, ``LLMRL_BREAKER_RESET_TIMEOUT``, ...,
        ``LLMRL_BREAKER_EXCLUDED`` (comma-separated kinds, empty for none).
        ``LLMRL_<SERVICE>_BREAKER_<FIELD>`` wins over the general one
        (``<SERVICE>`` upper-cased, other characters than letters and digits
        as ``_``). ``none`` (or an empty value) unsets an optional setting.
        Unset variables keep the defaults.

        Args:
            service: The service whose specific variables to read, if any.
            environ: The variables to read; `os.environ` by default.

        Returns:
            The policy.

        Raises:
            ConfigurationError: A value is not a number, or the policy is
                impossible; the error names the variable or setting.

        .. versionadded:: 0.1.0
        """
        env = os.environ if environ is None else environ
        prefixes = ["LLMRL_BREAKER_"]
        if service:
            tag = re.sub(r"[^A-Za-z0-9]", "_", service).upper()
            prefixes.insert(0, f"LLMRL_{tag}_BREAKER_")
        kwargs: dict[str, Any] = {}
        for field in fields(cls):
            for prefix in prefixes:
                var = prefix + field.name.upper()
                raw = env.get(var)
                if raw is not None:
                    kwargs[field.name] = _parse(var, field.name, raw)
                    break
        return cls(**kwargs)


_INT_FIELDS = frozenset(
    {"fail_max", "success_threshold", "half_open_max_calls", "window_size", "minimum_calls"}
)
_OPTIONAL_FIELDS = frozenset(
    {
        "failure_rate_threshold",
        "slow_call_duration",
        "slow_call_rate_threshold",
        "window_seconds",
    }
)


def _parse(var: str, name: str, raw: str) -> object:
    """Convert the text of variable *var* for field *name*."""
    text = raw.strip()
    if name == "excluded":
        return text
    if name in _OPTIONAL_FIELDS and text.lower() in _NONE_WORDS:
        return None
    convert: Callable[[str], object] = int if name in _INT_FIELDS else float
    try:
        return convert(text)
    except ValueError:
        kind = "an integer" if convert is int else "a number"
        msg = f"must be {kind}, got {raw!r}"
        raise ConfigurationError(var, msg) from None
