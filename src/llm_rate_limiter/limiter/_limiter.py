# SPDX-License-Identifier: MIT
"""
`ProviderLimiter`: requests, tokens and concurrency of one provider, on aiolimiter.

Each limit is an `aiolimiter.AsyncLimiter` leaky bucket (see `RateLimits` for
the sizes). The adapter keeps three things aiolimiter lacks, and so reads and
writes the buckets' ``_level`` / ``_last_check`` directly (aiolimiter 1.2-1.3
semantics: ``_level`` drains at ``_rate_per_sec`` and a bucket admits while
``_level + amount <= max_rate``); its own ``acquire`` and waiter heap are never
used, and nothing outside this module touches the buckets:

- **Arrival order.** aiolimiter wakes the smallest request first, so a large
  request can starve. Here one FIFO queue waits for all buckets and the
  concurrency slot together: only its head watches the clock; the others wait
  their turn. A call takes the fast path (no queue, no allocation but its
  `Permit`) only when nobody is queued and capacity is there.
- **Giving back and taking more.** Reconciling an estimate with the real usage
  lowers the token level (credit) or raises it above ``max_rate`` (debt, paid
  before the next admission); headers reporting less remaining than the bucket
  believes raise the level (an exhausted header fills the bucket).
- **Cooldown.** A 429 (or an exhausted header for a kind with no local
  bucket) pauses the whole provider; the buckets are set so that when the
  pause ends the request bucket has room for one request and the token bucket
  none, so waiters resume at the bucket's rate, not all at once.
- **Working rates** (``RateLimits.adaptive``). Announced limits and 429s move
  the buckets' rates below the configured ceiling (see ``_adaptive`` and
  ``_learning``); a 429 cuts the rate before the cooldown is set, so the
  waiters resume at the cut rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .._headers import RateLimitHeaders, parse_rate_limit_headers, server_pause
from ..exceptions import RequestTooLargeError
from ._buckets import _fill, _utilization
from ._core import LimiterCore
from ._permit import Permit
from ._stats import LimiterStatistics, build_statistics

__all__ = ["Permit", "ProviderLimiter"]

#: Pause after a 429 that says nothing about when to come back, in seconds.
DEFAULT_COOLDOWN = 1.0


class ProviderLimiter(LimiterCore):
    """
    Rate limits of one provider: requests, tokens, concurrency, cooldowns.

    Usage::

        async with limiter.acquire(estimated_tokens) as permit:
            response = await send()
            permit.settle(used_tokens=usage.total_tokens, headers=response_headers)

    Waiters are admitted in arrival order. Use one limiter per event loop.

    Args:
        limits: The limits to enforce.
        service: The provider name, used in errors and metrics.
        hook: Receives the limiter's events.
        dialect: The provider's rate-limit header dialect (one of
            ``RATE_LIMIT_DIALECTS``); None detects it from each response.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 *dialect*.
    """

    __slots__ = ()

    def acquire(self, tokens: float = 0.0) -> Permit:
        """
        Ask for one request carrying *tokens*; use the result with ``async with``.

        Args:
            tokens: The request's estimated token cost (prompt + completion).

        Returns:
            A `Permit`; entering it waits for a concurrency slot and for request
            and token capacity, in arrival order.

        Raises:
            RequestTooLargeError: *tokens* is above ``tokens_per_minute`` or
                ``tokens_per_day`` (raised here, at once).
            RateLimitTimeoutError: On entering, when the predicted wait is above
                ``max_wait``.
            ValueError: *tokens* is negative or NaN.

        .. versionadded:: 0.1.0
        """
        if not 0.0 <= tokens <= self._max_tokens:
            self._reject(tokens)
        return Permit(self, tokens)

    def _reject(self, tokens: float) -> None:
        if not tokens >= 0.0:
            msg = f"tokens must be a number >= 0, got {tokens!r}"
            raise ValueError(msg)
        self._deny(tokens, "too_large")
        raise RequestTooLargeError(self.service, tokens, self._max_tokens)

    def reconcile(
        self,
        charged: float,
        used: float,
        *,
        estimated: float | None = None,
        since: float | None = None,
    ) -> None:
        """
        Correct a charge of *charged* tokens to the *used* tokens a response reports.

        A debt (more used) raises the token buckets above their capacity, to be
        paid before the next admission; a credit lowers them and lets the head
        of the queue go sooner. `Permit.settle` calls this.

        Args:
            charged: Tokens charged so far for the request.
            used: Tokens the response used (``usage.total_tokens``).
            estimated: The original estimate when *charged* is an earlier
                settlement of the same request (None: first settlement, the
                estimate is *charged*).
            since: When the request was admitted (the loop's clock): a credit
                gives back only what of the charge is still in each bucket,
                not what has already drained out (and made room for others).

        .. versionadded:: 0.1.0
        """
        if not (used >= 0.0 and math.isfinite(used)):
            msg = f"used tokens must be a finite number >= 0, got {used!r}"
            raise ValueError(msg)
        delta = used - charged
        now = self._now()
        for bucket in (self._tok, self._day):
            if bucket is not None:
                change = delta
                if change < 0.0 and since is not None:
                    left = charged - (now - since) * bucket._rate_per_sec
                    change = max(change, -max(0.0, left))
                bucket._level = max(0.0, _fill(bucket, now) + change)
        stats = self._stats
        if now >= stats.window_end:
            stats.roll_window(now)
        stats.window_tokens = max(0.0, stats.window_tokens + delta)
        if estimated is None:
            stats.tokens_estimated += charged
            stats.tokens_used += used
        else:
            stats.tokens_used += delta
        est = charged if estimated is None else estimated
        self._hook.tokens_used(self.service, est, used)
        if delta < 0.0:
            self._poke()

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """
        Correct the buckets from a response's ``x-ratelimit-*`` headers.

        Remaining requests or tokens lower than the local bucket believes raise
        its level (never lower it): a remaining count of 0 fills the bucket,
        so the next call waits one request's (or its tokens') worth of the
        local rate. A remaining count of 0 for a kind that has no local bucket
        (say remaining tokens without ``tokens_per_minute``), or only a guessed
        one (neither configured nor announced), pauses the provider until the
        matching reset. Announced limits go to ``hook.server_limits_seen``;
        with ``RateLimits.adaptive`` a lower one becomes the working rate at
        once (the limit over its window, 60 s unless the dialect says).

        OpenAI's ``reset`` is the time until the server's bucket is *full*
        again, not until it admits the next request: pausing until it on every
        exhausted response would leave most of the capacity unused.

        Args:
            headers: The response headers.

        .. versionadded:: 0.1.0
        """
        self._observe(parse_rate_limit_headers(headers, dialect=self._dialect))

    def _observe(self, seen: RateLimitHeaders) -> None:
        if seen.limit_requests is not None or seen.limit_tokens is not None:
            self._hook.server_limits_seen(
                self.service, seen.requests_per_minute, seen.tokens_per_minute
            )
        now = self._now()
        learn = self._learn
        if learn is not None:
            self._refresh(now, "announced" if learn.announce(seen, now) else None)
        pause = 0.0
        for bucket, remaining, reset, kind in (
            (self._req, seen.remaining_requests, seen.reset_requests, "requests"),
            (self._tok, seen.remaining_tokens, seen.reset_tokens, "tokens"),
        ):
            if remaining is None:
                continue
            if bucket is not None:
                floor = bucket.max_rate - remaining
                if _fill(bucket, now) < floor:
                    bucket._level = floor
            guessed = bucket is None or (learn is not None and not learn.known(kind))
            if guessed and remaining < 1.0 and reset is not None:
                pause = max(pause, reset)
        if pause > 0.0:
            self.cooldown(pause)

    def on_rate_limited(
        self, retry_after: float | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """
        React to a 429 the server sent although the call passed this limiter.

        Counts a violation and pauses the whole provider for *retry_after*
        (else the ``retry-after``/``retry-after-ms`` header, else the reset of
        an exhausted kind, else 1 second); the headers also correct the
        buckets (see `observe_headers`). With ``RateLimits.adaptive`` the
        working rate of the exhausted kind is cut to 0.7x first (unless it
        was lowered less than a second ago, or nothing was admitted since the
        last cut), so the waiters resume at the cut rate.

        Args:
            retry_after: Seconds the server asked to wait, if known.
            headers: The 429 response's headers.

        .. versionadded:: 0.1.0
        """
        self._stats.violations += 1
        self._hook.rate_limit_violation(self.service, retry_after)
        pause = retry_after
        seen = None
        if headers is not None:
            pause = server_pause(headers, retry_after, dialect=self._dialect)
            seen = parse_rate_limit_headers(headers, dialect=self._dialect)
            self._observe(seen)
        if pause is None:
            pause = DEFAULT_COOLDOWN
        learn = self._learn
        if learn is not None:
            now, stats = self._now(), self._stats
            resume_at = max(self._cooldown_until, now + pause)
            cut = learn.throttle(seen, now, stats.admitted, stats.tokens_total, resume_at)
            self._refresh(now, "decrease" if cut else None)
        if pause > 0.0:
            self.cooldown(pause)

    def cooldown(self, seconds: float) -> None:
        """
        Pause the whole provider for *seconds*; waiters then resume at the bucket's rate.

        A shorter pause never cuts a longer one short.

        Args:
            seconds: The pause, finite and >= 0.

        .. versionadded:: 0.1.0
        """
        if not (seconds >= 0.0 and math.isfinite(seconds)):
            msg = f"cooldown seconds must be finite and >= 0, got {seconds!r}"
            raise ValueError(msg)
        now = self._now()
        until = now + seconds
        if until <= self._cooldown_until:
            return
        self._cooldown_until = until
        for bucket, room in ((self._req, 1.0), (self._tok, 0.0)):
            if bucket is not None:
                # Full (but for *room*) at the end of the pause, so no burst follows it.
                target = bucket.max_rate - room + seconds * bucket._rate_per_sec
                if _fill(bucket, now) < target:
                    bucket._level = target
        self._stats.cooldowns += 1
        self._hook.cooldown_started(self.service, seconds)

    def cooldown_remaining(self) -> float:
        """
        Seconds until the current cooldown ends (0 when none).

        .. versionadded:: 0.1.0
        """
        return max(0.0, self._cooldown_until - self._now())

    def statistics(self) -> LimiterStatistics:
        """
        A snapshot of the limiter's counters, windows and health.

        .. versionadded:: 0.1.0
        """
        now = self._now()
        learn = self._learn
        working = None
        requests = _utilization(self._req, now)
        if learn is not None:
            self._refresh(now)
            working = (learn.requests.rate * 60.0, learn.tokens.rate * 60.0)
            if learn.requests.state.phase == "slow_start":
                requests = None  # nothing known: no limit to be near
        return build_statistics(
            self.service,
            self.limits,
            self._stats,
            now,
            utilization=(requests, _utilization(self._tok, now)),
            working=working,
            rate_decreases=0 if learn is None else learn.decreases,
            cooldown_remaining=self._cooldown_until - now,
            in_flight=self._in_flight,
            queued=len(self._queue),
        )
