# SPDX-License-Identifier: MIT
"""
`TrialSlots`: this process's share of the half-open trial slots kept in Redis.

A half-open `SharedCircuitBreaker` lets a trial call out only with a slot
taken from Redis (``breaker:trial``, see `_breaker_scripts`). Slots move
through three lists here:

- *spare*: granted by Redis, not yet taken by a call (a call refused for
  lack of one asked for it; the next one takes it). A spare not taken within
  the hold time goes back.
- *held*: taken by a trial call in flight; renewed at each sync so a long
  trial keeps its slot, freed by its outcome.
- *freeing*: to delete from Redis at the next sync.
"""

from __future__ import annotations

import itertools
import uuid

__all__ = ["TRIAL_LEASE", "TrialSlots"]

#: Seconds a trial slot lives in Redis unless renewed (a dead holder's slot frees itself).
TRIAL_LEASE = 3.0
#: At most this many slot deletions wait for Redis (older ones have expired anyway).
_MAX_FREEING = 256


class TrialSlots:
    """The trial slots of one breaker (internal; see the module docstring)."""

    __slots__ = ("_base", "_count", "freeing", "held", "next_ask", "spare", "wanted")

    def __init__(self, origin: str) -> None:
        self._base = f"{origin}:{uuid.uuid4().hex[:8]}"
        self._count = itertools.count(1)
        self.spare: list[tuple[str, float]] = []  # (token, when granted: monotonic)
        self.held: list[str] = []
        self.freeing: list[str] = []
        #: A call found no spare slot: the next sync asks Redis for one.
        self.wanted = False
        #: Monotonic time before which asking Redis again is pointless.
        self.next_ask = 0.0

    def take(self) -> bool:
        """Move a spare slot to the calls in flight; False if there is none."""
        if not self.spare:
            return False
        token, _ = self.spare.pop()
        self.held.append(token)
        return True

    def give_back(self) -> bool:
        """A trial ended: free one held slot; False if none was held (a local-only trial)."""
        if not self.held:
            return False
        self.free([self.held.pop()])
        return True

    def drop(self) -> None:
        """Half-open ended: every slot goes back, nothing is wanted any more."""
        self.free(self.held + [token for token, _ in self.spare])
        self.held.clear()
        self.spare.clear()
        self.wanted = False

    def free(self, tokens: list[str]) -> None:
        """Delete *tokens* from Redis at the next sync."""
        self.freeing.extend(tokens)
        del self.freeing[:-_MAX_FREEING]

    def expire(self, now: float, hold: float) -> None:
        """Give back the spare slots granted more than *hold* seconds before *now*."""
        if self.spare and self.spare[0][1] + hold <= now:
            self.free([token for token, granted in self.spare if granted + hold <= now])
            self.spare = [(token, granted) for token, granted in self.spare if granted + hold > now]

    def ask(self, half_open: bool, free: int, waiting: int) -> list[str]:
        """
        Fresh slot names to ask Redis for: as many as calls wait (at least one), if wanted.

        Args:
            half_open: The local breaker is half-open (else nothing is wanted).
            free: Trial slots this process may still fill (the local quota left).
            waiting: Calls waiting on the breaker.
        """
        if not self.wanted or not half_open:
            self.wanted = False
            return []
        count = min(free - len(self.spare), max(1, waiting))
        self.wanted = count > 0
        return [f"{self._base}:{next(self._count)}" for _ in range(count)]

    def answered(
        self, wanted: list[str], granted: int, wait_ms: int, now: float, refresh: float
    ) -> list[str]:
        """Redis granted the first *granted* of *wanted*: return them; if short, ask again soon."""
        if granted < len(wanted):
            wait = wait_ms / 1000.0 if wait_ms > 0 else refresh
            self.next_ask = now + min(wait + 0.002, refresh)
        elif wanted:
            self.wanted = False
        return wanted[:granted]

    def keep(self, tokens: list[str], now: float) -> None:
        """Keep *tokens* (just granted) as spares."""
        self.spare.extend((token, now) for token in tokens)

    def due(self, now: float, refresh: float) -> float | None:
        """Seconds until these slots need an exchange with Redis (None: they do not)."""
        delays = []
        if self.wanted:
            delays.append(max(0.001, self.next_ask - now))  # ask again
        if self.spare:
            delays.append(refresh)  # give back what nobody took
        if self.held:
            delays.append(TRIAL_LEASE / 3.0)  # renew the slots of trials in flight
        return min(delays, default=None)
