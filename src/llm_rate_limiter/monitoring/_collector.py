# SPDX-License-Identifier: MIT
"""
`MetricsCollector`: the `MetricsHook` that records every event, cheaply and boundedly.

Recording is synchronous and O(1): a few counter updates, one append to a
fixed-size deque, one slot of a 60-bucket minute ring, one slot of the health
window's 40-bucket ring and, for call latencies and limiter waits, one slot of
a fixed-bucket histogram (a bisect into a tuple of bounds). Snapshots, health,
issue analysis and reports are computed only when asked. The events about
calls (their outcomes) are recorded by `CallRecorder` (`_calls`).
"""

from __future__ import annotations

from bisect import bisect_left

from .._clock import SYSTEM_CLOCK, Clock
from .._errors import RetryErrorType
from .._validate import check_int, check_number
from ._calls import CallRecorder
from ._health import HealthThresholds
from ._recent import RecentWindow
from ._stats import CONFIG_KEYS, WAIT_BUCKETS, ServiceState, bump
from ._timeline import HealthTimeline
from ._views import MetricsViews

#: The kind of failure a limiter denial ends its call with, by denial reason.
_DENIAL_KINDS = {"max_wait": RetryErrorType.RATE_LIMIT, "too_large": RetryErrorType.PERMANENT}

__all__ = ["MetricsCollector"]


class MetricsCollector(CallRecorder, MetricsViews):
    """
    Record events from the policy parts and tell how healthy each service is.

    It implements every `MetricsHook` method (plus `quota_exhausted`); the
    snapshots, health, issues and report come from `MetricsViews`. Memory is
    bounded per service: the last *history_size* calls, 60 one-minute buckets,
    the 40 buckets of the health window (two windows of
    ``thresholds.window_seconds``), counters keyed by error type, and the last
    50 breaker transitions.

    Args:
        thresholds: Limits for health statuses and issue detection. Setting
            ``collector.thresholds`` to a different ``window_seconds`` starts
            every health window afresh.
        clock: Where time comes from (the minute buckets, breaker durations).
        history_size: Calls kept per service for percentiles and recent success.

    Raises:
        ConfigurationError: *history_size* below 1.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        thresholds: HealthThresholds = HealthThresholds(),  # noqa: B008 -- frozen, shared safely
        clock: Clock = SYSTEM_CLOCK,
        history_size: int = 100,
    ) -> None:
        self._thresholds = thresholds
        self._clock = clock
        self._history_size = check_int("history_size", history_size, minimum=1)
        self._configs: dict[str, dict[str, float | int | None]] = {}
        self._services: dict[str, ServiceState] = {}
        self._started = clock.monotonic()

    # -- configuration -------------------------------------------------------

    @property
    def thresholds(self) -> HealthThresholds:
        """The limits for health statuses and issue detection."""
        return self._thresholds

    @thresholds.setter
    def thresholds(self, value: HealthThresholds) -> None:
        self._thresholds = value
        now = self._clock.monotonic()
        for s in list(self._services.values()):
            if s.recent.window_seconds != value.window_seconds:
                s.recent = RecentWindow(value.window_seconds)
                s.timeline = HealthTimeline(now, s.recent.bucket(now))

    def _state(self, config: dict[str, float | int | None]) -> ServiceState:
        window = self._thresholds.window_seconds
        return ServiceState(config, self._history_size, window, self._clock.monotonic())

    def register_service(
        self,
        service: str,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        max_concurrency: int | None = None,
        fail_max: int | None = None,
        reset_timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        """
        Declare *service* and its configured limits.

        The limits let the collector compute utilization and make specific
        recommendations ("lower requests_per_minute from 600 to 500"). Calling
        it again replaces the limits and keeps the recorded data.

        Raises:
            ConfigurationError: A negative limit.

        .. versionadded:: 0.1.0
        """
        values = (
            requests_per_minute,
            tokens_per_minute,
            max_concurrency,
            fail_max,
            reset_timeout,
            max_retries,
        )
        config = {
            key: check_number(key, value, allow_none=True)
            for key, value in zip(CONFIG_KEYS, values, strict=True)
        }
        for key in ("max_concurrency", "fail_max", "max_retries"):
            if config[key] is not None:
                config[key] = int(config[key])  # type: ignore[arg-type]
        self._configs[service] = config
        state = self._services.get(service)
        if state is None:
            self._services[service] = self._state(config)
        else:
            state.config = config

    def _add(self, service: str) -> ServiceState:
        config = self._configs.setdefault(service, dict.fromkeys(CONFIG_KEYS))
        state = self._services[service] = self._state(config)
        return state

    # -- MetricsHook ---------------------------------------------------------

    def limiter_waited(self, service: str, seconds: float, tokens: float) -> None:
        """Count an admission and its wait."""
        s = self._services.get(service) or self._add(service)
        s.waits += 1
        r = s.recent
        now = self._clock.monotonic()
        r.admissions[r.index if r.lo <= now < r.hi else r.slot(now)] += 1
        s.wait_total += seconds
        s.wait_buckets[bisect_left(WAIT_BUCKETS, seconds)] += 1
        if seconds > s.wait_max:
            s.wait_max = seconds

    def limiter_denied(self, service: str, reason: str) -> None:
        """Count a denial and its reason."""
        s = self._services.get(service) or self._add(service)
        s.denials += 1
        bump(s.denial_reasons, reason)
        s.pending_error = _DENIAL_KINDS.get(reason)
        now = self._clock.monotonic()
        w = s.window
        w.denials[w.slot(now)] += 1
        r = s.recent
        r.denials[r.at(now)] += 1

    def rate_limit_violation(self, service: str, retry_after: float | None) -> None:
        """Count a server 429 that came despite local limiting."""
        s = self._services.get(service) or self._add(service)
        s.violations += 1
        s.last_retry_after = retry_after
        r = s.recent
        r.violations[r.at(self._clock.monotonic())] += 1

    def cooldown_started(self, service: str, seconds: float) -> None:
        """Count a limiter pause and its length."""
        s = self._services.get(service) or self._add(service)
        s.cooldowns += 1
        s.cooldown_seconds += seconds

    def server_limits_seen(
        self, service: str, limit_requests: float | None, limit_tokens: float | None
    ) -> None:
        """Remember the provider's announced limits."""
        s = self._services.get(service) or self._add(service)
        if limit_requests is not None:
            s.server_limit_requests = limit_requests
        if limit_tokens is not None:
            s.server_limit_tokens = limit_tokens

    def working_rate_changed(
        self,
        service: str,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        reason: str,
    ) -> None:
        """
        Keep an adaptive limiter's working rates; count the cuts.

        .. versionadded:: 0.2.0
        """
        s = self._services.get(service) or self._add(service)
        s.working_known = True
        s.working_requests = requests_per_minute
        s.working_tokens = tokens_per_minute
        if reason == "decrease":
            s.rate_decreases += 1

    def tokens_used(self, service: str, estimated: float, used: float | None) -> None:
        """Add the tokens consumed (the usage when known, else the estimate)."""
        s = self._services.get(service) or self._add(service)
        s.tokens_estimated += estimated
        if used is None:
            used = estimated
        else:
            s.tokens_reported += 1
        s.tokens_used += used
        w = s.window
        w.tokens[w.slot(self._clock.monotonic())] += used

    def breaker_transition(self, service: str, old: str, new: str) -> None:
        """Record a breaker transition, counting openings and recoveries."""
        s = self._services.get(service) or self._add(service)
        now = self._clock.monotonic()
        s.breaker_state = new
        s.breaker_transitions += 1
        s.last_transition_at = now
        s.transitions.append((now, old, new))
        if new == "open":
            s.breaker_opens += 1
            if old == "half_open":
                s.recovery_failures += 1
        elif new == "half_open":
            s.half_opens += 1
        elif old == "half_open":
            s.recoveries += 1

    def breaker_rejected(self, service: str) -> None:
        """Count a call the breaker refused."""
        s = self._services.get(service) or self._add(service)
        s.breaker_rejections += 1

    def first_token(self, service: str, seconds: float) -> None:
        """Add a stream's time to first token."""
        s = self._services.get(service) or self._add(service)
        s.first_token_count += 1
        s.first_token_total += seconds

    def shared_state_changed(self, service: str, available: bool) -> None:
        """
        Note that the shared state (Redis) of *service* became unavailable, or came back.

        .. versionadded:: 0.2.0
        """
        s = self._services.get(service) or self._add(service)
        if not available and not s.shared_unavailable:
            s.shared_outages += 1
        s.shared_unavailable = not available

    def quota_exhausted(self, service: str) -> None:
        """
        Count a 429 ``insufficient_quota`` (a billing state, not a rate).

        .. versionadded:: 0.1.0
        """
        s = self._services.get(service) or self._add(service)
        s.quota_exhausted += 1
        r = s.recent
        r.quota[r.at(self._clock.monotonic())] += 1
