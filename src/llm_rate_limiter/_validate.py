# SPDX-License-Identifier: MIT
"""Checks for settings: each raises `ConfigurationError` naming the setting."""

from __future__ import annotations

import math
from datetime import timedelta

from .exceptions import ConfigurationError

__all__ = ["as_seconds", "check_fraction", "check_int", "check_number"]


def as_seconds(setting: str, value: float | timedelta | None) -> float | None:
    """Convert a `timedelta` to float seconds; reject non-numbers."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"must be a number of seconds, got {value!r}"
        raise ConfigurationError(setting, msg)
    return float(value)


def check_number(
    setting: str,
    value: float | timedelta | None,
    *,
    minimum: float = 0.0,
    inclusive: bool = True,
    allow_none: bool = False,
) -> float | None:
    """Return *value* as float seconds if finite and above *minimum*, else raise."""
    number = as_seconds(setting, value)
    if number is None:
        if allow_none:
            return None
        msg = "is required"
        raise ConfigurationError(setting, msg)
    if not math.isfinite(number):
        msg = f"must be finite, got {number!r}"
        raise ConfigurationError(setting, msg)
    if number < minimum or (not inclusive and number == minimum):
        relation = ">=" if inclusive else ">"
        msg = f"must be {relation} {minimum:g}, got {number:g}"
        raise ConfigurationError(setting, msg)
    return number


def check_int(setting: str, value: int, *, minimum: int = 0) -> int:
    """Return *value* if it is an int >= *minimum*, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"must be an integer, got {value!r}"
        raise ConfigurationError(setting, msg)
    if value < minimum:
        msg = f"must be >= {minimum}, got {value}"
        raise ConfigurationError(setting, msg)
    return value


def check_fraction(setting: str, value: float) -> float:
    """Return *value* if it lies in (0, 1], else raise."""
    number = check_number(setting, value, minimum=0.0, inclusive=False)
    assert number is not None
    if number > 1.0:
        msg = f"must be in (0, 1], got {number:g}"
        raise ConfigurationError(setting, msg)
    return number
