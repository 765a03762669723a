# SPDX-License-Identifier: MIT
"""
The local stand-in of a shared limiter while Redis is unavailable, and the re-seeding after it.

While Redis does not answer (``redis_failure="open"``), each process limits
itself to its *share* of the configured totals: the totals divided by the
number of live limiters it last counted in Redis (each refreshes a
heartbeat; see ``_keepalive``), or the whole when it never counted any. The
share is enforced by an in-process `ProviderLimiter`, built when the outage
starts and started as full as the shared buckets were at the last look, so
the switch itself admits no burst.

When Redis answers again, the buckets are re-seeded before any call uses
them (``ADJUST``, mode ``fill``):

- the request and token buckets are raised to **full** (never lowered):
  they never saw what the processes admitted locally, and the first process
  back cannot know what the others admitted, so it assumes the worst. The
  first bucket span after the outage then admits at the rate, never a burst
  on top of what was just sent; the price is at most one burst of capacity
  (``RateLimits.burst`` seconds of the rate) when the processes were idle.
  The same holds when Redis lost its data (a restart without persistence:
  the generation key is gone), whether the processes saw an outage or not;
- the daily bucket gets the tokens this process admitted locally during the
  outage (each process adds its own). A restarted Redis keeps only those
  and what was admitted since; persist Redis if ``tokens_per_day`` must
  survive a restart exactly.

Every process probes on the same wall-clock second (see ``_shared_state``),
so they come back within a round trip of each other: there is no stretch in
which some admit through Redis while others still admit their local share.
"""

from __future__ import annotations

import dataclasses

from ..limiter import ProviderLimiter, RateLimits

__all__ = ["LocalShare", "share_limits"]


def share_limits(limits: RateLimits, live: int) -> RateLimits:
    """
    One limiter's share of *limits* among *live* limiters (the whole for 0 or 1).

    Rates are divided evenly; ``max_concurrency`` is divided and rounded
    down, but never below 1 (with more live limiters than slots the shares
    add up to more than the total).
    """
    if live <= 1:
        return limits

    def part(rate: float | None) -> float | None:
        return None if rate is None else rate / live

    conc = limits.max_concurrency
    return dataclasses.replace(
        limits,
        requests_per_minute=part(limits.requests_per_minute),
        tokens_per_minute=part(limits.tokens_per_minute),
        tokens_per_day=part(limits.tokens_per_day),
        max_concurrency=None if conc is None else max(1, conc // live),
    )


class LocalShare:
    """The stand-in limiter of one outage, and the tokens it admitted (internal)."""

    __slots__ = ("_day_local", "_limits", "_service", "limiter", "live")

    def __init__(self, limits: RateLimits, service: str) -> None:
        self._limits = limits
        self._service = service
        self._day_local = 0.0
        self.limiter: ProviderLimiter | None = None
        self.live = 1

    def admitted(self, tokens: float) -> None:
        """Count tokens admitted (or reconciled) locally, for the daily bucket."""
        self._day_local = max(0.0, self._day_local + tokens)

    def start(
        self,
        live: int,
        utilization: tuple[float | None, float | None],
        cooldown: float,
    ) -> ProviderLimiter:
        """Build this outage's stand-in: the share of *live* limiters, as full as last seen."""
        self.live = max(1, live)
        share = share_limits(self._limits, self.live)
        local = ProviderLimiter(share, service=self._service)
        headers: dict[str, str] = {}
        for kind, rate, used, least in (
            ("requests", share.requests_per_minute, utilization[0], 1.0),
            ("tokens", share.tokens_per_minute, utilization[1], 0.0),
        ):
            if rate is not None and used:
                capacity = max(rate / 60.0 * share.burst, least)
                headers[f"x-ratelimit-remaining-{kind}"] = repr(capacity * (1.0 - used))
        if headers:
            local.observe_headers(headers)
        if cooldown > 0.0:
            local.cooldown(cooldown)
        self.limiter = local
        return local

    def stop(self) -> ProviderLimiter | None:
        """End the outage: forget the stand-in (returned, to send its waiters away)."""
        local, self.limiter = self.limiter, None
        return local

    def seed(self) -> float:
        """The tokens admitted locally since the last re-seeding (for the daily bucket)."""
        return self._day_local

    def seeded(self) -> None:
        """The local daily tokens are in Redis now: count from 0 again."""
        self._day_local = 0.0
