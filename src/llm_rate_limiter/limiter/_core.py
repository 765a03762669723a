# SPDX-License-Identifier: MIT
"""
The admission engine of `ProviderLimiter`: buckets, FIFO queue, fast path.

The buckets are `aiolimiter.AsyncLimiter` instances used for their state
only (see ``_buckets``); no module but this one, ``_buckets``, ``_permit``
and ``_limiter.py`` touches them. With ``RateLimits.adaptive`` a `Learner`
keeps the working rates; the buckets follow them only at slow-path events
(`_refresh`, `_apply_rates`): the fast path reads the same attributes as ever.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import deque
from collections.abc import Callable

from .._hooks import NULL_HOOK, MetricsHook
from ..exceptions import RateLimitTimeoutError
from ._buckets import _EPS, _bucket, _fill, _need, resize
from ._learning import Learner
from ._limits import RateLimits
from ._stats import LimiterRecorder

__all__ = ["LimiterCore", "WaitInterrupted"]

#: Waits shorter than this are not waited (a timer that short fires at once: a spin).
_MIN_WAIT = 1e-6


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
        "_dialect",
        "_head_fut",
        "_hook",
        "_in_flight",
        "_learn",
        "_learn_next",
        "_loop",
        "_max_conc",
        "_max_tokens",
        "_max_wait",
        "_on_admit",
        "_on_rate",
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
        self,
        limits: RateLimits,
        *,
        service: str = "default",
        hook: MetricsHook = NULL_HOOK,
        dialect: str | None = None,
    ) -> None:
        self.limits = limits
        self.service = service
        self._hook = hook
        self._dialect = dialect
        learn = self._learn = Learner(limits) if limits.adaptive else None
        # When a growing working rate is next looked at (inf: none grows).
        self._learn_next = math.inf
        self._on_rate = getattr(hook, "working_rate_changed", None)  # hooks older than 0.2
        requests_per_minute = limits.requests_per_minute
        if learn is not None and learn.requests.growing:  # slow start
            requests_per_minute = learn.requests.rate * 60.0
            self._learn_next = -math.inf
        self._req = _bucket(requests_per_minute, 60.0, limits.burst, 1.0)
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
        if learn is not None:
            self._report("start")

    def _bind(self) -> float:
        """Bind to the running loop's clock; return its time."""
        loop = self._loop = asyncio.get_running_loop()
        clock = loop.time
        if "time" not in vars(loop) and type(loop).time is asyncio.BaseEventLoop.time:
            clock = time.monotonic  # what BaseEventLoop.time returns, one call less
        self._time = clock
        return clock()

    def _set_hook(self, hook: MetricsHook) -> None:
        """Send this limiter's events to *hook* from now on (instrumentation swaps it)."""
        self._hook = hook
        self._on_admit = hook.limiter_waited
        self._on_rate = getattr(hook, "working_rate_changed", None)

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
        self._stats.record_admission(now, tokens, waited)
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
                if now + _MIN_WAIT >= self._learn_next:
                    self._refresh(now)
                wait = self._head_wait(tokens, now)
                if wait <= _MIN_WAIT:
                    if self._in_flight < self._max_conc:
                        break
                    wait = math.inf
                # A growing working rate is looked at again while the head waits.
                wait = min(wait, self._learn_next - now)
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

    def _refresh(self, now: float, moved: str | None = None) -> None:
        """
        Sample the admitted counts and let the working rates grow to *now*.

        Runs on slow paths only (responses, 429s, the head of the queue).
        *moved*: why the caller already moved a rate (None: it did not); the
        buckets follow any move and the hook hears of it.
        """
        learn = self._learn
        if learn is None:
            return
        stats = self._stats
        learn.sample(now, stats.admitted, stats.tokens_total)
        if now + _MIN_WAIT >= self._learn_next or moved is not None:
            demand = bool(self._queue) and now >= self._cooldown_until
            if learn.grow(now, demand) and moved is None:
                moved = "increase"
            self._learn_next = learn.next_check(now)
        if moved is not None:
            self._apply_rates(now, moved)

    def _apply_rates(self, now: float, reason: str) -> None:
        """Move the buckets to the working rates (keeping their levels); wake the head."""
        learn = self._learn
        assert learn is not None
        burst = self.limits.burst
        req = self._req = resize(self._req, now, learn.requests.rate, burst, 1.0)
        tok = self._tok = resize(self._tok, now, learn.tokens.rate, burst, 0.0)
        self._req_room = math.inf if req is None else req.max_rate - 1.0 + _EPS
        self._tok_room = math.inf if tok is None else tok.max_rate + _EPS
        self._report(reason)
        self._poke()

    def _report(self, reason: str) -> None:
        """Tell the hook the working rates (per minute; None: no limit)."""
        learn = self._learn
        if learn is None or self._on_rate is None:
            return
        requests, tokens = learn.requests.rate, learn.tokens.rate
        self._on_rate(
            self.service,
            requests * 60.0 if math.isfinite(requests) else None,
            tokens * 60.0 if math.isfinite(tokens) else None,
            reason,
        )

    def _poke(self) -> None:
        """Let the head of the queue look at the buckets again."""
        if self._head_fut is not None:
            _resolve(self._head_fut)
