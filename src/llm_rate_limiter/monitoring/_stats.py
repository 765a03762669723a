# SPDX-License-Identifier: MIT
"""
Per-service state of the metrics collector and its comprehensive snapshot.

`ServiceState` is a bag of counters, fixed-size deques and a `MinuteWindow`;
the collector mutates it in O(1) per event. `service_snapshot` turns it into
a flat dict of more than 25 metrics (the seed's lists for the limiter, the
breaker and the retries), computed only when asked.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .._errors import RetryErrorType
from ._recent import RecentWindow
from ._timeline import HealthTimeline, window_metrics
from ._window import MinuteWindow, percentile

__all__ = [
    "CONFIG_KEYS",
    "LATENCY_BUCKETS",
    "WAIT_BUCKETS",
    "ServiceState",
    "bump",
    "service_snapshot",
]

#: The limits `MetricsCollector.register_service` accepts.
CONFIG_KEYS = (
    "requests_per_minute",
    "tokens_per_minute",
    "max_concurrency",
    "fail_max",
    "reset_timeout",
    "max_retries",
)

#: Upper bounds (seconds) of the call-latency histogram: the buckets the
#: OpenTelemetry GenAI conventions advise for ``gen_ai.client.operation.duration``.
LATENCY_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
#: Upper bounds (seconds) of the limiter-wait histogram: 0 (admitted at once) to a minute.
WAIT_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

#: Distinct keys kept in free-form counters (denial reasons, fallback targets).
MAX_KEYS = 32
#: Breaker transitions kept per service.
TRANSITION_HISTORY = 50


def bump(counter: dict[str, int], key: str) -> None:
    """Add one to *counter[key]*, folding keys past `MAX_KEYS` into ``"other"``."""
    if key in counter or len(counter) < MAX_KEYS:
        counter[key] = counter.get(key, 0) + 1
    else:
        counter["other"] = counter.get("other", 0) + 1


class ServiceState:
    """The counters and bounded histories of one service."""

    __slots__ = (
        "attempt_failures",
        "attempt_latency_total",
        "attempts",
        "breaker_opens",
        "breaker_rejections",
        "breaker_state",
        "breaker_transitions",
        "call_latency_max",
        "call_latency_total",
        "calls_cancelled",
        "calls_failed",
        "calls_shed",
        "calls_started",
        "calls_succeeded",
        "config",
        "cooldown_seconds",
        "cooldowns",
        "denial_reasons",
        "denials",
        "errors",
        "failure_kinds",
        "fallback_reasons",
        "fallback_targets",
        "fallbacks",
        "first_token_count",
        "first_token_total",
        "half_opens",
        "last_retry_after",
        "last_transition_at",
        "latency_buckets",
        "peak_in_flight",
        "pending_error",
        "quota_exhausted",
        "rate_decreases",
        "recent",
        "recent_latencies",
        "recent_outcomes",
        "recoveries",
        "recovery_failures",
        "retried_calls",
        "retries",
        "retry_budget_refused",
        "retry_delay_total",
        "retry_errors",
        "retry_gave_up",
        "server_limit_requests",
        "server_limit_tokens",
        "shared_outages",
        "shared_unavailable",
        "shed_pending",
        "shed_to_fallback",
        "succeeded_after_retry",
        "timeline",
        "tokens_estimated",
        "tokens_reported",
        "tokens_used",
        "transitions",
        "violations",
        "wait_buckets",
        "wait_max",
        "wait_total",
        "waits",
        "window",
        "working_known",
        "working_requests",
        "working_tokens",
    )

    def __init__(
        self,
        config: dict[str, float | int | None],
        history_size: int,
        window_seconds: float = 60.0,
        now: float = 0.0,
    ) -> None:
        self.config = config
        self.calls_started = self.calls_succeeded = self.calls_failed = 0
        self.calls_cancelled = self.peak_in_flight = self.retried_calls = 0
        self.calls_shed = self.shed_to_fallback = 0
        # A shed call hands over to its fallback (if any) before any other event
        # of its service: the flag pairs the two (cleared by the next call event).
        self.shed_pending = False
        # The error kind the next failed call ends with (its last attempt's, or the
        # give-up's); failed calls by that kind.
        self.pending_error: RetryErrorType | None = None
        self.failure_kinds: dict[RetryErrorType, int] = {}
        self.recent = RecentWindow(window_seconds)
        self.timeline = HealthTimeline(now, self.recent.bucket(now))
        self.succeeded_after_retry = 0
        self.call_latency_total = self.call_latency_max = 0.0
        self.recent_latencies: deque[float] = deque(maxlen=history_size)
        # Calls per latency bucket (slot i: LATENCY_BUCKETS[i-1] < latency <= LATENCY_BUCKETS[i],
        # the last slot above every bound); not cumulative, the exporter sums them.
        self.latency_buckets: list[int] = [0] * (len(LATENCY_BUCKETS) + 1)
        self.recent_outcomes: deque[str] = deque(maxlen=history_size)
        self.attempts = self.attempt_failures = 0
        self.attempt_latency_total = 0.0
        self.errors: dict[RetryErrorType, int] = {}
        self.waits = self.denials = self.violations = self.cooldowns = 0
        self.wait_total = self.wait_max = self.cooldown_seconds = 0.0
        self.wait_buckets: list[int] = [0] * (len(WAIT_BUCKETS) + 1)
        self.denial_reasons: dict[str, int] = {}
        self.last_retry_after: float | None = None
        self.server_limit_requests: float | None = None
        self.server_limit_tokens: float | None = None
        # The adaptive limiter's working rates per minute, once it reported any.
        self.working_known = False
        self.working_requests: float | None = None
        self.working_tokens: float | None = None
        self.rate_decreases = 0
        self.tokens_estimated = self.tokens_used = 0.0
        self.tokens_reported = 0
        self.breaker_state = "closed"
        self.breaker_transitions = self.breaker_opens = self.half_opens = 0
        self.recoveries = self.recovery_failures = self.breaker_rejections = 0
        self.last_transition_at: float | None = None
        self.transitions: deque[tuple[float, str, str]] = deque(maxlen=TRANSITION_HISTORY)
        self.retries = self.retry_gave_up = self.retry_budget_refused = 0
        self.retry_delay_total = 0.0
        self.retry_errors: dict[RetryErrorType, int] = {}
        self.fallbacks = 0
        self.fallback_targets: dict[str, int] = {}
        self.fallback_reasons: dict[RetryErrorType, int] = {}
        self.first_token_count = 0
        self.first_token_total = 0.0
        self.quota_exhausted = 0
        self.shared_unavailable = False
        self.shared_outages = 0
        self.window = MinuteWindow()


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _per_limit(value: float, limit: float | int | None) -> float | None:
    return value / limit if limit else None


def _by_kind(counter: dict[RetryErrorType, int]) -> dict[str, int]:
    return {kind.value: n for kind, n in sorted(dict(counter).items(), key=lambda kv: -kv[1])}


def service_snapshot(name: str, s: ServiceState, now: float) -> dict[str, Any]:
    """Return the comprehensive metrics of service *name* at monotonic time *now*."""
    cfg = s.config
    finished = s.calls_succeeded + s.calls_failed
    latencies = list(s.recent_latencies)
    outcomes = list(s.recent_outcomes)
    judged_recent = sum(1 for o in outcomes if o not in ("cancelled", "shed"))
    requests_minute = s.window.rate("calls", now)
    tokens_minute = s.window.rate("tokens", now)
    peak_requests = s.window.peak("calls", now)
    recovery_attempts = s.recoveries + s.recovery_failures
    errors = dict(s.errors)  # a copy: a scrape may run in another thread
    top_error = max(errors.items(), key=lambda kv: kv[1])[0].value if errors else None
    return {
        "service": name,
        # Request volume and outcomes.
        "total_requests": s.calls_started,
        "served_requests": s.calls_succeeded,
        "successful_requests": s.calls_succeeded,
        "failed_requests": s.calls_failed,
        "failures_by_kind": _by_kind(s.failure_kinds),
        "cancelled_requests": s.calls_cancelled,
        "shed_requests": s.calls_shed,
        "shed_to_fallback": s.shed_to_fallback,
        "shed_unserved": s.calls_shed - s.shed_to_fallback,
        "in_flight": s.calls_started - finished - s.calls_cancelled - s.calls_shed,
        "peak_in_flight": s.peak_in_flight,
        "success_rate": _ratio(s.calls_succeeded, finished) if finished else 1.0,
        "failure_rate": _ratio(s.calls_failed, finished),
        "recent_success_rate": (
            _ratio(outcomes.count("success"), judged_recent) if judged_recent else 1.0
        ),
        "recent_failure_rate": _ratio(outcomes.count("failure"), judged_recent),
        "recent_calls": judged_recent,
        "requests_last_hour": int(s.window.total("calls", now)),
        "failures_last_hour": int(s.window.total("failures", now)),
        # The health window (the last window_seconds).
        **window_metrics(s.recent, s.recent.bucket(now)),
        # Latency.
        "average_response_time": _ratio(s.attempt_latency_total, s.attempts),
        "average_call_latency": _ratio(s.call_latency_total, finished),
        "max_call_latency": s.call_latency_max,
        "p50_latency": percentile(latencies, 50),
        "p95_latency": percentile(latencies, 95),
        "p99_latency": percentile(latencies, 99),
        "average_time_to_first_token": (
            _ratio(s.first_token_total, s.first_token_count) if s.first_token_count else None
        ),
        # Attempts and errors.
        "total_attempts": s.attempts,
        "failed_attempts": s.attempt_failures,
        "attempt_failure_rate": _ratio(s.attempt_failures, s.attempts),
        "error_patterns": _by_kind(errors),
        "most_common_error": top_error,
        "authentication_failures": errors.get(RetryErrorType.AUTHENTICATION, 0),
        "quota_exhausted": s.quota_exhausted,
        "shared_state_unavailable": s.shared_unavailable,
        "shared_state_outages": s.shared_outages,
        # Rate limiter.
        "configured_requests_per_minute": cfg.get("requests_per_minute"),
        "configured_tokens_per_minute": cfg.get("tokens_per_minute"),
        "configured_max_concurrency": cfg.get("max_concurrency"),
        "server_limit_requests": s.server_limit_requests,
        "server_limit_tokens": s.server_limit_tokens,
        # The rates the limiter admits at now (the configured ones unless it adapts).
        "working_requests_per_minute": (
            s.working_requests if s.working_known else cfg.get("requests_per_minute")
        ),
        "working_tokens_per_minute": (
            s.working_tokens if s.working_known else cfg.get("tokens_per_minute")
        ),
        "rate_decreases": s.rate_decreases,
        "requests_last_minute": requests_minute,
        "tokens_last_minute": tokens_minute,
        "peak_requests_per_minute": peak_requests,
        "peak_tokens_per_minute": s.window.peak("tokens", now),
        "utilization": _per_limit(requests_minute, cfg.get("requests_per_minute")),
        "token_utilization": _per_limit(tokens_minute, cfg.get("tokens_per_minute")),
        "peak_utilization": _per_limit(peak_requests, cfg.get("requests_per_minute")),
        "concurrency_utilization": _per_limit(s.peak_in_flight, cfg.get("max_concurrency")),
        "limiter_admissions": s.waits,
        "average_wait_time": _ratio(s.wait_total, s.waits),
        "max_wait_time": s.wait_max,
        "total_wait_time": s.wait_total,
        "denials": s.denials,
        "denial_rate": _ratio(s.denials, s.waits + s.denials),
        "denial_reasons": dict(s.denial_reasons),
        "rate_limit_violations": s.violations,
        "violation_rate": _ratio(s.violations, s.attempts),
        "last_retry_after": s.last_retry_after,
        "cooldowns": s.cooldowns,
        "cooldown_seconds": s.cooldown_seconds,
        # Tokens.
        "tokens_estimated": s.tokens_estimated,
        "tokens_used": s.tokens_used,
        "token_estimate_error": (
            _ratio(s.tokens_used - s.tokens_estimated, s.tokens_estimated)
            if s.tokens_reported
            else None
        ),
        # Circuit breaker.
        "circuit_state": s.breaker_state,
        "configured_fail_max": cfg.get("fail_max"),
        "configured_reset_timeout": cfg.get("reset_timeout"),
        "breaker_transitions": s.breaker_transitions,
        "breaker_openings": s.breaker_opens,
        "breaker_rejections": s.breaker_rejections,
        "recovery_attempts": s.half_opens,
        "recovery_successes": s.recoveries,
        "recovery_failures": s.recovery_failures,
        "recovery_success_rate": (
            _ratio(s.recoveries, recovery_attempts) if recovery_attempts else None
        ),
        "seconds_in_state": None if s.last_transition_at is None else now - s.last_transition_at,
        "recent_transitions": [
            {"at": at, "from": old, "to": new} for at, old, new in list(s.transitions)[-10:]
        ],
        # Retries.
        "configured_max_retries": cfg.get("max_retries"),
        "retries": s.retries,
        "retries_per_request": _ratio(s.retries, s.calls_started),
        "retried_requests": s.retried_calls,
        "succeeded_after_retry": s.succeeded_after_retry,
        "retry_success_rate": (
            _ratio(s.succeeded_after_retry, s.retried_calls) if s.retried_calls else None
        ),
        "retry_gave_up": s.retry_gave_up,
        "retry_budget_refused": s.retry_budget_refused,
        "total_retry_delay": s.retry_delay_total,
        "retry_error_distribution": _by_kind(s.retry_errors),
        # Fallbacks.
        "fallbacks_taken": s.fallbacks,
        "fallback_rate": _ratio(s.fallbacks, s.calls_started),
        "fallback_targets": dict(s.fallback_targets),
        "fallback_reasons": _by_kind(s.fallback_reasons),
    }
