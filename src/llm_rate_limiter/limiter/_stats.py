# SPDX-License-Identifier: MIT
"""
What a `ProviderLimiter` records, and the `LimiterStatistics` snapshot of it.

Recording is O(1) on every admission and denial (counters, a fixed minute
window and bounded deques); percentiles and rates are computed only when a
snapshot is asked for.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ._limits import RateLimits

__all__ = ["HealthStatus", "LimiterStatistics", "build_statistics"]

#: Health of a limiter, as the seed names it.
HealthStatus = Literal["healthy", "degraded", "critical"]

#: How many recent admissions the wait samples keep.
WAIT_SAMPLES = 1000
#: How many recent waits / denials the histories keep.
HISTORY = 100
#: How many closed minute windows the request history keeps.
MINUTES = 60
#: Denial rate above which the limiter is degraded (the seed's 10%).
DEGRADED_DENIAL_RATE = 0.10
#: Denial rate above which the limiter is critical.
CRITICAL_DENIAL_RATE = 0.50
#: Server 429s per admitted request above which the limiter is degraded / critical.
DEGRADED_VIOLATION_RATE = 0.01
CRITICAL_VIOLATION_RATE = 0.10
_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class LimiterStatistics:
    """
    A snapshot of one provider limiter.

    Attributes:
        service: The provider.
        admitted: Calls admitted so far.
        denied: Calls refused so far (``max_wait`` or ``too_large``).
        denied_max_wait: Calls refused because their predicted wait was too long.
        denied_too_large: Calls refused because they could never fit.
        denial_rate: Denied share of the decisions of the current and the
            previous minute window.
        success_rate: Admitted share of the same decisions (``1 - denial_rate``).
        average_wait: Mean wait of the last 1000 admissions (those that did
            not wait count as 0), seconds.
        p95_wait: 95th percentile wait of the last 1000 admissions, seconds.
        max_wait_seen: Longest wait of the last 1000 admissions, seconds.
        request_utilization: How full the request bucket is now (0..1; None: no limit).
        token_utilization: How full the token bucket is now (0..1; None: no limit).
        requests_this_minute: Requests admitted in the current minute window.
        tokens_this_minute: Tokens admitted (estimates, reconciled) in the current minute.
        peak_requests_per_minute: Most requests admitted in one minute window.
        peak_tokens_per_minute: Most tokens admitted in one minute window.
        peak_usage_rate: Highest share of a per-minute limit used in one window
            (requests or tokens, whichever is higher; 0 without limits).
        tokens_estimated: Sum of the estimates of settled calls.
        tokens_used: Sum of the usage reported by settled calls.
        violations: 429s from the server despite local limiting.
        cooldowns: Cooldowns started (429s and exhausted headers).
        cooldown_remaining: Seconds until the current cooldown ends.
        in_flight: Calls holding a concurrency slot now.
        queued: Calls waiting for capacity now.
        health_status: ``"critical"`` when the denial rate is above 50% or
            server 429s exceed 10% of admissions; ``"degraded"`` above 10% and
            1%; else ``"healthy"``.
        recent_waits: Last 100 admissions that waited, as
            ``(loop time, tokens, seconds waited)``.
        request_history: The last 60 closed minute windows, as
            ``(window start, requests, tokens, denials)``.
        recent_denials: Last 100 denials as ``(loop time, tokens, reason)``.
        working_requests_per_minute: The request rate the limiter admits at now:
            the configured rate, or with ``RateLimits.adaptive`` the working
            rate it learned (None: no limit).
        working_tokens_per_minute: The same for tokens.
        rate_decreases: Times a 429 cut a working rate.

    .. versionadded:: 0.1.0
    .. versionadded:: 0.2.0
       ``working_requests_per_minute``, ``working_tokens_per_minute`` and
       ``rate_decreases``.
    """

    service: str
    admitted: int
    denied: int
    denied_max_wait: int
    denied_too_large: int
    denial_rate: float
    success_rate: float
    average_wait: float
    p95_wait: float
    max_wait_seen: float
    request_utilization: float | None
    token_utilization: float | None
    requests_this_minute: int
    tokens_this_minute: float
    peak_requests_per_minute: int
    peak_tokens_per_minute: float
    peak_usage_rate: float
    tokens_estimated: float
    tokens_used: float
    violations: int
    cooldowns: int
    cooldown_remaining: float
    in_flight: int
    queued: int
    health_status: HealthStatus
    recent_waits: tuple[tuple[float, float, float], ...]
    request_history: tuple[tuple[float, int, float, int], ...]
    recent_denials: tuple[tuple[float, float, str], ...]
    working_requests_per_minute: float | None = None
    working_tokens_per_minute: float | None = None
    rate_decreases: int = 0


class LimiterRecorder:
    """
    Mutable counters and bounded histories behind `LimiterStatistics` (internal).

    The limiter writes the fields directly. On its hot path (no wait) it only
    rolls the minute window when ``now >= window_end`` and adds to
    ``window_requests`` / ``window_tokens``; a call that waited also appends
    ``(time, tokens, waited, admission number)`` to `waits`, so the waits of
    the last admissions are known exactly (those not in `waits` waited 0).
    """

    __slots__ = (
        "closed_tokens",
        "cooldowns",
        "denial_history",
        "denied_max_wait",
        "denied_too_large",
        "minutes",
        "peak_requests",
        "peak_tokens",
        "prev_denials",
        "prev_requests",
        "tokens_estimated",
        "tokens_used",
        "total_requests",
        "violations",
        "waits",
        "window_denials",
        "window_end",
        "window_requests",
        "window_tokens",
    )

    def __init__(self) -> None:
        self.denied_max_wait = 0
        self.denied_too_large = 0
        self.violations = 0
        self.cooldowns = 0
        self.tokens_estimated = 0.0
        self.tokens_used = 0.0
        self.waits: deque[tuple[float, float, float, int]] = deque(maxlen=WAIT_SAMPLES)
        self.minutes: deque[tuple[float, int, float, int]] = deque(maxlen=MINUTES)
        self.denial_history: deque[tuple[float, float, str]] = deque(maxlen=HISTORY)
        self.window_end = -math.inf
        self.window_requests = 0
        self.window_tokens = 0.0
        self.window_denials = 0
        self.prev_requests = 0
        self.prev_denials = 0
        self.total_requests = 0
        self.closed_tokens = 0.0
        self.peak_requests = 0
        self.peak_tokens = 0.0

    @property
    def admitted(self) -> int:
        """Requests admitted so far."""
        return self.total_requests + self.window_requests

    @property
    def tokens_total(self) -> float:
        """Tokens admitted so far (estimates, reconciled)."""
        return self.closed_tokens + self.window_tokens

    def record_admission(self, now: float, tokens: float, waited: float) -> None:
        """Count one admission of *tokens* at *now*, after *waited* seconds (the slow paths)."""
        if now >= self.window_end:
            self.roll_window(now)
        self.window_requests += 1
        self.window_tokens += tokens
        if waited > 0.0:
            self.waits.append((now, tokens, waited, self.admitted - 1))

    def roll_window(self, now: float) -> None:
        """Close the current minute window (keeping its peaks) and open the one holding *now*."""
        end = (now // _WINDOW + 1.0) * _WINDOW
        adjacent = end - _WINDOW == self.window_end
        if self.window_end != -math.inf:
            self.minutes.append(
                (
                    self.window_end - _WINDOW,
                    self.window_requests,
                    self.window_tokens,
                    self.window_denials,
                )
            )
        self.prev_requests = self.window_requests if adjacent else 0
        self.prev_denials = self.window_denials if adjacent else 0
        self.total_requests += self.window_requests
        self.closed_tokens += self.window_tokens
        self.peak_requests = max(self.peak_requests, self.window_requests)
        self.peak_tokens = max(self.peak_tokens, self.window_tokens)
        self.window_requests = 0
        self.window_tokens = 0.0
        self.window_denials = 0
        self.window_end = end

    def denial(self, now: float, tokens: float, reason: str) -> None:
        """Record a refused call."""
        if reason == "too_large":
            self.denied_too_large += 1
        else:
            self.denied_max_wait += 1
        if now >= self.window_end:
            self.roll_window(now)
        self.window_denials += 1
        self.denial_history.append((now, tokens, reason))

    def denial_rate(self, now: float) -> float:
        """Denied share of the decisions in the current and the previous minute window."""
        if now >= self.window_end:
            self.roll_window(now)
        denied = self.window_denials + self.prev_denials
        decided = denied + self.window_requests + self.prev_requests
        return denied / decided if decided else 0.0


def recent_waits(recorder: LimiterRecorder) -> tuple[float, float, float]:
    """Mean, 95th percentile (nearest rank) and max wait of the last admissions."""
    admitted = recorder.admitted
    count = min(admitted, WAIT_SAMPLES)
    if not count:
        return 0.0, 0.0, 0.0
    first = admitted - count
    waited = sorted(w for _, _, w, number in recorder.waits if number >= first)
    rank = max(0, math.ceil(0.95 * count) - 1)
    zeros = count - len(waited)
    p95 = 0.0 if rank < zeros else waited[rank - zeros]
    return sum(waited) / count, p95, waited[-1] if waited else 0.0


def health(denial_rate: float, violation_rate: float) -> HealthStatus:
    """Classify a limiter from its recent denial rate and its server-429 rate."""
    if denial_rate > CRITICAL_DENIAL_RATE or violation_rate > CRITICAL_VIOLATION_RATE:
        return "critical"
    if denial_rate > DEGRADED_DENIAL_RATE or violation_rate > DEGRADED_VIOLATION_RATE:
        return "degraded"
    return "healthy"


def build_statistics(
    service: str,
    limits: RateLimits,
    stats: LimiterRecorder,
    now: float,
    *,
    utilization: tuple[float | None, float | None],
    cooldown_remaining: float,
    in_flight: int,
    queued: int,
    working: tuple[float, float] | None = None,
    rate_decreases: int = 0,
) -> LimiterStatistics:
    """
    The `LimiterStatistics` snapshot of a recorder (shared by every limiter kind).

    *working*: the working request and token rates per minute (``inf``: no
    limit); None reports the configured ones.
    """
    if working is None:
        working_requests, working_tokens = limits.requests_per_minute, limits.tokens_per_minute
    else:
        working_requests, working_tokens = (r if math.isfinite(r) else None for r in working)
    denial_rate = stats.denial_rate(now)
    requests, tokens = stats.window_requests, stats.window_tokens
    average_wait, p95_wait, max_wait = recent_waits(stats)
    peak_req = max(stats.peak_requests, requests)
    peak_tok = max(stats.peak_tokens, tokens)
    peak_rate = 0.0
    if limits.requests_per_minute:
        peak_rate = peak_req / limits.requests_per_minute
    if limits.tokens_per_minute:
        peak_rate = max(peak_rate, peak_tok / limits.tokens_per_minute)
    admitted = stats.admitted
    violation_rate = stats.violations / admitted if admitted else 0.0
    return LimiterStatistics(
        service=service,
        admitted=admitted,
        denied=stats.denied_max_wait + stats.denied_too_large,
        denied_max_wait=stats.denied_max_wait,
        denied_too_large=stats.denied_too_large,
        denial_rate=denial_rate,
        success_rate=1.0 - denial_rate,
        average_wait=average_wait,
        p95_wait=p95_wait,
        max_wait_seen=max_wait,
        request_utilization=utilization[0],
        token_utilization=utilization[1],
        requests_this_minute=requests,
        tokens_this_minute=tokens,
        peak_requests_per_minute=peak_req,
        peak_tokens_per_minute=peak_tok,
        peak_usage_rate=peak_rate,
        tokens_estimated=stats.tokens_estimated,
        tokens_used=stats.tokens_used,
        violations=stats.violations,
        cooldowns=stats.cooldowns,
        cooldown_remaining=max(0.0, cooldown_remaining),
        in_flight=in_flight,
        queued=queued,
        health_status=health(denial_rate, violation_rate),
        recent_waits=tuple((t, n, w) for t, n, w, _ in stats.waits)[-HISTORY:],
        request_history=tuple(stats.minutes),
        recent_denials=tuple(stats.denial_history),
        working_requests_per_minute=working_requests,
        working_tokens_per_minute=working_tokens,
        rate_decreases=rate_decreases,
    )
