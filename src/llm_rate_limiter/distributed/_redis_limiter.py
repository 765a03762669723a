# SPDX-License-Identifier: MIT
"""
`RedisRateLimiter`: one provider's limits shared by many processes and hosts.

The same surface as the in-process `ProviderLimiter`, so `ResiliencePolicy`
can use either. Each admission is one atomic Lua script (``_scripts.ACQUIRE``)
that checks the shared cooldown, the request, token and daily buckets and the
concurrency leases, and either charges them all or returns how long to wait;
the caller sleeps that long (plus a little jitter, so processes do not come
back in step) and asks again. Nothing is charged before a request is admitted,
so a waiter that gives up or is cancelled leaves nothing behind.

Reconciliation, header corrections and cooldowns are written to Redis by
script in the background (the policy calls them synchronously); `flush`
waits for them. There is no queue across processes: waiters are served in
the order they find capacity, so a large token request can lose races to
small ones under contention.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .._headers import parse_rate_limit_headers, server_pause
from ..exceptions import RequestTooLargeError
from ..limiter._limiter import DEFAULT_COOLDOWN
from ..limiter._stats import LimiterStatistics, build_statistics
from ._redis_admission import Op, RedisLimiterCore, loop_now
from ._redis_permit import RedisPermit

__all__ = ["RedisRateLimiter"]


class RedisRateLimiter(RedisLimiterCore):
    """
    Rate limits of one provider shared through Redis: requests, tokens, concurrency, cooldowns.

    Every process (or host) that builds one for the same *service* and
    *key_prefix* draws from one budget. Usage is the same as `ProviderLimiter`::

        async with limiter.acquire(estimated_tokens) as permit:
            response = await send()
            permit.settle(used_tokens=usage.total_tokens, headers=response_headers)

    ``max_concurrency`` is shared too: a holder takes a lease in a sorted set,
    renewed every ``lease / 3`` seconds while held, so the slots of a crashed
    process come back after *lease* seconds.

    Args:
        redis: The client (see `redis_from_env`); use one per event loop.
        limits: The limits to enforce, in total across processes.
        service: The provider name: part of the keys, errors and metrics.
        key_prefix: Prefix of every key.
        hook: Receives this process's limiter events.
        lease: Seconds a concurrency slot outlives a holder that stopped renewing it.
        poll_interval: Longest sleep between two looks while waiting for a
            concurrency slot held by another process.

    Raises:
        ConfigurationError: *service* is empty, *lease* or *poll_interval* not > 0.

    .. versionadded:: 0.1.0
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
            ops = [("tok", self._tok, "add", delta), ("day", self._day, "add", delta)]
            self._background.spawn(self._adjust(0.0, ops))
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
        if ops:
            self._background.spawn(self._adjust(0.0, ops))
        if pause > 0.0:
            self.cooldown(pause)

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
        ops = [
            ("req", self._req, "floor", self._req[1] - 1.0 + seconds * self._req[0]),
            ("tok", self._tok, "floor", self._tok[1] + seconds * self._tok[0]),
        ]
        self._background.spawn(self._adjust(seconds, ops))
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

        .. versionadded:: 0.1.0
        """
        ms = int(await self._redis.pttl(self.keys["cool"]))
        return max(0, ms) / 1000.0

    def statistics(self) -> LimiterStatistics:
        """
        This process's view: its own admissions, waits and denials.

        Utilizations are the shared buckets' as of the last admission attempt.

        .. versionadded:: 0.1.0
        """
        now = loop_now()
        return build_statistics(
            self.service,
            self.limits,
            self._stats,
            now,
            utilization=self._utilization,
            cooldown_remaining=self._cooldown_until - now,
            in_flight=self._in_flight,
            queued=self._waiting,
        )

    def __repr__(self) -> str:
        return f"RedisRateLimiter(service={self.service!r}, limits={self.limits!r})"
