# SPDX-License-Identifier: MIT
"""
Background monitoring: a periodic structured log summary and a warning per new issue.

Everything goes to the ``llm_rate_limiter`` logger with the data in
``extra={"llmrl": {...}}``, so a JSON formatter can ship it as fields. Only
service names and numbers are logged, never credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from .._clock import SYSTEM_CLOCK, Clock
from .._validate import check_number

if TYPE_CHECKING:
    from ._collector import MetricsCollector

__all__ = ["LOGGER_NAME", "Monitor", "log_monitoring_summary"]

#: The logger every summary and warning goes to.
LOGGER_NAME = "llm_rate_limiter"


def _summary(collector: MetricsCollector) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    health = collector.health()
    analysis = collector.analyze_issues()
    report = collector.performance_report()
    perf = report["performance_metrics"]
    summary = {
        "event": "monitoring_summary",
        "status": health["status"],
        "health_score": health["health_score"],
        "total_requests": perf["total_requests"],
        "success_rate": perf["success_rate"],
        "average_response_time": perf["average_response_time"],
        "p95_latency": report["latency"]["p95"],
        "retries": perf["retries"],
        "denials": perf["denials"],
        "breaker_openings": perf["breaker_openings"],
        "issues_found": analysis["issues_found"],
        "issues": [f"{i['service']}:{i['type']}" for i in analysis["issues"]],
        "services": report["services"],
    }
    return summary, analysis["issues"]


def _log(logger: logging.Logger, summary: dict[str, Any]) -> None:
    logger.info(
        "llm_rate_limiter summary: status=%s score=%.1f requests=%d success_rate=%.3f issues=%d",
        summary["status"],
        summary["health_score"],
        summary["total_requests"],
        summary["success_rate"],
        summary["issues_found"],
        extra={"llmrl": summary},
    )


def _warn(logger: logging.Logger, issue: dict[str, Any]) -> None:
    logger.warning(
        "llm_rate_limiter issue: %s %s (%s): %s; recommendation: %s",
        issue["service"],
        issue["type"],
        issue["severity"],
        issue["detail"],
        issue["recommendation"],
        extra={"llmrl": {"event": "issue", **issue}},
    )


def log_monitoring_summary(
    collector: MetricsCollector, logger: logging.Logger | None = None
) -> dict[str, Any]:
    """
    Log one structured summary now, then a warning for every current issue.

    Args:
        collector: Where the numbers come from.
        logger: Defaults to the ``llm_rate_limiter`` logger.

    Returns:
        The summary that was logged (also in the record's ``llmrl`` attribute).

    .. versionadded:: 0.1.0
    """
    logger = logger or logging.getLogger(LOGGER_NAME)
    summary, issues = _summary(collector)
    _log(logger, summary)
    for issue in issues:
        _warn(logger, issue)
    return summary


class Monitor:
    """
    Log a summary of *collector* every *interval* seconds, in an asyncio task.

    Each issue is warned about once, when it appears; it is warned about again
    only if it goes away and comes back. An exception while summarising is
    logged and the task carries on.

    Args:
        collector: Where the numbers come from.
        interval: Seconds between summaries (300 = the seed's five minutes).
        logger: Defaults to the ``llm_rate_limiter`` logger.
        clock: Its ``sleep`` paces the task (a `FakeClock` in tests).

    Raises:
        ConfigurationError: A non-positive *interval*.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        collector: MetricsCollector,
        *,
        interval: float = 300.0,
        logger: logging.Logger | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        interval_s = check_number("interval", interval, inclusive=False)
        assert interval_s is not None
        self.interval = interval_s
        self._collector = collector
        self._logger = logger or logging.getLogger(LOGGER_NAME)
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._active: set[tuple[str, str]] = set()

    @property
    def running(self) -> bool:
        """Whether the monitoring task is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """
        Start the task; call it inside a running event loop. Starting twice is a no-op.

        Raises:
            RuntimeError: No running event loop.
        """
        if self.running:
            return
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="llm_rate_limiter-monitor")

    async def stop(self) -> None:
        """Cancel the task and wait for it to end."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def log_summary(self) -> dict[str, Any]:
        """
        Log one summary now and warn about issues not seen in the previous summary.

        Returns:
            The summary that was logged.
        """
        summary, issues = _summary(self._collector)
        _log(self._logger, summary)
        current = {(i["service"], i["type"]) for i in issues}
        for issue in issues:
            if (issue["service"], issue["type"]) not in self._active:
                _warn(self._logger, issue)
        self._active = current
        return summary

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self.interval)
            try:
                self.log_summary()
            except Exception:
                self._logger.exception("llm_rate_limiter monitor: summary failed")
