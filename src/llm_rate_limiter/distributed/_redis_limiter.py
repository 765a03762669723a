# SPDX-License-Identifier: MIT
"""
`RedisRateLimiter`: one provider's limits shared by many processes and hosts.

The same surface as the in-process `ProviderLimiter`, so `ResiliencePolicy`
can use either. Admission is one atomic Lua script per admitted call (see
``_redis_admission`` for the waiting, ``_scripts`` for the scripts), on the
server's clock. Reconciliation, header corrections and cooldowns are written
to Redis by script in the background (the policy calls them synchronously);
`flush` waits for them.

Redis itself may fail: every Redis operation is bounded by ``redis_timeout``
and a failure switches to the ``redis_failure`` mode until a probe (one a
second) finds Redis again; see ``_redis_base`` and ``_local_share``.

Needs Redis 6.0 or later (see ``_scripts``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .._headers import parse_rate_limit_headers, server_pause
from ..exceptions import RequestTooLargeError, SharedStateUnavailableError
from ..limiter._limiter import DEFAULT_COOLDOWN
from ..limiter._stats import build_statistics
from ._redis_admission import RedisLimiterCore
from ._redis_base import Op, loop_now
from ._redis_permit import RedisPermit
from ._redis_stats import RedisLimiterStatistics
from ._shared_state import Unavailable

__all__ = ["RedisRateLimiter"]


class RedisRateLimiter(RedisLimiterCore):
    """
    Rate limits of one provider shared through Redis: requests, tokens, concurrency, cooldowns.

    Every process (or host) that builds one for the same *service*,
    *key_prefix* and *fingerprint* draws from one budget. Usage is the same
    as `ProviderLimiter`::

        async with limiter.acquire(estimated_tokens) as permit:
            response = await send()
            permit.settle(used_tokens=usage.total_tokens, headers=response_headers)

    Calls of one limiter wait in a local FIFO queue whose head alone talks to
    Redis; at a saturated rate each admission costs one script call however
    many calls wait. ``max_concurrency`` is shared too: a holder takes a
    lease in a sorted set, renewed every ``lease / 3`` seconds (at most every
    *heartbeat_interval*) while held, so the slots of a crashed process come
    back within *lease* seconds; a waiter for a slot is woken by the release
    (``BLPOP``), with a fallback look every *poll_interval*. The Redis client
    must not be a single-connection client (the slot wait blocks one
    connection), and its ``socket_timeout`` must exceed a quarter of
    *redis_timeout* (the longest ``BLPOP`` it sends).

    When Redis fails (an error, or no answer within *redis_timeout*), a
    warning is logged once, ``hook.shared_state_changed(service, False)`` is
    called if the hook has it, and until a probe (one a second, in the
    background) finds Redis again:

    - ``redis_failure="open"`` (the default): each process limits itself to
      its share of the limits (divided by the live limiters it last counted
      through their heartbeats) with an in-process `ProviderLimiter`;
    - ``redis_failure="closed"``: calls fail at once with `SharedStateUnavailableError`.

    (Calls admitted through Redis before the outage and still in flight do
    not count against the local concurrency share.)

    On recovery (and after a Redis restart that lost the buckets) the request
    and token buckets restart full, so no burst above the limits follows the
    outage; the daily bucket gets the tokens admitted locally (see ``_local_share``).

    Args:
        redis: The client, one node or a Redis Cluster (see `redis_from_env`); use one
            per event loop.
        limits: The limits to enforce, in total across processes.
        service: The provider name: part of the keys, errors and metrics.
        key_prefix: Prefix of every key.
        hook: Receives this process's limiter events.
        lease: Seconds a concurrency slot outlives a holder that stopped
            renewing it (default 10).
        poll_interval: Longest wait between two looks for a free concurrency
            slot when no release is heard of (default 1).
        redis_failure: ``"open"`` or ``"closed"``: what calls get while Redis
            is unavailable.
        redis_timeout: Longest time any Redis operation may take, seconds
            (default 0.25).
        fingerprint: Distinguishes budgets of one *service*, such as two API
            keys (`key_fingerprint`); part of every key's hash tag.
        heartbeat_interval: Seconds between two heartbeats (default 2); a
            limiter counts as live for three of them after its last use.

    Raises:
        ConfigurationError: *service* is empty, *redis_failure* unknown, or
            *lease*, *poll_interval*, *redis_timeout* or *heartbeat_interval* not > 0.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       *redis_failure*, *redis_timeout*, *fingerprint*, *heartbeat_interval*;
       the default *lease* is 10 s (was 60), *poll_interval* 1 s (was 0.05).
    """

    # -- admission ------------------------------------------------------------------

    def acquire(self, tokens: float = 0.0) -> RedisPermit:
        """
        Ask for one request carrying *tokens*; use the result with ``async with``.

        Raises:
            RequestTooLargeError: *tokens* is above ``tokens_per_minute`` or
                ``tokens_per_day`` (raised here, at once).
            RateLimitTimeoutError: On entering, when the wait would pass ``max_wait``.
            ValueError: *tokens* is negative or NaN.

        .. versionadded:: 0.1.0
        """
        if not 0.0 <= tokens <= self.limits.max_request_tokens:
            if not tokens >= 0.0:
                msg = f"tokens must be a number >= 0, got {tokens!r}"
                raise ValueError(msg)
            self._deny(tokens, "too_large")
            raise RequestTooLargeError(self.service, tokens, self.limits.max_request_tokens)
        return RedisPermit(self, tokens)

    def reconcile(self, charged: float, used: float, *, estimated: float | None = None) -> None:
        """
        Correct a charge of *charged* tokens to the *used* tokens a response reports.

        The difference (debt or credit) goes to the shared token buckets, so
        every process pays or uses it. `RedisPermit.settle` calls this.

        .. versionadded:: 0.1.0
        """
        if not (used >= 0.0 and math.isfinite(used)):
            msg = f"used tokens must be a finite number >= 0, got {used!r}"
            raise ValueError(msg)
        delta = used - charged
        if delta:
            local = self._share.limiter
            if self._state.available or local is None:
                ops: list[Op] = [("tok", self._tok, "add", delta), ("day", self._day, "add", delta)]
                self._background.spawn(self._adjust(0.0, ops))
            else:
                local.reconcile(charged, used)
                self._share.admitted(delta)
        stats = self._stats
        stats.window_tokens = max(0.0, stats.window_tokens + delta)
        if estimated is None:
            stats.tokens_estimated += charged
            stats.tokens_used += used
        else:
            stats.tokens_used += delta
        self._hook.tokens_used(self.service, charged if estimated is None else estimated, used)

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """
        Correct the shared buckets from a response's ``x-ratelimit-*`` headers.

        As `ProviderLimiter.observe_headers`: a remaining count lower than the
        bucket believes raises its level (never lowers it); an exhausted kind
        without a bucket pauses the provider until its reset.

        .. versionadded:: 0.1.0
        """
        seen = parse_rate_limit_headers(headers)
        if seen.limit_requests is not None or seen.limit_tokens is not None:
            self._hook.server_limits_seen(self.service, seen.limit_requests, seen.limit_tokens)
        if not self._state.available:
            self._observe_locally(seen.remaining_requests, seen.remaining_tokens)
        ops: list[Op] = []
        pause = 0.0
        for name, spec, remaining, reset in (
            ("req", self._req, seen.remaining_requests, seen.reset_requests),
            ("tok", self._tok, seen.remaining_tokens, seen.reset_tokens),
        ):
            if remaining is None:
                continue
            if spec[0] > 0.0:
                ops.append((name, spec, "floor", spec[1] - remaining))
            elif remaining < 1.0 and reset is not None:
                pause = max(pause, reset)
        if ops and self._state.available:
            self._background.spawn(self._adjust(0.0, ops))
        if pause > 0.0:
            self.cooldown(pause)

    def _observe_locally(self, requests: float | None, tokens: float | None) -> None:
        """The provider's remaining counts, as this process's share of them, to the stand-in."""
        local = self._share.limiter
        if local is None:
            return
        live = self._share.live
        headers = {}
        if requests is not None and self._req[0] > 0.0:
            headers["x-ratelimit-remaining-requests"] = repr(requests / live)
        if tokens is not None and self._tok[0] > 0.0:
            headers["x-ratelimit-remaining-tokens"] = repr(tokens / live)
        if headers:
            local.observe_headers(headers)

    def on_rate_limited(
        self, retry_after: float | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """
        React to a 429: count a violation and pause every process for the server's wait.

        The pause is *retry_after*, else the ``retry-after(-ms)`` header, else
        the reset of an exhausted kind, else 1 second (see `cooldown`).

        .. versionadded:: 0.1.0
        """
        self._stats.violations += 1
        self._hook.rate_limit_violation(self.service, retry_after)
        pause = retry_after
        if headers is not None:
            pause = server_pause(headers, retry_after)
            self.observe_headers(headers)
        pause = DEFAULT_COOLDOWN if pause is None else pause
        if pause > 0.0:
            self.cooldown(pause)

    def cooldown(self, seconds: float) -> None:
        """
        Pause the provider for *seconds* in every process (a shared key with that expiry).

        This process honours it at once; others at their next look. A shorter
        pause never cuts a longer one short; when it ends, the request bucket
        has room for one request and the token bucket none, so callers resume
        at the bucket's rate.

        .. versionadded:: 0.1.0
        """
        if not (seconds >= 0.0 and math.isfinite(seconds)):
            msg = f"cooldown seconds must be finite and >= 0, got {seconds!r}"
            raise ValueError(msg)
        now = loop_now()
        if now + seconds <= self._cooldown_until or seconds == 0.0:
            return
        self._cooldown_until = now + seconds
        local = self._share.limiter
        if self._state.available or local is None:
            self._background.spawn(self._adjust(seconds, self._cooldown_ops(seconds)))
        else:  # published when Redis is back (re-seeding)
            local.cooldown(seconds)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)  # a waiting head looks again
        self._stats.cooldowns += 1
        self._hook.cooldown_started(self.service, seconds)

    # -- state ----------------------------------------------------------------------

    def cooldown_remaining(self) -> float:
        """
        Seconds until the cooldown this process knows of ends (0 when none).

        It knows of its own and of those it met at admission; for the shared
        value read `shared_cooldown_remaining`.

        .. versionadded:: 0.1.0
        """
        return max(0.0, self._cooldown_until - loop_now())

    async def shared_cooldown_remaining(self) -> float:
        """
        Read the shared cooldown from Redis: seconds until it ends (0 when none).

        Raises:
            SharedStateUnavailableError: Redis did not answer (in either mode).

        .. versionadded:: 0.1.0
        """
        key = self.keys["cool"]
        try:
            ms = int(await self._state.call(lambda: self._redis.pttl(key)))
        except Unavailable as exc:
            raise SharedStateUnavailableError(self.service, exc.reason) from None
        return max(0, ms) / 1000.0

    @property
    def shared_state_available(self) -> bool:
        """
        Whether the limits are shared through Redis now (False during an outage).

        .. versionadded:: 0.2.0
        """
        return self._state.available

    def statistics(self) -> RedisLimiterStatistics:
        """
        This process's view: its own admissions, waits and denials, and Redis's availability.

        Utilizations are the shared buckets' as of the last admission attempt
        (during an outage, the local stand-in's).

        .. versionadded:: 0.1.0
        .. versionchanged:: 0.2.0
           A `RedisLimiterStatistics`, with ``shared_state_available`` and
           ``live_processes``.
        """
        now = loop_now()
        utilization = self._utilization
        local = self._share.limiter
        if local is not None:
            seen = local.statistics()
            utilization = (seen.request_utilization, seen.token_utilization)
        base = build_statistics(
            self.service,
            self.limits,
            self._stats,
            now,
            utilization=utilization,
            cooldown_remaining=self._cooldown_until - now,
            in_flight=self._in_flight,
            queued=self._waiting,
        )
        return RedisLimiterStatistics.extend(
            base,
            available=self._state.available,
            live=self._keeper.live,
            failure=self.redis_failure,
        )

    def __repr__(self) -> str:
        return f"RedisRateLimiter(service={self.service!r}, limits={self.limits!r})"
