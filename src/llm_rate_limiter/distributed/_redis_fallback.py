# SPDX-License-Identifier: MIT
"""
What `RedisRateLimiter` does while Redis is unavailable, and how it comes back.

When the shared state becomes unavailable (see ``_shared_state``), the calls
queued for Redis leave at once, and until a probe finds Redis again:

- with ``redis_failure="open"`` each call is admitted by a local stand-in
  holding this process's share of the limits (``_local_share``), started
  as full as the shared buckets were at the last look;
- with ``"closed"`` each call fails at once with `SharedStateUnavailableError`.

The probe (one a second) renews this limiter's heartbeat and leases,
re-adding those a restarted Redis forgot; re-seeds the buckets (full: no
burst after an outage, see ``_local_share``); adds the tokens admitted
locally to the daily bucket; republishes a cooldown still in force; and
gives back the slots released during the outage. Then the calls waiting in
the stand-in come back to Redis. A restart that no call noticed is found by
the admission script (the generation key is gone) and re-seeded the same way.
"""

from __future__ import annotations

import uuid

from ..exceptions import RateLimitTimeoutError, SharedStateUnavailableError
from ..limiter import Permit, WaitInterrupted
from ._redis_base import Op, RedisLimiterBase, _resolve, loop_now

__all__ = ["RedisLimiterFallback"]


class RedisLimiterFallback(RedisLimiterBase):
    """The outage handling of one shared limiter (internal; see `RedisRateLimiter`)."""

    def _on_change(self, available: bool) -> None:
        now = loop_now()
        if available:
            old = self._share.stop()
            if old is not None:
                old.interrupt_waiters()  # its waiters come back to Redis
            self._keeper.touch(now)
            return
        if self.redis_failure == "open":
            used = self._utilization
            if now - self._utilization_at > self.limits.burst:
                used = (None, None)  # drained since
            self._share.start(self._keeper.live, used, self._cooldown_until - now)
        for waiter in self._queue:  # queued calls leave for the fallback
            _resolve(waiter.fut)
        _resolve(self._wake)

    async def _recover(self) -> None:
        """The probe: heartbeat and leases, re-seeding, the releases the outage held back."""
        gen = await self._keeper.contact(probing=True)
        await self._reseed(lost=not gen or gen != self._gen, probing=True)
        self._local_holders.clear()  # the contact added them
        orphans = list(self._orphans)
        if orphans:
            await self._send_release(orphans, probing=True)
            self._orphans.difference_update(orphans)

    async def _reseed(self, *, lost: bool, probing: bool = False) -> None:
        """
        Re-seed the buckets after an outage, or after Redis lost them (see ``_local_share``).

        *lost*: Redis lost its data (a new generation is set, or adopted).
        """
        req, tok = self._req, self._tok
        ops: list[Op] = [
            ("req", req, "fill", req[1]),
            ("tok", tok, "fill", tok[1]),
            ("day", self._day, "add", self._share.seed()),
        ]
        candidate = uuid.uuid4().hex if lost or not self._gen else ""
        gen = await self._adjust_raw(0.0, ops, gen=candidate, probing=probing)
        self._share.seeded()
        if candidate:
            self._gen = gen
        cool = self._cooldown_until - loop_now()
        if cool > 0.0:
            await self._adjust_raw(cool, self._cooldown_ops(cool), probing=probing)

    async def _admit_unshared(
        self, tokens: float, start: float, interrupts: int
    ) -> tuple[str, Permit] | None:
        """Admit through the local share (open), or refuse (closed); None: Redis is back."""
        state = self._state
        if self.redis_failure == "closed":
            raise SharedStateUnavailableError(self.service, state.reason)
        local = self._share.limiter
        if local is None:
            if state.available:
                return None  # recovered before this call got here
            local = self._share.start(self._keeper.live, (None, None), 0.0)
        charge = min(tokens, local.limits.max_request_tokens)
        permit = local.acquire(charge)
        try:
            await permit.__aenter__()
        except WaitInterrupted:
            if self._interrupts != interrupts:
                raise WaitInterrupted(self.service) from None
            return None
        except RateLimitTimeoutError:
            self._deny(tokens, "max_wait")
            raise
        if charge < tokens:  # above this process's share of a minute: carried as debt
            local.reconcile(charge, tokens)
        holder = self._holder()
        if holder:
            self._local_holders.add(holder)
        now = loop_now()
        self._on_admitted(tokens, holder, now, now - start, local=True)
        return holder, permit
