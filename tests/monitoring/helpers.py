# SPDX-License-Identifier: MIT
"""Helpers shared by the monitoring tests: events recorded on a collector, and its findings."""

from __future__ import annotations

from typing import Any

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.monitoring import MetricsCollector


def calls(
    c: MetricsCollector,
    ok: int,
    failed: int = 0,
    *,
    service: str = "svc",
    latency: float = 1.0,
    error: RetryErrorType = RetryErrorType.SERVER_ERROR,
) -> None:
    """Record *ok* served and *failed* failed one-attempt calls."""
    for outcome, n in (("success", ok), ("failure", failed)):
        for _ in range(n):
            c.call_started(service)
            c.attempt_finished(service, latency, None if outcome == "success" else error)
            if outcome == "failure":
                c.retry_gave_up(service, 1, error)
            c.call_finished(service, outcome, latency, 1)  # type: ignore[arg-type]


def issues(c: MetricsCollector, kind: str) -> list[dict[str, Any]]:
    """The issues of one type."""
    return [i for i in c.analyze_issues()["issues"] if i["type"] == kind]
