# SPDX-License-Identifier: MIT
"""
The plumbing of `RedisRateLimiter`: settings, keys, scripts, bounded writes, records.

Everything goes through one `SharedState`, so every Redis operation is
bounded by ``redis_timeout``, and a failure switches the limiter to its
fallback (``_redis_fallback``); the waiting lives in ``_redis_admission``.
Writes that are a best effort (corrections, refunds) are dropped while Redis
is unavailable; slot releases are remembered and sent when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
import uuid
from collections import deque
from typing import Any, Literal

from .._hooks import NULL_HOOK, MetricsHook
from .._validate import check_number
from ..exceptions import ConfigurationError
from ..limiter import Permit, RateLimits
from ..limiter._stats import LimiterRecorder
from ._background import Background
from ._keepalive import Keeper
from ._keys import service_key
from ._local_share import LocalShare
from ._redis_client import RedisClient, redis_address
from ._scripts import ACQUIRE, ADJUST, KEEPALIVE, RELEASE
from ._shared_state import SharedState, Unavailable

__all__ = ["DEFAULT_LEASE", "Op", "RedisLimiterBase", "Waiter", "loop_now"]

#: Seconds a concurrency slot outlives a holder that stopped renewing it.
DEFAULT_LEASE = 10.0
#: Longest wait between two looks for a free concurrency slot (a lost notification's cost).
DEFAULT_POLL = 1.0
#: Longest time any Redis operation may take before Redis counts as unavailable.
DEFAULT_TIMEOUT = 0.25
#: Seconds between two heartbeats (and lease renewals, at most ``lease / 3``).
DEFAULT_HEARTBEAT = 2.0
#: Most slot releases remembered during an outage, to send when Redis is back.
_MAX_ORPHANS = 10_000
_KEY_NAMES = ("req", "tok", "day", "cool", "conc", "slots", "live", "gen")

#: A bucket correction: key name, ``(rate, capacity)``, mode, value (see ``ADJUST``).
Op = tuple[str, tuple[float, float], str, float]


def _spec(rate: float | None, period: float, seconds: float, minimum: float) -> tuple[float, float]:
    """``(rate per second, capacity)`` of a bucket, as the in-process limiter sizes it; 0s: none."""
    if rate is None:
        return 0.0, 0.0
    per_second = rate / period
    return per_second, max(per_second * seconds, minimum)


class Waiter:
    """A call queued behind the head (internal)."""

    __slots__ = ("fut",)

    def __init__(self) -> None:
        self.fut: asyncio.Future[None] | None = None


def loop_now() -> float:
    """The running loop's time (the monotonic clock outside a loop)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLimiterBase:
    """The state of one shared limiter and its way through outages (internal)."""

    def __init__(
        self,
        redis: RedisClient,
        limits: RateLimits,
        *,
        service: str,
        key_prefix: str = "llmrl",
        hook: MetricsHook = NULL_HOOK,
        lease: float = DEFAULT_LEASE,
        poll_interval: float = DEFAULT_POLL,
        redis_failure: Literal["open", "closed"] = "open",
        redis_timeout: float = DEFAULT_TIMEOUT,
        fingerprint: str | None = None,
        heartbeat_interval: float = DEFAULT_HEARTBEAT,
    ) -> None:
        if not service:
            msg = "must be a non-empty string"
            raise ConfigurationError("service", msg)
        if redis_failure not in ("open", "closed"):
            msg = f"must be 'open' or 'closed', got {redis_failure!r}"
            raise ConfigurationError("redis_failure", msg)
        self._lease = check_number("lease", lease, inclusive=False) or 0.0
        self._poll = check_number("poll_interval", poll_interval, inclusive=False) or 0.0
        timeout = check_number("redis_timeout", redis_timeout, inclusive=False) or 0.0
        beat = check_number("heartbeat_interval", heartbeat_interval, inclusive=False) or 0.0
        self.limits = limits
        self.service = service
        self.redis_failure = redis_failure
        self._redis = redis
        self._hook = hook
        self._req = _spec(limits.requests_per_minute, 60.0, limits.burst, 1.0)
        self._tok = _spec(limits.tokens_per_minute, 60.0, limits.burst, 0.0)
        self._day = _spec(limits.tokens_per_day, 86_400.0, 86_400.0, 0.0)
        self._max_conc = limits.max_concurrency or 0
        key = self.keys = {n: service_key(key_prefix, service, n, fingerprint) for n in _KEY_NAMES}
        # Encoded once: packing the command is a good part of an admission's cost.
        names = ("req", "tok", "day", "cool", "conc", "slots", "gen")
        self._acquire_keys = [key[n].encode() for n in names]
        specs = (*self._req, *self._tok, *self._day, self._max_conc, self._lease)
        self._argv: list[Any] = [repr(x).encode() for x in specs]
        self._acquire_script = redis.register_script(ACQUIRE)
        self._adjust_script = redis.register_script(ADJUST)
        self._release_script = redis.register_script(RELEASE)
        self._id = uuid.uuid4().hex[:16]
        self._id_bytes = self._id.encode()
        self._seq = itertools.count()
        self._gen = ""
        self._state = SharedState(
            service,
            timeout=timeout,
            failure=redis_failure,
            hook=hook,
            probe=self._recover,
            on_change=self._on_change,
            reset=self._drop_idle_connections,
            where=lambda: redis_address(redis, key["req"]),
        )
        self._renew_script = redis.register_script(KEEPALIVE)
        self._keeper = Keeper(
            lambda **kwargs: self._renew_script(**kwargs),
            [key["live"], key["conc"], key["gen"]],
            ident=self._id,
            state=self._state,
            lease=self._lease,
            interval=min(beat, self._lease / 3.0),
            release=self._send_release,
        )
        self._share = LocalShare(limits, service)
        self._orphans: set[str] = set()
        self._local_holders: set[str] = set()
        self._queue: deque[Waiter] = deque()
        self._queued_tokens = 0.0
        self._wake: asyncio.Future[None] | None = None
        self._interrupts = 0
        self._background = Background(
            f"RedisRateLimiter({service!r})", lambda: redis_address(redis, key["req"])
        )
        self._stats = LimiterRecorder()
        self._cooldown_until = -math.inf
        self._in_flight = 0
        self._waiting = 0
        self._utilization: tuple[float | None, float | None] = (None, None)
        self._utilization_at = -math.inf

    @property
    def _renewer(self) -> asyncio.Task[None] | None:
        """The heartbeat and lease-renewal task (None before the first admission)."""
        return self._keeper.task

    async def _drop_idle_connections(self) -> None:
        pool = getattr(self._redis, "connection_pool", None)
        if pool is not None:
            await pool.disconnect(inuse_connections=False)

    def _holder(self) -> str:
        return f"{self._id}:{next(self._seq)}" if self._max_conc else ""

    # -- writes -----------------------------------------------------------------------

    async def _adjust_raw(
        self, cooldown: float, ops: list[Op], *, gen: str = "", probing: bool = False
    ) -> str:
        """Run ``ADJUST``; return the generation in force when *gen* was given."""
        keys = [self.keys["cool"], self.keys["gen"]]
        args: list[Any] = [math.ceil(cooldown * 1000.0), gen]
        for name, (rate, capacity), mode, value in ops:
            if rate > 0.0:
                keys.append(self.keys[name])
                args += [rate, capacity, mode, value]
        reply = await self._state.call(
            lambda: self._adjust_script(keys=keys, args=args), probing=probing
        )
        return _text(reply)

    async def _adjust(self, cooldown: float, ops: list[Op]) -> None:
        """A background correction: lost (it was a best effort) when Redis does not answer."""
        with contextlib.suppress(Unavailable):
            await self._adjust_raw(cooldown, ops)

    def _cooldown_ops(self, seconds: float) -> list[Op]:
        """Buckets full at the end of a *seconds* pause (but for one request): no burst after it."""
        req, tok = self._req, self._tok
        return [
            ("req", req, "floor", req[1] - 1.0 + seconds * req[0]),
            ("tok", tok, "floor", tok[1] + seconds * tok[0]),
        ]

    async def _send_release(self, holders: list[str], *, probing: bool = False) -> None:
        """Give *holders*' slots back; remember them for later if Redis does not answer."""
        keys = [self.keys["conc"], self.keys["slots"]]
        args: list[Any] = [self._max_conc, self._lease, *holders]
        try:
            await self._state.call(
                lambda: self._release_script(keys=keys, args=args), probing=probing
            )
        except Unavailable:
            if len(self._orphans) < _MAX_ORPHANS:
                self._orphans.update(holders)
            if probing:
                raise

    async def _give_back(self, tokens: float, holder: str) -> None:
        """Undo an admission (a reservation given up): its request, tokens and slot."""
        ops: list[Op] = [("req", self._req, "add", -1.0)]
        if tokens:
            ops += [("tok", self._tok, "add", -tokens), ("day", self._day, "add", -tokens)]
        await self._adjust(0.0, ops)
        if holder:
            await self._send_release([holder])

    def _refund_if_admitted(self, task: asyncio.Future[Any], tokens: float, holder: str) -> None:
        if task.cancelled() or task.exception() is not None or int(task.result()[0]) != 0:
            return
        self._background.spawn(self._give_back(tokens, holder))

    async def _release(self, holder: str, local: Permit | None) -> None:
        self._in_flight -= 1
        self._keeper.touch(loop_now())
        if local is not None:
            await local.__aexit__(None, None, None)
        if not holder:
            return
        self._keeper.holders.discard(holder)
        if holder in self._local_holders:
            self._local_holders.discard(holder)
            if not self._state.available:
                return  # never reached Redis
        if not self._state.available:
            if len(self._orphans) < _MAX_ORPHANS:
                self._orphans.add(holder)
            return
        task = asyncio.ensure_future(self._send_release([holder]))
        self._background.track(task)
        await asyncio.shield(task)

    # -- outages (see _redis_fallback) -------------------------------------------------

    def _on_change(self, available: bool) -> None:
        """The shared state became (un)available."""
        raise NotImplementedError

    async def _recover(self) -> None:
        """Probe Redis and re-seed it; raise `Unavailable` when it does not answer."""
        raise NotImplementedError

    # -- records ----------------------------------------------------------------------

    def _on_admitted(
        self, tokens: float, holder: str, now: float, waited: float, *, local: bool
    ) -> None:
        self._in_flight += 1
        keeper = self._keeper
        if holder:
            keeper.holders.add(holder)
        keeper.touch(now)
        self._stats.record_admission(now, tokens, waited)
        if local:
            self._share.admitted(tokens)
        self._hook.limiter_waited(self.service, waited, tokens)

    def _set_hook(self, hook: MetricsHook) -> None:
        """Send this limiter's events to *hook* from now on (instrumentation swaps it)."""
        self._hook = hook

    def _deny(self, tokens: float, reason: str) -> None:
        self._stats.denial(loop_now(), tokens, reason)
        self._hook.limiter_denied(self.service, reason)

    async def flush(self) -> None:
        """
        Wait until the shared corrections started so far are written (or given up).

        .. versionadded:: 0.1.0
        """
        await self._background.flush()

    async def aclose(self) -> None:
        """
        Write pending corrections, stop the heartbeat, lease renewal and probing.

        The Redis client stays open.

        .. versionadded:: 0.1.0
        """
        await self.flush()
        await self._keeper.aclose()
        await self._state.aclose()


def _resolve(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)
