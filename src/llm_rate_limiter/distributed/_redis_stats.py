# SPDX-License-Identifier: MIT
"""`RedisLimiterStatistics`: a `LimiterStatistics` that also says whether Redis is answering."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..limiter import LimiterStatistics

__all__ = ["RedisLimiterStatistics"]

_BASE_FIELDS = tuple(f.name for f in dataclasses.fields(LimiterStatistics))


@dataclass(frozen=True, slots=True)
class RedisLimiterStatistics(LimiterStatistics):
    """
    A snapshot of one `RedisRateLimiter` in this process.

    Attributes:
        shared_state_available: Whether the limits are shared through Redis
            now (False: Redis did not answer within ``redis_timeout``, and
            the limiter limits locally or fails closed).
        live_processes: Live limiters of this service (and API key) at the
            last heartbeat, this one included; 0 before the first.
        redis_failure: ``"open"`` or ``"closed"``: what happens while unavailable.

    .. versionadded:: 0.2.0
    """

    shared_state_available: bool = True
    live_processes: int = 0
    redis_failure: str = "open"

    @classmethod
    def extend(
        cls, base: LimiterStatistics, *, available: bool, live: int, failure: str
    ) -> RedisLimiterStatistics:
        """*base* with the shared-state fields."""
        values = {name: getattr(base, name) for name in _BASE_FIELDS}
        return cls(
            **values, shared_state_available=available, live_processes=live, redis_failure=failure
        )
