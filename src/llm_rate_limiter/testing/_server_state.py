# SPDX-License-Identifier: MIT
"""The fault server's state: per-key token buckets, outages, seeded fault draws."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from ._server_config import FAULT_RATE_FIELDS, FaultConfig
from ._server_dialects import Level, limit_headers, unlimited
from ._server_stats import StatsRecorder

__all__ = ["Admission", "ServerState", "TokenBucket"]

_LIMIT_FIELDS = ("rpm", "rps", "request_burst", "tpm", "tps", "token_burst", "max_concurrency")


class TokenBucket:
    """
    A bucket of *capacity* refilled at *rate* per second, read at explicit times.

    A cost above the capacity is admitted when the bucket is full, leaving a
    debt, so a large request can never be refused forever. *per_second* says
    the limit was set per second (the IETF dialect announces it so).
    """

    __slots__ = ("capacity", "level", "per_second", "rate", "stamp")

    def __init__(self, rate: float, capacity: float, now: float, *, per_second: bool) -> None:
        self.rate = rate
        self.capacity = capacity
        self.per_second = per_second
        self.level = capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        """Add what flowed in since the last reading."""
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_for(self, cost: float) -> float:
        """Seconds until *cost* fits (0 when it fits now); call `refill` first."""
        need = min(cost, self.capacity)
        if self.level >= need:
            return 0.0
        return (need - self.level) / self.rate

    def reading(self) -> Level:
        """The bucket as the rate-limit headers describe it now; call `refill` first."""
        reset = (self.capacity - self.level) / self.rate if self.level < self.capacity else 0.0
        return Level(self.rate, max(0, math.floor(self.level)), reset, self.per_second)


@dataclass(slots=True)
class _KeyState:
    requests: TokenBucket | None
    tokens: TokenBucket | None
    active: int = 0


@dataclass(frozen=True, slots=True)
class Admission:
    """The limits' verdict on one request: refused with *kind* after *wait* s, or admitted."""

    refused: str | None
    wait: float
    headers: list[tuple[bytes, bytes]]


class ServerState:
    """Everything the fault server remembers; one per server, used from one event loop."""

    def __init__(self, config: FaultConfig, now: Callable[[], float]) -> None:
        self.now = now
        self.config = config
        self.stats = StatsRecorder()
        self.started = now()
        self.rng = random.Random(config.seed)
        self._keys: dict[str, _KeyState] = {}
        self._outage_until = -math.inf

    # -- configuration -----------------------------------------------------------------

    def set_config(self, config: FaultConfig) -> None:
        """Switch to *config*; limits restart when they change, the seed reseeds."""
        old = self.config
        self.config = config
        if any(getattr(old, f) != getattr(config, f) for f in _LIMIT_FIELDS):
            self._keys = {k: self._new_key(v.active) for k, v in self._keys.items()}
        if old.seed != config.seed:
            self.rng.seed(config.seed)

    def reset(self) -> None:
        """Zero the counters, refill every bucket, end outages and reseed."""
        self.stats.changed.set()  # wake waiters so they look at the new counters
        self.stats = StatsRecorder()
        self.started = self.now()
        self._keys = {k: self._new_key(v.active) for k, v in self._keys.items()}
        self._outage_until = -math.inf
        self.rng.seed(self.config.seed)

    def second(self) -> int:
        """Whole seconds since start (the timeline's ``t``)."""
        return max(0, int(self.now() - self.started))

    # -- outages -----------------------------------------------------------------------

    def outage(self, seconds: float) -> None:
        """Answer every request with 503 for the next *seconds*."""
        self._outage_until = max(self._outage_until, self.now() + seconds)

    def in_outage(self) -> bool:
        """Whether an outage (triggered or scheduled) is on now."""
        now = self.now()
        if now < self._outage_until:
            return True
        offset = now - self.started
        return any(start <= offset < start + length for start, length in self.config.outages)

    # -- limits ------------------------------------------------------------------------

    def _new_key(self, active: int = 0) -> _KeyState:
        c, now = self.config, self.now()
        requests = tokens = None
        if (rate := c.request_rate) is not None:
            capacity = c.request_burst or max(1.0, rate)
            requests = TokenBucket(rate, capacity, now, per_second=c.rps is not None)
        if (rate := c.token_rate) is not None:
            capacity = c.token_burst or max(1.0, rate)
            tokens = TokenBucket(rate, capacity, now, per_second=c.tps is not None)
        return _KeyState(requests, tokens, active)

    def _key(self, api_key: str) -> _KeyState:
        state = self._keys.get(api_key)
        if state is None:
            state = self._keys[api_key] = self._new_key()
        return state

    def headers(self, api_key: str) -> list[tuple[bytes, bytes]]:
        """
        The current rate-limit headers of *api_key* in the configured dialect, consuming nothing.

        Both dimensions are announced, limited or not (see `unlimited`).
        """
        state = self._key(api_key)
        now = self.now()
        levels = []
        for bucket, kind in ((state.requests, "requests"), (state.tokens, "tokens")):
            if bucket is None:
                levels.append(unlimited(kind))
            else:
                bucket.refill(now)
                levels.append(bucket.reading())
        return limit_headers(self.config.dialect, *levels)

    def admit(self, api_key: str, tokens: int) -> Admission:
        """Charge one request of *tokens* to *api_key*, or refuse it consuming nothing."""
        state = self._key(api_key)
        now = self.now()
        refused, wait = None, 0.0
        if self.config.max_concurrency is not None and state.active >= self.config.max_concurrency:
            refused, wait = "concurrency", 1.0
        for bucket, kind, cost in (
            (state.requests, "requests", 1),
            (state.tokens, "tokens", tokens),
        ):
            if bucket is None:
                continue
            bucket.refill(now)
            need = bucket.wait_for(cost)
            if refused is None and need > 0.0:
                refused, wait = kind, need
        if refused is None:
            if state.requests is not None:
                state.requests.level -= 1
            if state.tokens is not None:
                state.tokens.level -= tokens
            state.active += 1
        return Admission(refused, wait, self.headers(api_key))

    def release(self, api_key: str) -> None:
        """End an admitted request of *api_key* (frees its concurrency slot)."""
        state = self._keys.get(api_key)
        if state is not None and state.active > 0:
            state.active -= 1

    # -- faults ------------------------------------------------------------------------

    def draw_fault(self) -> str | None:
        """
        Pick this request's fault with exactly one draw, plus one for latency jitter.

        Returns:
            A field of `FAULT_RATE_FIELDS` without ``_rate``, or None.
        """
        u = self.rng.random()
        c = self.config
        edge = 0.0
        for name in FAULT_RATE_FIELDS:
            edge += getattr(c, name)
            if u < edge:
                return name.removesuffix("_rate")
        return None

    def latency(self) -> float:
        """This request's delay: the fixed latency plus seeded jitter."""
        return self.config.latency + self.rng.random() * self.config.latency_jitter
