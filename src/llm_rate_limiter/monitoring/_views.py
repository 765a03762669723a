# SPDX-License-Identifier: MIT
"""
The read side of `MetricsCollector`: snapshots, health, issues and the report.

Computed only when asked, from copies of the bounded per-service state, so a
scrape from another thread (Prometheus) sees a consistent-enough picture.
"""

from __future__ import annotations

from typing import Any

from .._clock import Clock
from ._health import HealthThresholds, system_health
from ._issues import analyze, service_issues
from ._report import performance_report
from ._stats import CONFIG_KEYS, ServiceState, service_snapshot
from ._timeline import judge

__all__ = ["BREAKER_KEYS", "LIMITER_KEYS", "MetricsViews"]

#: The keys of `service_snapshot` that describe the rate limiter.
LIMITER_KEYS = (
    "configured_requests_per_minute",
    "configured_tokens_per_minute",
    "configured_max_concurrency",
    "server_limit_requests",
    "server_limit_tokens",
    "working_requests_per_minute",
    "working_tokens_per_minute",
    "rate_decreases",
    "requests_last_minute",
    "tokens_last_minute",
    "peak_requests_per_minute",
    "peak_tokens_per_minute",
    "utilization",
    "token_utilization",
    "peak_utilization",
    "concurrency_utilization",
    "limiter_admissions",
    "average_wait_time",
    "max_wait_time",
    "total_wait_time",
    "denials",
    "denial_rate",
    "denial_reasons",
    "rate_limit_violations",
    "violation_rate",
    "last_retry_after",
    "cooldowns",
    "cooldown_seconds",
    "tokens_estimated",
    "tokens_used",
    "token_estimate_error",
)

#: The keys of `service_snapshot` that describe the circuit breaker.
BREAKER_KEYS = (
    "circuit_state",
    "configured_fail_max",
    "configured_reset_timeout",
    "breaker_transitions",
    "breaker_openings",
    "breaker_rejections",
    "recovery_attempts",
    "recovery_successes",
    "recovery_failures",
    "recovery_success_rate",
    "seconds_in_state",
    "recent_transitions",
    "failure_rate",
    "attempt_failure_rate",
    "average_response_time",
    "total_requests",
    "error_patterns",
    "most_common_error",
)


class MetricsViews:
    """
    Queries over the recorded state; `MetricsCollector` inherits them.

    .. versionadded:: 0.1.0
    """

    thresholds: HealthThresholds
    _clock: Clock
    _history_size: int
    _configs: dict[str, dict[str, float | int | None]]
    _services: dict[str, ServiceState]
    _started: float

    # -- snapshots -----------------------------------------------------------

    def services(self) -> list[str]:
        """Return the services seen or registered, in order of first appearance."""
        return list(self._services)

    def _snapshots(self) -> dict[str, dict[str, Any]]:
        now = self._clock.monotonic()
        return {name: service_snapshot(name, s, now) for name, s in list(self._services.items())}

    def _state_of(self, service: str) -> ServiceState:
        """The state of *service*, or a fresh one (not kept) if unknown."""
        return self._services.get(service) or ServiceState(
            self._configs.get(service, dict.fromkeys(CONFIG_KEYS)),
            self._history_size,
            self.thresholds.window_seconds,
            self._clock.monotonic(),
        )

    def _judge(self, name: str, m: dict[str, Any]) -> dict[str, Any]:
        """The health of service *name* from its snapshot *m*, with trend and last change."""
        s = self._state_of(name)
        now = self._clock.monotonic()
        return judge(m, s.recent, s.timeline, s.transitions, self.thresholds, now)

    def _healths(self, snapshots: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {name: self._judge(name, m) for name, m in snapshots.items()}

    def service_metrics(self, service: str) -> dict[str, Any]:
        """
        Return the comprehensive metrics of *service* (an empty service if unknown).

        .. versionadded:: 0.1.0
        """
        return service_snapshot(service, self._state_of(service), self._clock.monotonic())

    def rate_limiter_stats(self) -> dict[str, dict[str, Any]]:
        """
        Return each service's limiter metrics with its health (the seed's
        ``get_comprehensive_rate_limiter_stats``).

        .. versionadded:: 0.1.0
        """
        return {name: self._subset(name, m, LIMITER_KEYS) for name, m in self._snapshots().items()}

    def circuit_breaker_stats(self) -> dict[str, dict[str, Any]]:
        """
        Return each service's breaker metrics with its health (the seed's
        ``get_comprehensive_circuit_breaker_stats``).

        .. versionadded:: 0.1.0
        """
        return {name: self._subset(name, m, BREAKER_KEYS) for name, m in self._snapshots().items()}

    def _subset(self, name: str, m: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        health = self._judge(name, m)
        return {key: m[key] for key in keys} | {
            "health_status": health["status"],
            "health_score": health["health_score"],
            "health_trend": health["trend"],
        }

    def service_status(self, service: str) -> dict[str, Any]:
        """
        Return one service's health, reasons, trend, issues and metrics.

        Health judges the window (``thresholds.window_seconds``); ``trend``
        (``"recovering"``, ``"worsening"`` or ``"stable"``) compares the score
        with that of one window earlier, and ``seconds_since_change`` tells how
        long the status has held.

        .. versionadded:: 0.1.0
        """
        m = self.service_metrics(service)
        health = self._judge(service, m)
        return {
            "service": service,
            **health,
            "issues": service_issues(m, self.thresholds),
            "metrics": m,
        }

    def health(self) -> dict[str, Any]:
        """
        Return ``{"status", "health_score", "trend", "services": {name: {...}}}``.

        Each service's entry: ``status``, ``health_score``, ``reasons``,
        ``trend``, ``seconds_since_change``, ``previous_status``,
        ``window_seconds`` and ``window_calls`` (see `service_status`).

        .. versionadded:: 0.1.0
        .. versionchanged:: 0.3.0
           Health judges the window; ``trend`` and ``seconds_since_change`` added.
        """
        return system_health(self._healths(self._snapshots()))

    def analyze_issues(self) -> dict[str, Any]:
        """
        Return ``{"issues_found", "issues", "recommendations"}`` for every service.

        .. versionadded:: 0.1.0
        """
        snapshots = self._snapshots()
        return analyze(snapshots, self._healths(snapshots), self.thresholds)

    def performance_report(self) -> dict[str, Any]:
        """
        Return the system performance report (see `performance_report`).

        .. versionadded:: 0.1.0
        """
        snapshots = self._snapshots()
        per_service = self._healths(snapshots)
        states = list(self._services.values())
        return performance_report(
            snapshots,
            [x for s in states for x in list(s.recent_latencies)],
            sum(s.attempt_latency_total for s in states),
            system_health(per_service),
            analyze(snapshots, per_service, self.thresholds),
            self._clock.time(),
            self._clock.monotonic() - self._started,
        )

    def reset(self) -> None:
        """
        Forget every recorded event; registered limits are kept.

        .. versionadded:: 0.1.0
        """
        now = self._started = self._clock.monotonic()
        window = self.thresholds.window_seconds
        self._services = {
            name: ServiceState(config, self._history_size, window, now)
            for name, config in self._configs.items()
        }
