# SPDX-License-Identifier: MIT
"""
The admission engine of `RedisRateLimiter`: the shared script, waiting, leases.

Each admission is one atomic Lua script (``_scripts.ACQUIRE``) that checks the
shared cooldown, the request, token and daily buckets and the concurrency
leases, and either charges them all or returns how long to wait; the caller
sleeps that long (plus a little jitter, so processes do not come back in
step) and asks again. Nothing is charged before a request is admitted, and a
script that was running when its caller got cancelled is undone, so a waiter
that gives up leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from .._hooks import NULL_HOOK, MetricsHook
from .._validate import check_number
from ..exceptions import ConfigurationError, RateLimitTimeoutError
from ..limiter import RateLimits, WaitInterrupted
from ..limiter._stats import LimiterRecorder
from ._background import Background, logger
from ._keys import service_key
from ._scripts import ACQUIRE, ADJUST, RENEW

__all__ = ["RedisLimiterCore", "loop_now"]

_EPS = 1e-9
_ADMITTED, _CONCURRENCY = 0, 2

#: A bucket correction: key name, ``(rate, capacity)``, ``"add"`` or ``"floor"``, value.
Op = tuple[str, tuple[float, float], str, float]


def _spec(rate: float | None, period: float, seconds: float, minimum: float) -> tuple[float, float]:
    """``(rate per second, capacity)`` of a bucket, as the in-process limiter sizes it; 0s: none."""
    if rate is None:
        return 0.0, 0.0
    per_second = rate / period
    return per_second, max(per_second * seconds, minimum)


def loop_now() -> float:
    """The running loop's time (the monotonic clock outside a loop)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class RedisLimiterCore:
    """The state and the waiting of one shared limiter (internal; see `RedisRateLimiter`)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        limits: RateLimits,
        *,
        service: str,
        key_prefix: str = "llmrl",
        hook: MetricsHook = NULL_HOOK,
        lease: float = 60.0,
        poll_interval: float = 0.05,
    ) -> None:
        if not service:
            msg = "must be a non-empty string"
            raise ConfigurationError("service", msg)
        self.limits = limits
        self.service = service
        self._redis = redis
        self._hook = hook
        self._lease = check_number("lease", lease, inclusive=False) or 0.0
        self._poll = check_number("poll_interval", poll_interval, inclusive=False) or 0.0
        self._req = _spec(limits.requests_per_minute, 60.0, limits.burst, 1.0)
        self._tok = _spec(limits.tokens_per_minute, 60.0, limits.burst, 0.0)
        self._day = _spec(limits.tokens_per_day, 86_400.0, 86_400.0, 0.0)
        self._max_conc = limits.max_concurrency or 0
        key = self.keys = {
            name: service_key(key_prefix, service, name)
            for name in ("req", "tok", "day", "cool", "conc")
        }
        self._acquire_keys = [key["req"], key["tok"], key["day"], key["cool"], key["conc"]]
        self._argv = [*self._req, *self._tok, *self._day, self._max_conc, self._lease]
        self._acquire_script = redis.register_script(ACQUIRE)
        self._adjust_script = redis.register_script(ADJUST)
        self._renew_script = redis.register_script(RENEW)
        self._id = uuid.uuid4().hex[:16]
        self._seq = itertools.count()
        self._holders: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._freed: asyncio.Event | None = None
        self._interrupts = 0
        self._wakeup: asyncio.Event | None = None
        self._background = Background(f"RedisRateLimiter({service!r})")
        self._stats = LimiterRecorder()
        self._cooldown_until = -math.inf
        self._in_flight = 0
        self._waiting = 0
        self._utilization: tuple[float | None, float | None] = (None, None)

    async def _admit(self, tokens: float) -> str:
        """Wait until the shared script admits *tokens*; return the concurrency holder id."""
        loop = asyncio.get_running_loop()
        start = now = loop.time()
        holder = f"{self._id}:{next(self._seq)}" if self._max_conc else ""
        args = [tokens, *self._argv, holder]
        max_wait = self.limits.max_wait
        interrupts = self._interrupts
        self._waiting += 1
        try:
            while True:
                status = 1
                wait = self._cooldown_until - now
                if wait <= 0.0:
                    status, wait = await self._try(args, tokens, holder, now)
                    if status == _ADMITTED:
                        break
                if status != _CONCURRENCY and max_wait is not None:
                    predicted = now - start + wait
                    if predicted > max_wait + _EPS:
                        self._deny(tokens, "max_wait")
                        raise RateLimitTimeoutError(self.service, predicted, max_wait)
                await self._sleep(status, wait)
                if self._interrupts != interrupts:
                    raise WaitInterrupted(self.service)
                now = loop.time()
        finally:
            self._waiting -= 1
        self._on_admitted(tokens, holder, now, now - start)
        return holder

    async def _try(
        self, args: list[Any], tokens: float, holder: str, now: float
    ) -> tuple[int, float]:
        """Run the admission script once; keep its view of the shared state."""
        task = asyncio.ensure_future(self._acquire_script(keys=self._acquire_keys, args=args))
        try:
            reply = await asyncio.shield(task)
        except asyncio.CancelledError:
            # Cancelled while the script ran: give back whatever it may have charged.
            task.add_done_callback(lambda t: self._refund_if_admitted(t, tokens, holder))
            self._background.track(task)
            raise
        status, wait_ms, req, tok, cool_ms = (int(x) for x in reply)
        self._utilization = (
            None if req < 0 else req / 1000.0,
            None if tok < 0 else tok / 1000.0,
        )
        if cool_ms > 0:
            self._cooldown_until = max(self._cooldown_until, now + cool_ms / 1000.0)
        return status, wait_ms / 1000.0

    async def _sleep(self, status: int, wait: float) -> None:
        if status == _CONCURRENCY:
            # A slot freed in this process wakes the waiter at once; others are polled.
            freed = self._freed = self._freed or asyncio.Event()
            try:
                async with asyncio.timeout(min(max(wait, 0.001), self._poll)):
                    await freed.wait()
            except TimeoutError:
                pass
            return
        wakeup = self._wakeup = self._wakeup or asyncio.Event()
        try:
            async with asyncio.timeout(wait + random.random() * min(0.01, 0.1 * wait + 0.001)):
                await wakeup.wait()
        except TimeoutError:
            pass

    def interrupt_waiters(self) -> int:
        """
        Send the calls waiting in this process away with `WaitInterrupted`.

        Returns:
            How many calls were waiting.

        .. versionadded:: 0.2.0
        """
        self._interrupts += 1
        for event in (self._wakeup, self._freed):
            if event is not None:
                event.set()
        self._wakeup = self._freed = None
        return self._waiting

    def _on_admitted(self, tokens: float, holder: str, now: float, waited: float) -> None:
        self._in_flight += 1
        if holder:
            self._holders.add(holder)
            if self._renewer is None or self._renewer.done():
                self._renewer = asyncio.get_running_loop().create_task(self._renew())
        stats = self._stats
        if now >= stats.window_end:
            stats.roll_window(now)
        stats.window_requests += 1
        stats.window_tokens += tokens
        if waited > 0.0:
            stats.waits.append((now, tokens, waited, stats.admitted - 1))
        self._hook.limiter_waited(self.service, waited, tokens)

    def _refund_if_admitted(self, task: asyncio.Future[Any], tokens: float, holder: str) -> None:
        if task.cancelled() or task.exception() is not None or int(task.result()[0]) != _ADMITTED:
            return
        self._background.spawn(self._refund(tokens, holder))

    async def _refund(self, tokens: float, holder: str) -> None:
        ops: list[tuple[str, tuple[float, float], float]] = [("req", self._req, -1.0)]
        if tokens:
            ops += [("tok", self._tok, -tokens), ("day", self._day, -tokens)]
        await self._adjust(0.0, [(k, s, "add", v) for k, s, v in ops])
        if holder:
            await self._redis.zrem(self.keys["conc"], holder)

    async def _release(self, holder: str) -> None:
        self._in_flight -= 1
        if not holder:
            return
        self._holders.discard(holder)
        try:
            await self._redis.zrem(self.keys["conc"], holder)
        except Exception as exc:  # the lease frees the slot later anyway
            logger.warning("%r: releasing a concurrency slot failed: %r", self, exc)
        finally:
            if self._freed is not None:
                self._freed.set()
                self._freed = None

    async def _renew(self) -> None:
        """Extend this process's leases every ``lease / 3`` seconds while it holds any."""
        while self._holders:
            await asyncio.sleep(self._lease / 3.0)
            if not self._holders:
                break
            try:
                await self._renew_script(
                    keys=[self.keys["conc"]], args=[self._lease, *self._holders]
                )
            except Exception as exc:  # try again next time; the leases may lapse meanwhile
                logger.warning("%r: renewing concurrency leases failed: %r", self, exc)

    # -- corrections ----------------------------------------------------------------

    async def _adjust(self, cooldown: float, ops: list[Op]) -> None:
        keys = [self.keys["cool"]]
        args: list[Any] = [math.ceil(cooldown * 1000.0)]
        for name, (rate, _), mode, value in ops:
            if rate > 0.0:
                keys.append(self.keys[name])
                args += [rate, mode, value]
        await self._adjust_script(keys=keys, args=args)

    async def flush(self) -> None:
        """
        Wait until the shared corrections started so far are written.

        .. versionadded:: 0.1.0
        """
        await self._background.flush()

    async def aclose(self) -> None:
        """
        Write pending corrections and stop renewing leases (the client stays open).

        .. versionadded:: 0.1.0
        """
        await self.flush()
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    def _deny(self, tokens: float, reason: str) -> None:
        self._stats.denial(loop_now(), tokens, reason)
        self._hook.limiter_denied(self.service, reason)
