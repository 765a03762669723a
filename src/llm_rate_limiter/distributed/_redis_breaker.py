# SPDX-License-Identifier: MIT
"""
`SharedCircuitBreaker`: an `AsyncCircuitBreaker` whose state every process shares through Redis.

Each process keeps its own pybreaker-driven state machine and exchanges with
Redis in one atomic script per sync (`_breaker_scripts`): it publishes its
openings and recoveries, frees, renews and asks for trial slots, and reads
the shared state back. Syncs run in the background, one at a time
(`SyncScheduler`): when `admit` finds the view older than
``refresh_interval``, at once after a local transition, and every
``refresh_interval`` while calls wait on a breaker that is not closed.

A half-open trial call needs a slot from Redis as well as a local one, so
``half_open_max_calls`` holds across every process (`TrialSlots`). A call
that finds none spare is refused (a waiting call keeps waiting) and the next
sync asks for one; a grant wakes the waiters. The trial's outcome frees the
slot; a success closes the breaker everywhere, a failure re-opens it.

Every exchange is bounded by ``redis_timeout``; one that fails makes the
shared state unavailable (`SharedStateLink`) until a probe, at most every
`PROBE_INTERVAL` seconds, is answered: then what happened meanwhile is
published and the shared state followed again.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import time
import uuid
from typing import Literal

from .._clock import SYSTEM_CLOCK, Clock
from .._hooks import NULL_HOOK, MetricsHook
from .._validate import check_number
from ..breaker import AsyncCircuitBreaker, BreakerPolicy, BreakerState, Ticket
from ..exceptions import ConfigurationError
from ._breaker_link import PROBE_INTERVAL, UNAVAILABLE, SharedStateLink
from ._breaker_schedule import SyncScheduler
from ._breaker_scripts import BREAKER_SYNC, parse_reply, sync_args
from ._breaker_trials import TrialSlots
from ._keys import service_key
from ._redis_client import RedisClient, redis_address

__all__ = ["SharedCircuitBreaker"]

_DEFAULT_POLICY = BreakerPolicy()


class SharedCircuitBreaker(AsyncCircuitBreaker):
    """
    A circuit breaker for one service whose state is shared through Redis.

    It is an `AsyncCircuitBreaker` (same methods, same statistics) that also
    publishes its openings and recoveries and follows those of every process
    using the same *service*, *key_prefix* and *fingerprint*: within about
    ``refresh_interval`` (plus one round trip) of one process opening, the
    others refuse calls with `CircuitOpenError` until the opening ends; then
    at most ``half_open_max_calls`` trial calls go out across all processes,
    and a successful one closes the breaker everywhere. `reset` and
    `force_open` act on every process. See the module docstring for Redis
    being down or slow.

    Args:
        policy: When to open, probe and close (each process counts its own failures).
        redis: The client, one node or a Redis Cluster (see `redis_from_env`); use one
            per event loop.
        service: The name in keys, errors, metrics and statistics.
        key_prefix: Prefix of the keys.
        hook: Receives ``breaker_transition`` and ``breaker_rejected`` events, and
            ``shared_state_changed(service, available)`` if it has that method.
        clock: The time source for the local state machine.
        refresh_interval: Seconds the local view of the shared state is trusted.
        redis_failure: While Redis is unavailable (from an exchange it refused or
            did not answer within *redis_timeout* until a probe is answered),
            ``"open"`` runs the breaker locally, ``"closed"`` makes `admit` and
            waiting calls raise `SharedStateUnavailableError`.
        redis_timeout: Seconds any exchange with Redis may take.
        fingerprint: Part of every key (see `key_fingerprint`): one shared
            breaker per API key.

    Raises:
        ConfigurationError: *refresh_interval* or *redis_timeout* is not > 0,
            *redis_failure* is neither ``"open"`` nor ``"closed"``, or *service* is empty.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Shared half-open trial quota; *redis_failure*, *redis_timeout*, *fingerprint*.
    """

    __slots__ = (
        "_applying",
        "_changes",
        "_epoch",
        "_keys",
        "_link",
        "_next_sync",
        "_opening",
        "_origin",
        "_outbox",
        "_refresh",
        "_refuse",
        "_script",
        "_sync",
        "_trials",
    )

    def __init__(
        self,
        policy: BreakerPolicy = _DEFAULT_POLICY,
        *,
        redis: RedisClient,
        service: str = "default",
        key_prefix: str = "llmrl",
        hook: MetricsHook = NULL_HOOK,
        clock: Clock = SYSTEM_CLOCK,
        refresh_interval: float = 0.1,
        redis_failure: Literal["open", "closed"] = "open",
        redis_timeout: float = 0.25,
        fingerprint: str | None = None,
    ) -> None:
        self._refresh = check_number("refresh_interval", refresh_interval, inclusive=False) or 0.0
        timeout = check_number("redis_timeout", redis_timeout, inclusive=False) or 0.0
        if redis_failure not in ("open", "closed"):
            msg = f"must be 'open' or 'closed', got {redis_failure!r}"
            raise ConfigurationError("redis_failure", msg)
        key = functools.partial(service_key, key_prefix, service, fingerprint=fingerprint)
        self._keys = (key("breaker:open"), key("breaker:epoch"), key("breaker:trial"))
        self._script = redis.register_script(BREAKER_SYNC)
        self._origin = f"{socket.gethostname()}:{os.getpid()}"
        link = functools.partial(SharedStateLink, redis, service=service, hook=hook)
        self._link = link(failure=redis_failure, timeout=timeout, key=self._keys[0])
        self._trials = TrialSlots(self._origin)
        self._sync = SyncScheduler(
            f"SharedCircuitBreaker({service!r})",
            self._exchange,
            lambda: self._link.available,
            lambda: redis_address(redis, self._keys[0]),
        )
        self._applying = False
        self._changes = 0
        self._outbox: tuple[str, str] | None = None  # ("open", opening id) or ("close", expected)
        self._opening = ""  # the shared opening last published or followed
        self._epoch: int | None = None
        self._next_sync = -math.inf
        self._refuse = False  # failing closed while Redis is unavailable
        super().__init__(policy, service=service, hook=hook, clock=clock)

    @property
    def keys(self) -> tuple[str, str, str]:
        """The Redis keys: the open marker, the recovery epoch and the trial slots."""
        return self._keys

    @property
    def shared_state_available(self) -> bool:
        """False from an exchange with Redis that failed until one succeeds again."""
        return self._link.available

    def admit(self) -> Ticket:
        """
        Let one call through, or refuse it; refresh the shared view if it is stale.

        Raises:
            CircuitOpenError: The breaker is open here or, as last seen, elsewhere;
                or half-open with no trial slot free here or in Redis.
            SharedStateUnavailableError: ``redis_failure="closed"`` and Redis is unavailable.
        """
        self._look()
        return super().admit()

    def reset(self) -> None:
        """Close the breaker in every process and forget this process's failures."""
        super().reset()
        self._publish(("close", "*"))  # a reset by hand ends whatever opening is in force

    async def sync(self) -> float:
        """
        Exchange with Redis now: publish, free and ask for trial slots, read and follow.

        `admit` does this in the background; call it to refresh at once. A
        Redis that fails or takes over ``redis_timeout`` is handled as in the
        background (see `shared_state_available`), never raised.

        Returns:
            Seconds the service stays open as the shared state says (0: not
            open, or Redis did not answer).

        .. versionadded:: 0.1.0
        """
        return await self._sync.now()

    async def flush(self) -> None:
        """
        Wait until the background exchanges started so far are done.

        .. versionadded:: 0.1.0
        """
        await self._sync.flush()

    async def aclose(self) -> None:
        """
        Stop the background work, then send what is pending (within ``redis_timeout``).

        The breaker keeps working afterwards, on this process's state alone.

        .. versionadded:: 0.2.0
        """
        await self._sync.stop()
        if self._link.available and (self._outbox is not None or self._trials.freeing):
            await self._sync.now()

    # -- the breaker's overridable steps ---------------------------------------------

    def _admit_open(self) -> Ticket | None:
        self._look()
        if not self._link.available or self._sync.stopped:  # the local quota alone
            return super()._admit_open()
        if self._current_state() != "half_open" or self._probes >= self._policy.half_open_max_calls:
            return None
        trials = self._trials
        if not trials.take():
            trials.wanted = True
            if time.monotonic() >= trials.next_ask:
                self._sync.kick()
            return None
        return super()._admit_open()

    def _release_probe(self) -> None:
        if self._probes > 0 and self._trials.give_back():
            self._sync.kick()  # free the slot for the other processes at once
        super()._release_probe()

    def _on_transition(self, old: BreakerState, new: BreakerState) -> None:
        super()._on_transition(old, new)
        if old != new:
            self._trials.drop()
        if self._applying:
            return
        if new == "open":
            self._opening = f"{self._origin}:{uuid.uuid4().hex[:8]}"
            self._publish(("open", self._opening))
        elif new == "closed" and old != "closed":
            self._publish(("close", self._opening))

    # -- the exchange with Redis -----------------------------------------------------

    async def _exchange(self) -> float:
        """One exchange (one at a time: see `SyncScheduler`); Redis errors are handled."""
        changes = self._changes
        outbox, self._outbox = self._outbox, None
        trials = self._trials
        now = time.monotonic()
        trials.expire(now, self._refresh)
        freeing, trials.freeing = trials.freeing, []
        max_trials = self._policy.half_open_max_calls
        wanted = trials.ask(self._state == "half_open", max_trials - self._probes, len(self._room))
        publish_open = outbox is not None and outbox[0] == "open"
        ms = math.ceil(self.seconds_until_trial() * 1000.0) if publish_open else 0
        args = sync_args(outbox, ms, max_trials, freeing, trials.held, wanted)
        try:
            reply = await self._link.call(self._script, self._keys, args)
        except BaseException as exc:
            if self._outbox is None:  # not superseded: send it with the next exchange
                self._outbox = outbox
            trials.free(freeing)
            if not isinstance(exc, UNAVAILABLE):
                raise
            self._unreachable(exc)
            return 0.0
        pttl, epoch, opening, granted, wait = parse_reply(reply)
        self._next_sync = self._mono() + self._refresh  # the view is fresh
        if self._link.answered():
            self._refuse = False
        if changes == self._changes:  # else the read may predate a change made meanwhile
            self._follow(pttl, epoch, opening)
        tokens = trials.answered(wanted, granted, wait, now, self._refresh)
        if tokens and self._current_state() == "half_open":
            trials.keep(tokens, now)
            self._room.wake()
        elif tokens:  # no longer half-open: give them back
            trials.free(tokens)
            self._sync.kick()
        self._rearm(now)
        return max(0, pttl) / 1000.0

    def _follow(self, pttl_ms: int, epoch: int, opening: str) -> None:
        """Bring the local breaker in line with the shared state just read."""
        seen, self._epoch = self._epoch, epoch
        state = self._current_state()
        if pttl_ms > 0:
            self._opening = opening
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

    def _unreachable(self, exc: BaseException) -> None:
        """An exchange failed: mark the shared state unavailable and probe again later."""
        if self._link.failed(exc):
            self._refuse = self._link.fails_closed
            self._room.wake()  # failing open: local trials; closed: the waiters are refused
        self._sync.arm(PROBE_INTERVAL, replace=True)

    # -- scheduling ------------------------------------------------------------------

    def _look(self) -> None:
        """Refuse while failing closed; refresh the shared view if it is stale."""
        if self._refuse:
            raise self._link.unavailable()
        if self._mono() >= self._next_sync:
            self._next_sync = self._mono() + self._refresh
            self._sync.kick()

    def _publish(self, what: tuple[str, str]) -> None:
        self._outbox = what
        self._changes += 1
        self._sync.kick()

    def _rearm(self, now: float) -> None:
        """After an exchange: when the next one is due although nobody calls `admit`."""
        due = self._trials.due(now, self._refresh)
        if len(self._room) and not self._closed:  # waiters: notice a recovery elsewhere
            due = self._refresh if due is None else min(due, self._refresh)
        if due is not None:
            self._sync.arm(due)
