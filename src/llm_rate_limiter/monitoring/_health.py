# SPDX-License-Identifier: MIT
"""
Health: thresholds, a 0-100 score and a healthy / degraded / critical status.

Everything here works on the metric snapshots of `service_snapshot`, never on
the collector's live state, so it can run at any time without locks. Health is
about now: it judges the ``window_*`` metrics (the last ``window_seconds``),
while the snapshot's totals feed the report and the issue detectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._validate import check_int, check_number
from ..exceptions import ConfigurationError

__all__ = ["HealthThresholds", "judged", "service_health", "system_health", "window_judged"]

HEALTHY, DEGRADED, CRITICAL = "healthy", "degraded", "critical"
_RANK = {HEALTHY: 0, DEGRADED: 1, CRITICAL: 2}
#: Highest score a degraded (critical) service can have.
_DEGRADED_CAP, _CRITICAL_CAP = 79.0, 49.0


def _rate(setting: str, value: float) -> float:
    number = check_number(setting, value, minimum=0.0)
    assert number is not None
    if number > 1.0:
        msg = f"must be a fraction in [0, 1], got {number:g}"
        raise ConfigurationError(setting, msg)
    return number


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """
    The limits that decide health statuses and which issues are reported.

    The defaults are the seed's: at least 95% successful calls is healthy, a
    failure rate above 20%, a denial rate above 10% and an average response
    above 10 s are problems. Health judges these rates over the last
    *window_seconds* (60 s by default) once at least *window_min_calls* calls
    ended in it; the issue detectors judge the totals once *min_calls* calls
    started.

    Attributes:
        healthy_success_rate: Success rate (of calls that ended) at or above
            which a service is healthy.
        max_failure_rate: Failure rate above which a service is critical and
            ``elevated_failure_rate`` is reported.
        max_denial_rate: Share of limiter decisions that were denials above
            which ``high_rate_limit_denial`` is reported.
        max_average_response_time: Average attempt latency, in seconds, above
            which ``slow_responses`` is reported.
        max_retries_per_call: Retries per call above which ``retry_storm`` is
            reported.
        max_fallback_rate: Share of calls handed to a fallback above which
            ``fallback_overuse`` is reported.
        max_violation_rate: Share of attempts answered 429 despite local limiting
            above which ``limits_above_provider`` is reported.
        min_calls: Calls a service must have started before the issue
            detectors judge its total rates (fewer calls: too little data).
        window_seconds: The health window, in seconds on the collector's
            clock: health scores the calls that ended in it, so a provider
            that recovered is healthy again once its failures are older than
            this (or outnumbered enough by clean calls). Read when the
            collector creates a service's state.
        window_min_calls: Calls (served or failed) that must have ended in the
            window before its rates are judged; with fewer, only the breaker's
            state counts (an idle service is healthy).

    Raises:
        ConfigurationError: A rate outside [0, 1], a non-positive response time
            or window, a negative retry ratio, or a negative ``min_calls`` or
            ``window_min_calls``.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.3.0
       Health judges a time window: *window_seconds* and *window_min_calls*.
    """

    healthy_success_rate: float = 0.95
    max_failure_rate: float = 0.20
    max_denial_rate: float = 0.10
    max_average_response_time: float = 10.0
    max_retries_per_call: float = 1.0
    max_fallback_rate: float = 0.20
    max_violation_rate: float = 0.01
    min_calls: int = 10
    window_seconds: float = 60.0
    window_min_calls: int = 10

    def __post_init__(self) -> None:
        for name in (
            "healthy_success_rate",
            "max_failure_rate",
            "max_denial_rate",
            "max_fallback_rate",
            "max_violation_rate",
        ):
            object.__setattr__(self, name, _rate(name, getattr(self, name)))
        slow = check_number(
            "max_average_response_time", self.max_average_response_time, inclusive=False
        )
        object.__setattr__(self, "max_average_response_time", slow)
        retries = check_number("max_retries_per_call", self.max_retries_per_call)
        object.__setattr__(self, "max_retries_per_call", retries)
        check_int("min_calls", self.min_calls)
        window = check_number("window_seconds", self.window_seconds, inclusive=False)
        object.__setattr__(self, "window_seconds", window)
        check_int("window_min_calls", self.window_min_calls)


def judged(m: dict[str, Any], t: HealthThresholds) -> bool:
    """Tell whether service metrics *m* have enough calls for total rates to mean something."""
    return bool(m["total_requests"] >= max(1, t.min_calls))


def window_judged(m: dict[str, Any], t: HealthThresholds) -> bool:
    """Tell whether the window of service metrics *m* has enough calls to be judged."""
    return bool(m["window_calls"] >= max(1, t.window_min_calls))


def service_health(m: dict[str, Any], t: HealthThresholds) -> dict[str, Any]:
    """
    Score one service from its metrics *m*.

    Rates are those of the window (the ``window_*`` keys: the last
    ``window_seconds``), judged once ``window_min_calls`` calls ended in it.
    Shed calls (turned away by the open breaker) and cancelled ones are
    neither successes nor failures; an open breaker counts by its state.
    Status: critical when the breaker is open or the failure rate is above
    ``max_failure_rate``; degraded when the breaker is half-open, the success
    rate is under ``healthy_success_rate``, any other threshold is crossed, or
    authentication or quota failures occurred in the window; healthy otherwise.

    Score: 100 minus penalties: ``200 x (1 - success rate)`` (at most 60),
    ``100 x denial rate`` (at most 20), ``10 x average / threshold`` when slow
    (at most 20), 40 for an open breaker (20 half-open), 10 each for a retry
    storm, fallback overuse and limit violations, 20 for authentication or
    quota failures; then at most 79 when degraded and 49 when critical.

    Returns:
        ``{"status", "health_score", "reasons"}``.
    """
    reasons: list[str] = []
    critical: list[str] = []
    penalty = 0.0
    state = m["circuit_state"]
    if state == "open":
        critical.append("circuit breaker open")
        penalty += 40
    elif state == "half_open":
        reasons.append("circuit breaker half-open")
        penalty += 20
    if m["window_authentication_failures"] or m["window_quota_exhausted"]:
        reasons.append("authentication or quota failures")
        penalty += 20
    if window_judged(m, t):
        # Health is about now: rates over the window, so a provider that has
        # recovered is healthy again; the report keeps the totals.
        success = m["window_success_rate"]
        failure = m["window_failure_rate"]
        denial = m["window_denial_rate"]
        average = m["window_average_response_time"]
        penalty += min(60.0, 200.0 * (1.0 - success)) + min(20.0, 100.0 * denial)
        if failure > t.max_failure_rate:
            critical.append(f"failure rate {failure:.1%} > {t.max_failure_rate:.0%}")
        elif success < t.healthy_success_rate:
            reasons.append(f"success rate {success:.1%} < {t.healthy_success_rate:.0%}")
        if denial > t.max_denial_rate:
            reasons.append(f"denial rate {denial:.1%} > {t.max_denial_rate:.0%}")
        slow = average / t.max_average_response_time
        if slow > 1.0:
            reasons.append(f"average response {average:.1f}s")
            penalty += min(20.0, 10.0 * slow)
        for key, limit, label in (
            ("window_retries_per_request", t.max_retries_per_call, "retry storm"),
            ("window_fallback_rate", t.max_fallback_rate, "fallback overuse"),
            ("window_violation_rate", t.max_violation_rate, "server 429s despite local limits"),
        ):
            if m[key] > limit:
                reasons.append(label)
                penalty += 10
    score = max(0.0, 100.0 - penalty)
    if critical:
        status, score = CRITICAL, min(score, _CRITICAL_CAP)
    elif reasons:
        status, score = DEGRADED, min(score, _DEGRADED_CAP)
    else:
        status = HEALTHY
    return {"status": status, "health_score": round(score, 1), "reasons": critical + reasons}


def system_health(per_service: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """
    Combine service healths: the worst status, the mean score (capped by status).

    The trend is ``"worsening"`` when any service worsens, else
    ``"recovering"`` when any recovers, else ``"stable"``.

    Returns:
        ``{"status", "health_score", "trend", "services"}``; no services is
        healthy at 100, stable.
    """
    if not per_service:
        return {"status": HEALTHY, "health_score": 100.0, "trend": "stable", "services": {}}
    trends = {h.get("trend", "stable") for h in per_service.values()}
    trend = next((x for x in ("worsening", "recovering") if x in trends), "stable")
    status = max((h["status"] for h in per_service.values()), key=_RANK.__getitem__)
    score = sum(h["health_score"] for h in per_service.values()) / len(per_service)
    if status == CRITICAL:
        score = min(score, _CRITICAL_CAP)
    elif status == DEGRADED:
        score = min(score, _DEGRADED_CAP)
    return {
        "status": status,
        "health_score": round(score, 1),
        "trend": trend,
        "services": per_service,
    }
