# SPDX-License-Identifier: MIT
"""
The admission engine of `ProviderLimiter`: buckets, FIFO queue, fast path.

The buckets are `aiolimiter.AsyncLimiter` instances used for their state
only: ``_level`` drains at ``_rate_per_sec`` and a bucket admits while
``_level + amount <= max_rate`` (aiolimiter 1.2-1.3). Their own ``acquire``
and waiter heap are never used, and no module but this one and
``_limiter.py`` touches them.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import deque
from collections.abc import Callable

from aiolimiter import AsyncLimiter

from .._hooks import NULL_HOOK, MetricsHook
from ..exceptions import RateLimitTimeoutError
from ._limits import RateLimits
from ._stats import LimiterRecorder

__all__ = ["LimiterCore", "WaitInterrupted"]

_EPS = 1e-9
#: Waits shorter than this are not waited (a timer that short fires at once: a spin).
_MIN_WAIT = 1e-6


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


def _resolve(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


class WaitInterrupted(Exception):
    """
    A queued call was sent away from the limiter's queue before it took any capacity.

    Raised by `acquire` after `interrupt_waiters` (its provider's breaker
    opened): the caller looks at the breaker again and moves on or waits there.

    .. versionadded:: 0.2.0
    """

    def __init__(self, service: str) -> None:
        self.service = service
        super().__init__(f"the wait in {service!r}'s rate limiter was interrupted")


class _Waiter:
    __slots__ = ("fut", "interrupted", "tokens")

    def __init__(self, tokens: float) -> None:
        self.interrupted = False
        self.tokens = tokens
        self.fut: asyncio.Future[None] | None = None


class LimiterCore:
    """The state and the waiting of one provider limiter (internal)."""

    __slots__ = (
        "_cooldown_until",
        "_day",
        "_head_fut",
        "_hook",
        "_in_flight",
        "_loop",
        "_max_conc",
        "_max_tokens",
        "_max_wait",
        "_on_admit",
        "_queue",
        "_queued_tokens",
        "_req",
        "_req_room",
        "_stats",
        "_time",
        "_tok",
        "_tok_room",
        "limits",
        "service",
    )

    def __init__(
        self, limits: RateLimits, *, service: str = "default", hook: MetricsHook = NULL_HOOK
    ) -> None:
        self.limits = limits
        self.service = service
        self._hook = hook
        self._req = _bucket(limits.requests_per_minute, 60.0, limits.burst, 1.0)
        self._tok = _bucket(limits.tokens_per_minute, 60.0, limits.burst, 0.0)
        self._day = _bucket(limits.tokens_per_day, 86_400.0, 86_400.0, 0.0)
        self._max_tokens = limits.max_request_tokens
        self._max_wait = limits.max_wait
        self._max_conc = limits.max_concurrency or sys.maxsize
        self._in_flight = 0
        self._cooldown_until = -math.inf
        self._queue: deque[_Waiter] = deque()
        self._queued_tokens = 0.0
        self._head_fut: asyncio.Future[None] | None = None
        self._stats = LimiterRecorder()
        self._on_admit = hook.limiter_waited
        # The request bucket admits while its level is at most this.
        self._req_room = math.inf if self._req is None else self._req.max_rate - 1.0 + _EPS
        # The token bucket admits *n* while its level + n is at most this.
        self._tok_room = math.inf if self._tok is None else self._tok.max_rate + _EPS
        # The loop's clock, bound at first use (one limiter per event loop, as
        # aiolimiter): asyncio.get_running_loop() costs more than the rest of
        # the fast path.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._time: Callable[[], float] | None = None

    def _bind(self) -> float:
        """Bind to the running loop's clock; return its time."""
        loop = self._loop = asyncio.get_running_loop()
        clock = loop.time
        if "time" not in vars(loop) and type(loop).time is asyncio.BaseEventLoop.time:
            clock = time.monotonic  # what BaseEventLoop.time returns, one call less
        self._time = clock
        return clock()

    def _deny(self, tokens: float, reason: str) -> None:
        self._stats.denial(self._now(), tokens, reason)
        self._hook.limiter_denied(self.service, reason)

    def _charge_day(self, tokens: float, now: float) -> bool:
        """Charge the day bucket with *tokens* if they fit now."""
        day = self._day
        assert day is not None
        level = _fill(day, now)
        if level + tokens > day.max_rate + _EPS:
            return False
        day._level = level + tokens
        return True

    def _take(self, tokens: float, now: float, waited: float) -> None:
        """Charge the buckets (already leaked to *now*), take a slot, record the admission."""
        if self._req is not None:
            self._req._level += 1.0
        if tokens:
            if self._tok is not None:
                self._tok._level += tokens
            if self._day is not None:
                self._day._level += tokens
        self._in_flight += 1
        stats = self._stats
        if now >= stats.window_end:
            stats.roll_window(now)
        stats.window_requests += 1
        stats.window_tokens += tokens
        if waited > 0.0:
            stats.waits.append((now, tokens, waited, stats.admitted - 1))
        self._on_admit(self.service, waited, tokens)

    def _head_wait(self, tokens: float, now: float) -> float:
        """Seconds until the head of the queue fits (ignoring the concurrency slot)."""
        return max(
            self._cooldown_until - now,
            _need(self._req, now, 1.0),
            _need(self._tok, now, tokens),
            _need(self._day, now, tokens),
        )

    def predicted_wait(self, tokens: float = 0.0) -> float:
        """
        Seconds a call for *tokens* arriving now would wait for capacity.

        Counts the calls queued ahead of it and the cooldown; not the wait for
        a concurrency slot, which depends on how long calls take.

        .. versionadded:: 0.1.0
        """
        now = self._now()
        ahead = len(self._queue)
        wait = self._cooldown_until - now
        for bucket, amount, tail in (
            (self._req, ahead + 1.0, 1.0),
            (self._tok, self._queued_tokens + tokens, tokens),
            (self._day, self._queued_tokens + tokens, tokens),
        ):
            if bucket is not None and amount:
                cap = bucket.max_rate
                excess = _fill(bucket, now) + amount - tail + min(tail, cap) - cap
                wait = max(wait, excess / bucket._rate_per_sec)
        return max(wait, 0.0)

    async def _wait(self, tokens: float, start: float) -> None:
        """The slow path: queue in arrival order until everything fits."""
        if self._max_wait is not None:
            predicted = self.predicted_wait(tokens)
            if predicted > self._max_wait + _EPS:
                self._deny(tokens, "max_wait")
                raise RateLimitTimeoutError(self.service, predicted, self._max_wait)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # reused on another loop: rebind
            start = self._bind()
        queue = self._queue
        waiter = _Waiter(tokens)
        queue.append(waiter)
        self._queued_tokens += tokens
        try:
            if len(queue) > 1:
                waiter.fut = loop.create_future()
                await waiter.fut
            while True:
                if waiter.interrupted:
                    raise WaitInterrupted(self.service)
                now = loop.time()
                wait = self._head_wait(tokens, now)
                if wait <= _MIN_WAIT:
                    if self._in_flight < self._max_conc:
                        break
                    wait = math.inf
                fut = self._head_fut = loop.create_future()
                handle = None if wait == math.inf else loop.call_at(now + wait, _resolve, fut)
                try:
                    await fut
                finally:
                    self._head_fut = None
                    if handle is not None:
                        handle.cancel()
        except BaseException:
            self._leave(waiter)
            raise
        queue.popleft()
        self._queued_tokens = self._queued_tokens - tokens if queue else 0.0
        if queue:  # first, so that a failing hook in _take cannot stall the queue
            _resolve(queue[0].fut)
        self._take(tokens, now, now - start)

    def interrupt_waiters(self) -> int:
        """
        Send every queued call away with `WaitInterrupted`, before it takes any capacity.

        Returns:
            How many calls were queued.

        .. versionadded:: 0.2.0
        """
        queue = self._queue
        for waiter in queue:
            waiter.interrupted = True
            _resolve(waiter.fut)
        self._poke()
        return len(queue)

    def _leave(self, waiter: _Waiter) -> None:
        """Take a cancelled or failed waiter out of the queue; hand the head on."""
        queue = self._queue
        was_head = bool(queue) and queue[0] is waiter
        queue.remove(waiter)
        self._queued_tokens = self._queued_tokens - waiter.tokens if queue else 0.0
        if was_head and queue:
            _resolve(queue[0].fut)

    def _now(self) -> float:
        """The loop's time (the monotonic clock outside a loop)."""
        if self._time is not None:
            return self._time()
        try:
            return self._bind()
        except RuntimeError:
            return time.monotonic()

    def _poke(self) -> None:
        """Let the head of the queue look at the buckets again."""
        if self._head_fut is not None:
            _resolve(self._head_fut)


def _utilization(bucket: AsyncLimiter | None, now: float) -> float | None:
    if bucket is None:
        return None
    level = max(0.0, bucket._level - (now - bucket._last_check) * bucket._rate_per_sec)
    return min(1.0, level / bucket.max_rate)
