# SPDX-License-Identifier: MIT
"""
The waiting of `RedisRateLimiter`: one local queue in front of one admission script.

Calls of one limiter wait in a local FIFO queue; only its head talks to
Redis, so waiting costs O(1) Redis calls per admission, not O(waiters). The
head runs the admission script (``_scripts.ACQUIRE``), which checks the
shared cooldown, the request, token and daily buckets and the concurrency
leases, and either

- admits it, possibly *ahead of time*: the buckets are charged now for a
  request that may go ``wait`` seconds from now (the capacity is reserved,
  so every process's head queues in Redis in arrival order), and the head
  sleeps that long and goes, without asking again: one script call per
  admission at a saturated rate;
- or tells it to come back: after a cooldown, when a concurrency slot is
  given back, or after re-seeding (the generation key says Redis lost its
  data); or refuses it, when the wait is above ``max_wait``.

A concurrency slot is waited for on a notification, not by polling: a
release pushes one entry on the ``slots`` list and the waiting heads block
on it with ``BLPOP`` (Redis serves the longest-blocked client first, so one
release wakes one waiter in the whole fleet). The head runs the script
again after ``poll_interval`` at the latest (and when the oldest lease
expires), so a lost notification cannot hang a call; the ``BLPOP`` itself
is re-sent every quarter ``redis_timeout``, so a stalled Redis is noticed
within the same bound as on any other call.

A head that gives up (cancelled, or sent away by `interrupt_waiters`) after
its reservation gives the reservation back before it leaves; a call
cancelled while its script ran is undone once the script answers. Every
Redis call is bounded by ``redis_timeout``; when the shared state becomes
unavailable the queued calls leave for the fallback at once (see
``_redis_base``).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from ..exceptions import RateLimitTimeoutError
from ..limiter import Permit, WaitInterrupted
from ._redis_base import Waiter, _resolve, _text
from ._redis_fallback import RedisLimiterFallback
from ._shared_state import Unavailable

__all__ = ["RedisLimiterCore"]

_EPS = 1e-9
_ADMITTED, _COOLDOWN, _CONCURRENCY, _SEED, _REFUSED = range(5)
#: Shortest ``BLPOP`` timeout (0 would block for ever).
_MIN_BLOCK = 0.01


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class RedisLimiterCore(RedisLimiterFallback):
    """The waiting of one shared limiter (internal; see `RedisRateLimiter`)."""

    async def _admit(self, tokens: float) -> tuple[str, Permit | None]:
        """Wait until admitted; return the slot holder id and the local permit (if local)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        interrupts = self._interrupts
        self._waiting += 1
        try:
            while True:
                if self._state.available:
                    admitted = await self._admit_shared(tokens, start, interrupts)
                    if admitted is not None:
                        holder, now = admitted
                        self._on_admitted(tokens, holder, now, now - start, local=False)
                        return holder, None
                else:
                    local = await self._admit_unshared(tokens, start, interrupts)
                    if local is not None:
                        return local
        finally:
            self._waiting -= 1

    async def _admit_shared(
        self, tokens: float, start: float, interrupts: int
    ) -> tuple[str, float] | None:
        """Queue, then admit as the head; None when the shared state went away meanwhile."""
        loop = asyncio.get_running_loop()
        queue = self._queue
        max_wait = self.limits.max_wait
        if queue and max_wait is not None:
            predicted = self._predicted(tokens, loop.time())
            if predicted > max_wait + _EPS:
                self._deny(tokens, "max_wait")
                raise RateLimitTimeoutError(self.service, predicted, max_wait)
        waiter = Waiter()
        queue.append(waiter)
        self._queued_tokens += tokens
        try:
            while queue[0] is not waiter:
                waiter.fut = loop.create_future()
                await waiter.fut
                if self._interrupts != interrupts:
                    raise WaitInterrupted(self.service)
                if not self._state.available:
                    return None
            return await self._head(tokens, start, interrupts)
        finally:
            was_head = queue[0] is waiter
            queue.remove(waiter)
            self._queued_tokens = self._queued_tokens - tokens if queue else 0.0
            if was_head and queue:
                _resolve(queue[0].fut)

    async def _head(self, tokens: float, start: float, interrupts: int) -> tuple[str, float] | None:
        loop = asyncio.get_running_loop()
        max_wait = self.limits.max_wait
        now = start
        while True:
            if self._interrupts != interrupts:
                raise WaitInterrupted(self.service)
            if not self._state.available:
                return None
            cool = self._cooldown_until - now
            if cool > 0.0:  # known here already: no need to ask
                if max_wait is not None and now - start + cool > max_wait + _EPS:
                    self._deny(tokens, "max_wait")
                    raise RateLimitTimeoutError(self.service, now - start + cool, max_wait)
                await self._nap(cool)
                now = loop.time()
                continue
            budget = -1.0 if max_wait is None else max(0.0, max_wait - (now - start))
            holder = self._holder()
            try:
                status, wait = await self._try(tokens, holder, budget)
            except Unavailable:
                if holder:  # the script may still run when Redis wakes up
                    self._orphans.add(holder)
                return None
            if status == _ADMITTED:
                if wait > 0.0:
                    now = await self._reserved(wait, tokens, holder, interrupts)
                return holder, now
            if status == _REFUSED:
                assert max_wait is not None
                self._deny(tokens, "max_wait")
                raise RateLimitTimeoutError(self.service, now - start + wait, max_wait)
            if status == _SEED:
                try:
                    await self._reseed(lost=True)
                except Unavailable:
                    return None
            elif status == _CONCURRENCY:
                await self._slot_wait(wait)
                now = loop.time()
            # _COOLDOWN: recorded by _try; the next round naps until it ends.

    async def _try(self, tokens: float, holder: str, budget: float) -> tuple[int, float]:
        """Run the admission script once; keep its view of the shared state."""
        args = [tokens, *self._argv, holder, budget, self._gen, self._id_bytes]
        keys = self._acquire_keys
        task = asyncio.ensure_future(
            self._state.call(lambda: self._acquire_script(keys=keys, args=args))
        )
        try:
            reply = await asyncio.shield(task)
        except asyncio.CancelledError:
            # Cancelled while the script ran: give back whatever it charged, now
            # if its answer is in, else once it is.
            if task.done():
                await self._undo(task, tokens, holder)
            else:
                task.add_done_callback(lambda t: self._refund_if_admitted(t, tokens, holder))
                self._background.track(task)
            raise
        status, wait_ms, req, tok, cool_ms = (int(x) for x in reply[:5])
        if status != _SEED:
            self._gen = _text(reply[5])
        now = asyncio.get_running_loop().time()
        if req >= 0 or tok >= 0:
            self._utilization = (
                None if req < 0 else req / 1000.0,
                None if tok < 0 else tok / 1000.0,
            )
            self._utilization_at = now
        if cool_ms > 0:
            self._cooldown_until = max(self._cooldown_until, now + cool_ms / 1000.0)
        return status, wait_ms / 1000.0

    async def _reserved(self, wait: float, tokens: float, holder: str, interrupts: int) -> float:
        """Sleep until a reservation's turn (and past any cooldown learnt meanwhile)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + wait
        try:
            while True:
                now = loop.time()
                target = max(until, self._cooldown_until)
                if now >= target:
                    return now
                if self._interrupts != interrupts:
                    raise WaitInterrupted(self.service)
                await self._nap(target - now)
        except BaseException:  # cancelled or sent away: the reservation goes back first
            await self._undo(None, tokens, holder)
            raise

    async def _undo(self, reply: asyncio.Future[Any] | None, tokens: float, holder: str) -> None:
        """Give an admission back before leaving (*reply*: the script's, if not known admitted)."""
        if reply is not None and (reply.exception() is not None or int(reply.result()[0])):
            return
        task = asyncio.ensure_future(self._give_back(tokens, holder))
        self._background.track(task)
        await asyncio.shield(task)

    async def _nap(self, seconds: float) -> None:
        """Sleep *seconds*, or until woken (cooldown, interruption, outage)."""
        loop = asyncio.get_running_loop()
        fut = self._wake = loop.create_future()
        handle = loop.call_later(seconds, _resolve, fut)
        try:
            await fut
        finally:
            handle.cancel()
            if self._wake is fut:
                self._wake = None

    async def _slot_wait(self, expiry: float) -> None:
        """
        Block until a slot is released, the oldest lease expires, or ``poll_interval`` passes.

        The ``BLPOP`` is re-sent every quarter ``redis_timeout`` (no script in
        between), so a stalled Redis is noticed as fast as by any other call.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + max(_MIN_BLOCK, min(self._poll, expiry + 0.001))
        chunk = max(_MIN_BLOCK, self._state.timeout / 4.0)
        slots = self.keys["slots"]
        while True:
            block = max(_MIN_BLOCK, min(chunk, until - loop.time()))
            pop = asyncio.ensure_future(
                self._state.call(partial(self._redis.blpop, [slots], timeout=block), extra=block)
            )
            pop.add_done_callback(_consume)
            wake = self._wake = loop.create_future()
            try:
                await asyncio.wait([pop, wake], return_when=asyncio.FIRST_COMPLETED)
            finally:
                if self._wake is wake:
                    self._wake = None
                if not pop.done():
                    pop.cancel()
            if wake.done() or pop.cancelled() or pop.exception() is not None:
                return  # woken, or Redis failed: the caller looks at why
            if pop.result() is not None or loop.time() >= until:
                return

    def _predicted(self, tokens: float, now: float) -> float:
        """About how long a call joining the queue now will wait (from the last reply)."""
        ahead = len(self._queue)
        wait = self._cooldown_until - now
        drained = max(0.0, now - self._utilization_at)
        for (rate, capacity), used, amount, tail in (
            (self._req, self._utilization[0], ahead + 1.0, 1.0),
            (self._tok, self._utilization[1], self._queued_tokens + tokens, tokens),
        ):
            if rate > 0.0 and amount:
                level = max(0.0, (used or 0.0) * capacity - drained * rate)
                excess = level + amount - tail + min(tail, capacity) - capacity
                wait = max(wait, excess / rate)
        return max(0.0, wait)

    def interrupt_waiters(self) -> int:
        """
        Send the calls waiting in this process away with `WaitInterrupted`.

        Returns:
            How many calls were waiting.

        .. versionadded:: 0.2.0
        """
        self._interrupts += 1
        for waiter in self._queue:
            _resolve(waiter.fut)
        _resolve(self._wake)
        local = self._share.limiter
        if local is not None:
            local.interrupt_waiters()
        return self._waiting
