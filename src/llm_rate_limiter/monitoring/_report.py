# SPDX-License-Identifier: MIT
"""
The system performance report: totals, percentiles, tokens, top errors, per service.

The report keeps the totals since the collector started (or was reset), with
the outcomes apart: served, failed (by kind), shed by the open breaker (to a
fallback, or returned as an error) and cancelled. Health in it is about now
(the health window), with its trend.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._window import percentile

__all__ = ["performance_report"]

_SUMMED = (
    "total_requests",
    "served_requests",
    "successful_requests",
    "failed_requests",
    "shed_requests",
    "shed_to_fallback",
    "shed_unserved",
    "cancelled_requests",
    "in_flight",
    "total_attempts",
    "failed_attempts",
    "retries",
    "retry_gave_up",
    "breaker_openings",
    "breaker_rejections",
    "denials",
    "rate_limit_violations",
    "fallbacks_taken",
    "quota_exhausted",
    "authentication_failures",
)


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def performance_report(
    metrics: dict[str, dict[str, Any]],
    latencies: Iterable[float],
    response_time_total: float,
    health: dict[str, Any],
    issues: dict[str, Any],
    generated_at: float,
    uptime: float,
) -> dict[str, Any]:
    """
    Build the executive summary of every service.

    Args:
        metrics: Each service's `service_snapshot`.
        latencies: The recent call latencies of every service together.
        response_time_total: Sum of every attempt's latency.
        health: The collector's `health()`.
        issues: The collector's `analyze_issues()`.
        generated_at: Wall-clock time of the report (Unix seconds).
        uptime: Seconds since the collector started (or was reset).

    Returns:
        ``{"generated_at", "uptime_seconds", "performance_metrics", "latency",
        "tokens", "top_errors", "services", "health", "issues_found",
        "recommendations"}``; ``performance_metrics["success_rate"]`` is the
        share of served and failed calls that were served (shed and cancelled
        calls are neither), ``performance_metrics["failures_by_kind"]`` the
        failed calls by the kind of their final error.
    """
    totals: dict[str, Any] = {key: sum(m[key] for m in metrics.values()) for key in _SUMMED}
    kinds: dict[str, int] = {}
    for m in metrics.values():
        for kind, n in m["failures_by_kind"].items():
            kinds[kind] = kinds.get(kind, 0) + n
    ended = totals["successful_requests"] + totals["failed_requests"]
    samples = list(latencies)
    errors: dict[str, int] = {}
    for m in metrics.values():
        for kind, n in m["error_patterns"].items():
            errors[kind] = errors.get(kind, 0) + n
    top_errors = [
        {"error": kind, "count": n}
        for kind, n in sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    ]
    performance = {
        **totals,
        "failures_by_kind": dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
        "success_rate": _ratio(totals["successful_requests"], ended) if ended else 1.0,
        "failure_rate": _ratio(totals["failed_requests"], ended),
        "average_response_time": _ratio(response_time_total, totals["total_attempts"]),
        "retries_per_request": _ratio(totals["retries"], totals["total_requests"]),
        "denial_rate": _ratio(
            totals["denials"],
            totals["denials"] + sum(m["limiter_admissions"] for m in metrics.values()),
        ),
    }
    services = {
        name: {
            "status": health["services"][name]["status"],
            "health_score": health["services"][name]["health_score"],
            "trend": health["services"][name].get("trend", "stable"),
            "seconds_since_change": health["services"][name].get("seconds_since_change"),
            "requests": m["total_requests"],
            "served": m["served_requests"],
            "failed": m["failed_requests"],
            "shed": m["shed_requests"],
            "cancelled": m["cancelled_requests"],
            "success_rate": m["success_rate"],
            "p95_latency": m["p95_latency"],
            "average_response_time": m["average_response_time"],
            "denial_rate": m["denial_rate"],
            "retries": m["retries"],
            "breaker_openings": m["breaker_openings"],
            "circuit_state": m["circuit_state"],
            "tokens_used": m["tokens_used"],
        }
        for name, m in metrics.items()
    }
    return {
        "generated_at": generated_at,
        "uptime_seconds": uptime,
        "performance_metrics": performance,
        "latency": {
            "p50": percentile(samples, 50),
            "p95": percentile(samples, 95),
            "p99": percentile(samples, 99),
            "max": max(samples, default=None),
            "samples": len(samples),
        },
        "tokens": {
            "estimated": sum(m["tokens_estimated"] for m in metrics.values()),
            "used": sum(m["tokens_used"] for m in metrics.values()),
        },
        "top_errors": top_errors,
        "services": services,
        "health": {
            "status": health["status"],
            "health_score": health["health_score"],
            "trend": health.get("trend", "stable"),
        },
        "issues_found": issues["issues_found"],
        "recommendations": issues["recommendations"],
    }
