# SPDX-License-Identifier: MIT
"""
`SharedCircuitBreaker`: an `AsyncCircuitBreaker` whose openings every process sees.

Each process keeps its own pybreaker-driven state machine; Redis carries two
keys per service that the processes publish to and follow:

- ``{prefix}:{service}:breaker:open`` exists while the service is open, with
  an expiry (PX) of the opening's remaining time. A process whose breaker
  opens (by failures or `force_open`) sets it, unless a longer opening is
  already there.
- ``{prefix}:{service}:breaker:epoch`` counts recoveries. A process whose
  breaker closes (a successful half-open trial, or `reset`) deletes the open
  key and bumps the epoch.

Following: `admit` stays synchronous and cheap. When the local view is older
than ``refresh_interval`` it starts a background read (one script call) and
decides with what it knows meanwhile. A read that finds the service open
opens the local breaker until the same moment (so every process offers its
trial calls at about the same time); one that finds the epoch bumped while
the local breaker is open or half-open closes it. Redis errors are logged and
leave the local breaker on its own.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket

import redis.asyncio as aioredis

from .._clock import SYSTEM_CLOCK, Clock
from .._hooks import NULL_HOOK, MetricsHook
from .._validate import check_number
from ..breaker import AsyncCircuitBreaker, BreakerPolicy, BreakerState, Ticket
from ._background import Background
from ._keys import service_key
from ._scripts import BREAKER_CLOSE, BREAKER_OPEN, BREAKER_READ

__all__ = ["SharedCircuitBreaker"]

#: How long the recovery counter lives after its last change, in ms.
_EPOCH_TTL_MS = 86_400_000

_DEFAULT_POLICY = BreakerPolicy()


class SharedCircuitBreaker(AsyncCircuitBreaker):
    """
    A circuit breaker for one service whose open state is shared through Redis.

    It is an `AsyncCircuitBreaker` (same methods, same statistics) that also
    publishes its openings and recoveries, and follows those of every other
    process using the same *service* and *key_prefix*: within about
    ``refresh_interval`` (plus one round trip) of one process opening, the
    others refuse calls with `CircuitOpenError` until the opening ends; a
    successful trial anywhere closes it everywhere. `reset` and `force_open`
    act on every process.

    Args:
        policy: When to open, probe and close (each process counts its own failures).
        redis: The client (see `redis_from_env`); use one per event loop.
        service: The name in keys, errors, metrics and statistics.
        key_prefix: Prefix of the keys.
        hook: Receives ``breaker_transition`` and ``breaker_rejected`` events.
        clock: The time source for the local state machine.
        refresh_interval: Seconds the local view of the shared state is trusted.

    Raises:
        ConfigurationError: *refresh_interval* is not > 0.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_applying",
        "_background",
        "_changes",
        "_close_script",
        "_epoch",
        "_keys",
        "_lock",
        "_next_sync",
        "_open_script",
        "_origin",
        "_outbox",
        "_read_script",
        "_refresh",
        "_syncing",
    )

    def __init__(
        self,
        policy: BreakerPolicy = _DEFAULT_POLICY,
        *,
        redis: aioredis.Redis,
        service: str = "default",
        key_prefix: str = "llmrl",
        hook: MetricsHook = NULL_HOOK,
        clock: Clock = SYSTEM_CLOCK,
        refresh_interval: float = 0.1,
    ) -> None:
        self._refresh = check_number("refresh_interval", refresh_interval, inclusive=False) or 0.0
        self._keys = [
            service_key(key_prefix, service, "breaker:open"),
            service_key(key_prefix, service, "breaker:epoch"),
        ]
        self._open_script = redis.register_script(BREAKER_OPEN)
        self._close_script = redis.register_script(BREAKER_CLOSE)
        self._read_script = redis.register_script(BREAKER_READ)
        self._origin = f"{socket.gethostname()}:{os.getpid()}"
        self._background = Background(f"SharedCircuitBreaker({service!r})")
        self._applying = False
        self._changes = 0
        self._lock = asyncio.Lock()
        self._syncing = False
        self._outbox: str | None = None
        self._epoch: int | None = None
        self._next_sync = -math.inf
        super().__init__(policy, service=service, hook=hook, clock=clock)

    @property
    def keys(self) -> tuple[str, str]:
        """The Redis keys: the open marker and the recovery counter."""
        return self._keys[0], self._keys[1]

    def admit(self) -> Ticket:
        """
        Let one call through, or refuse it; refresh the shared view if it is stale.

        Raises:
            CircuitOpenError: The breaker is open here or, as last seen, elsewhere.
        """
        if self._mono() >= self._next_sync:
            self._schedule_sync()
        return super().admit()

    def _admit_open(self) -> Ticket | None:
        if self._mono() >= self._next_sync:
            self._schedule_sync()
        return super()._admit_open()

    def reset(self) -> None:
        """Close the breaker in every process and forget this process's failures."""
        was_closed = self._closed
        super().reset()  # an open breaker publishes its closing from the transition
        if was_closed:
            self._publish("close")

    async def sync(self) -> float:
        """
        Publish this process's last transition, then read the shared state and follow it.

        `admit` does this in the background; call it to refresh at once.

        Returns:
            Seconds the service stays open as the shared state says (0: not open).

        .. versionadded:: 0.1.0
        """
        async with self._lock:  # one at a time, so no read overtakes this process's write
            changes = self._changes
            try:
                pttl, epoch = await self._exchange()
            finally:
                self._syncing = False
            if changes == self._changes:  # else the read may predate a change made meanwhile
                self._follow(pttl, epoch)
        return max(0, pttl) / 1000.0

    async def _exchange(self) -> tuple[int, int]:
        """Write the outbox, then read ``(open ms remaining, epoch)``."""
        keys = self._keys
        outbox, self._outbox = self._outbox, None
        try:
            if outbox == "open":
                ms = math.ceil(self.seconds_until_trial() * 1000.0)
                if ms > 0:
                    await self._open_script(keys=keys[:1], args=[ms, self._origin])
            elif outbox == "close":
                self._epoch = int(await self._close_script(keys=keys, args=[_EPOCH_TTL_MS]))
        except BaseException:
            if self._outbox is None:  # not superseded: try again at the next sync
                self._outbox = outbox
            raise
        pttl, epoch = await self._read_script(keys=keys)
        return int(pttl), int(epoch)

    async def flush(self) -> None:
        """
        Wait until the background publications and reads started so far are done.

        .. versionadded:: 0.1.0
        """
        await self._background.flush()

    # -- internals ------------------------------------------------------------------

    def _schedule_sync(self) -> None:
        self._next_sync = self._mono() + self._refresh
        if not self._syncing:
            # Outside a loop (a reset from sync code) the outbox waits for the next admit.
            self._syncing = self._background.spawn(self.sync())

    def _publish(self, what: str) -> None:
        self._outbox = what
        self._changes += 1
        self._syncing = False  # a newer sync must run even if one is in flight
        self._schedule_sync()

    def _follow(self, pttl_ms: int, epoch: int) -> None:
        """Bring the local breaker in line with the shared state just read."""
        seen, self._epoch = self._epoch, epoch
        state = self._current_state()
        if pttl_ms > 0:
            remaining = pttl_ms / 1000.0
            if (
                state == "closed"
                or (state == "half_open" and remaining > self._refresh)
                or (state == "open" and remaining > self.seconds_until_trial() + self._refresh)
            ):
                self._apply("open", remaining)
        elif seen is not None and epoch > seen and state != "closed":
            self._apply("closed", 0.0)

    def _apply(self, state: BreakerState, remaining: float) -> None:
        """Move the local breaker to *state* without publishing it back."""
        self._applying = True
        try:
            if state == "open":
                self._circuit.open()
                # Trials start when the shared opening ends, in every process.
                self._opened_at = self._mono() + remaining - self._policy.reset_timeout
            else:
                AsyncCircuitBreaker.reset(self)
        finally:
            self._applying = False

    def _on_transition(self, old: BreakerState, new: BreakerState) -> None:
        super()._on_transition(old, new)
        if self._applying:
            return
        if new == "open":
            self._publish("open")
        elif new == "closed" and old != "closed":
            self._publish("close")
