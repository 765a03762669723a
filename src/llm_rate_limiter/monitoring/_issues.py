# SPDX-License-Identifier: MIT
"""
Frequent-issue analysis: what is wrong with each service and what to change.

The detectors (`_capacity` and `_detect`, whose docstrings give each trigger)
run over each service's metric snapshot; this module orders their issues
(most severe first; at equal severity in the order of `DETECTORS`), collects
the recommendations and adds the system-wide ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._capacity import above_provider, breaker, denials, fallbacks
from ._detect import SEVERITY_RANK, Issue, auth, failures, quota, retry_storm, shared_state, slow
from ._health import HealthThresholds

__all__ = ["DETECTORS", "SEVERITY_RANK", "Issue", "analyze", "service_issues"]

#: Every detector, in the order issues of equal severity are listed.
DETECTORS: tuple[Callable[[dict[str, Any], HealthThresholds], Issue | None], ...] = (
    auth,
    quota,
    failures,
    breaker,
    denials,
    above_provider,
    retry_storm,
    slow,
    shared_state,
    fallbacks,
)


def _rank(issue: Issue) -> int:
    return SEVERITY_RANK[issue["severity"]]


def service_issues(m: dict[str, Any], t: HealthThresholds) -> list[Issue]:
    """Return the issues found in one service's metrics *m*, most severe first."""
    found = [issue for detect in DETECTORS if (issue := detect(m, t)) is not None]
    found.sort(key=_rank)
    return found


def _system_advice(
    metrics: dict[str, dict[str, Any]], health: dict[str, dict[str, Any]], issues: list[Issue]
) -> list[str]:
    bad = [s for s, h in health.items() if h["status"] == "critical"]
    good = sorted(
        (s for s, h in health.items() if h["status"] == "healthy" and metrics[s]["total_requests"]),
        key=lambda s: -health[s]["health_score"],
    )
    advice = [
        f"route {service!r} (health {health[service]['health_score']:.0f}) to "
        f"{good[0]!r} (health {health[good[0]]['health_score']:.0f}): "
        f"fallbacks={{{service!r}: [{good[0]!r}]}}"
        for service in bad
        if good and not metrics[service]["fallbacks_taken"]
    ]
    denied = [i["service"] for i in issues if i["type"] == "high_rate_limit_denial"]
    if len(denied) > 1:
        advice.append(
            f"{len(denied)} services refuse calls locally ({', '.join(denied)}): the offered "
            "load exceeds total capacity; queue requests (raise max_wait) or add capacity"
        )
    return advice


def analyze(
    metrics: dict[str, dict[str, Any]],
    health: dict[str, dict[str, Any]],
    t: HealthThresholds,
) -> dict[str, Any]:
    """
    Analyse every service: ``{"issues_found", "issues", "recommendations"}``.

    ``recommendations`` lists each issue's recommendation, prefixed with its
    service (most severe first), followed by system-wide advice (routing from critical services to
    healthy ones, load above total capacity).
    """
    issues = [issue for m in metrics.values() for issue in service_issues(m, t)]
    issues.sort(key=_rank)
    recommendations = [f"{issue['service']}: {issue['recommendation']}" for issue in issues]
    recommendations.extend(_system_advice(metrics, health, issues))
    return {"issues_found": len(issues), "issues": issues, "recommendations": recommendations}
