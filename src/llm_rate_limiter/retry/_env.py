# SPDX-License-Identifier: MIT
"""
Read retry settings from ``LLMRL_*`` environment variables.

``LLMRL_<SERVICE>_<NAME>`` wins over ``LLMRL_<NAME>``; a malformed value, or
one the policy rejects, raises `ConfigurationError` naming the variable.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..exceptions import ConfigurationError
from ._budget import RetryBudget

__all__ = ["env_prefixes", "policy_from_env"]

P = TypeVar("P")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_NONE = frozenset({"", "none", "null", "off"})


def _int(var: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        msg = f"must be an integer, got {raw!r}"
        raise ConfigurationError(var, msg) from None


def _float(var: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        msg = f"must be a finite number of seconds, got {raw!r}"
        raise ConfigurationError(var, msg)
    return value


def _optional_float(var: str, raw: str) -> float | None:
    if raw.strip().lower() in _NONE:
        return None
    return _float(var, raw)


def _bool(var: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    msg = f"must be a boolean (true/false, 1/0, yes/no, on/off), got {raw!r}"
    raise ConfigurationError(var, msg)


def _text(var: str, raw: str) -> str:
    return raw


# policy field -> (variable suffix, parser)
_FIELDS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "max_retries": ("MAX_RETRIES", _int),
    "base_delay": ("BASE_DELAY", _float),
    "max_delay": ("MAX_DELAY", _float),
    "jitter": ("JITTER", _bool),
    "retry_on": ("RETRY_ON", _text),
    "attempt_timeout": ("ATTEMPT_TIMEOUT", _optional_float),
    "deadline": ("DEADLINE", _optional_float),
    "respect_retry_after": ("RESPECT_RETRY_AFTER", _bool),
    "max_retry_after": ("MAX_RETRY_AFTER", _float),
    "wait_for_breaker": ("WAIT_FOR_BREAKER", _bool),
}
_BUDGET_FIELDS: dict[str, str] = {
    "ratio": "RETRY_BUDGET_RATIO",
    "min_retries_per_second": "RETRY_BUDGET_MIN_PER_SECOND",
    "window": "RETRY_BUDGET_WINDOW",
}


def env_prefixes(service: str | None) -> tuple[str, ...]:
    """
    The variable prefixes read for *service*, most specific first.

    ``"open-ai"`` reads ``LLMRL_OPEN_AI_`` then ``LLMRL_``.
    """
    if service is None:
        return ("LLMRL_",)
    name = re.sub(r"[^A-Z0-9]+", "_", service.strip().upper()).strip("_")
    return (f"LLMRL_{name}_", "LLMRL_") if name else ("LLMRL_",)


def _lookup(environ: Mapping[str, str], prefixes: tuple[str, ...], suffix: str) -> str | None:
    for prefix in prefixes:
        var = prefix + suffix
        if var in environ:
            return var
    return None


def policy_from_env(
    cls: Callable[..., P],
    base: dict[str, Any],
    service: str | None,
    environ: Mapping[str, str] | None,
) -> P:
    """
    Build ``cls(**base)`` with the environment's overrides for *service* applied.

    Raises:
        ConfigurationError: Naming the variable whose value is malformed or rejected.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    prefixes = env_prefixes(service)
    kwargs = dict(base)
    used: dict[str, str] = {}
    for name, (suffix, parse) in _FIELDS.items():
        var = _lookup(env, prefixes, suffix)
        if var is not None:
            kwargs[name] = parse(var, env[var])
            used[name] = var
    budget: dict[str, float] = {}
    for name, suffix in _BUDGET_FIELDS.items():
        var = _lookup(env, prefixes, suffix)
        if var is not None:
            budget[name] = _float(var, env[var])
            used[f"budget.{name}"] = var
    try:
        if budget:
            kwargs["budget"] = RetryBudget(**budget)
        return cls(**kwargs)
    except ConfigurationError as exc:
        # max_delay < base_delay is reported on max_delay, whichever variable set it.
        var = used.get(exc.setting)
        if var is None and exc.setting == "max_delay":
            var = used.get("base_delay")
        if var is None:  # pragma: no cover -- defensive: the defaults are valid
            raise
        detail = str(exc).removeprefix(f"{exc.setting}: ")
        msg = f"{detail} (setting {exc.setting})"
        raise ConfigurationError(var, msg) from exc
