# SPDX-License-Identifier: MIT
"""
The leaky buckets of a `ProviderLimiter`: `aiolimiter.AsyncLimiter` used for its state.

``_level`` drains at ``_rate_per_sec`` and a bucket admits while ``_level +
amount <= max_rate`` (aiolimiter 1.2-1.3); its own ``acquire`` and waiter heap
are never used. `resize` moves a bucket to a new rate (the adaptive working
rate) keeping what it holds, but for the capacity that no longer exists: a
full bucket that shrinks is full, not over capacity (what it held beyond the
new capacity was mostly refused by the server, which is why the rate
shrank), and a debt above the capacity stays a debt. Growing gives room a
little at a time.
"""

from __future__ import annotations

import math

from aiolimiter import AsyncLimiter

__all__ = ["_EPS", "_bucket", "_fill", "_need", "_utilization", "resize"]

_EPS = 1e-9


def _bucket(
    rate: float | None, period: float, seconds: float, minimum: float
) -> AsyncLimiter | None:
    """A bucket draining *rate* per *period* that holds *seconds* of it (at least *minimum*)."""
    if rate is None:
        return None
    per_second = rate / period
    capacity = max(per_second * seconds, minimum)
    return AsyncLimiter(capacity, capacity / per_second)


def _fill(bucket: AsyncLimiter, now: float) -> float:
    """Drain *bucket* up to *now* (as aiolimiter's ``_leak``) and return its level."""
    level = bucket._level
    if level:
        level -= (now - bucket._last_check) * bucket._rate_per_sec
        if level < 0.0:
            level = 0.0
        bucket._level = level
    bucket._last_check = now
    return level


def _need(bucket: AsyncLimiter | None, now: float, amount: float) -> float:
    """Seconds until *bucket* admits *amount* on top of its level (0 when it fits now)."""
    if bucket is None or not amount:
        return 0.0
    excess = _fill(bucket, now) + min(amount, bucket.max_rate) - bucket.max_rate
    return excess / bucket._rate_per_sec if excess > _EPS else 0.0


def _utilization(bucket: AsyncLimiter | None, now: float) -> float | None:
    if bucket is None:
        return None
    level = max(0.0, bucket._level - (now - bucket._last_check) * bucket._rate_per_sec)
    return min(1.0, level / bucket.max_rate)


def resize(
    bucket: AsyncLimiter | None, now: float, per_second: float, seconds: float, minimum: float
) -> AsyncLimiter | None:
    """
    *bucket* (a new one if None) draining *per_second* and holding *seconds* of it.

    The level is drained to *now* at the old rate and kept, less the capacity
    taken away (never below the new capacity, if it was above it). An
    infinite rate means no bucket (None).
    """
    if not math.isfinite(per_second):
        return None
    capacity = max(per_second * seconds, minimum)
    if bucket is None:
        bucket = AsyncLimiter(capacity, capacity / per_second)
        bucket._last_check = now
        return bucket
    level = _fill(bucket, now)
    lost = bucket.max_rate - capacity
    if lost > 0.0 and level > capacity:
        bucket._level = max(capacity, level - lost)
    bucket.max_rate = capacity
    bucket.time_period = capacity / per_second
    bucket._rate_per_sec = per_second
    return bucket
