# SPDX-License-Identifier: MIT
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

import pytest

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.exceptions import ConfigurationError
from llm_rate_limiter.monitoring import MetricsCollector
from llm_rate_limiter.monitoring._monitor import LOGGER_NAME, Monitor, log_monitoring_summary
from llm_rate_limiter.testing import FakeClock

START = 1_000.0


class Recorder(logging.Handler):
    """Keep every record with the fake time at which it was emitted."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(logging.DEBUG)
        self.clock = clock
        self.records: list[tuple[float, logging.LogRecord]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((self.clock.monotonic(), record))

    def summaries(self) -> list[tuple[float, logging.LogRecord]]:
        return [(t, r) for t, r in self.records if r.levelno == logging.INFO]

    def warnings(self) -> list[logging.LogRecord]:
        return [r for _, r in self.records if r.levelno == logging.WARNING]


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock."""
    return FakeClock(start=START)


@pytest.fixture
def recorder(clock: FakeClock) -> Iterator[Recorder]:
    """A handler on a private logger, removed afterwards."""
    handler = Recorder(clock)
    logger = logging.getLogger(f"{LOGGER_NAME}.test")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)


def fail(c: MetricsCollector, n: int) -> None:
    """Record *n* failed calls on "svc"."""
    for _ in range(n):
        c.call_started("svc")
        c.attempt_finished("svc", 1.0, RetryErrorType.SERVER_ERROR)
        c.call_finished("svc", "failure", 1.0, 1)


async def until(predicate: Callable[[], bool], limit: int = 1000) -> None:
    """Yield to the loop until *predicate()* holds (at most *limit* times)."""
    for _ in range(limit):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


class TestLogMonitoringSummary:
    def test_structured_summary_and_issue_warnings(self, collector, recorder):
        """One INFO record carries the summary in extra; each issue gets a WARNING."""
        fail(collector, 10)
        logger = logging.getLogger(f"{LOGGER_NAME}.test")
        summary = log_monitoring_summary(collector, logger)
        [(_, info)] = recorder.summaries()
        assert summary == info.llmrl
        assert ("critical", 10, ["svc:elevated_failure_rate"]) == (
            summary["status"],
            summary["total_requests"],
            summary["issues"],
        )
        assert "status=critical" in info.getMessage()
        [warning] = recorder.warnings()
        assert "elevated_failure_rate" == warning.llmrl["type"]

    def test_default_logger_name(self, collector, caplog):
        """Without a logger the summary goes to the "llm_rate_limiter" logger."""
        with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
            log_monitoring_summary(collector)
        assert [LOGGER_NAME] == [r.name for r in caplog.records]


class TestMonitor:
    @pytest.mark.anyio
    async def test_logs_each_interval(self, collector, clock, recorder):
        """The task logs one summary per interval of the injected clock."""
        logger = logging.getLogger(f"{LOGGER_NAME}.test")
        monitor = Monitor(collector, interval=300, logger=logger, clock=clock)
        monitor.start()
        assert monitor.running
        await until(lambda: len(recorder.summaries()) >= 3)
        await monitor.stop()
        assert not monitor.running
        times = [t for t, _ in recorder.summaries()]
        assert [START + 300, START + 600, START + 900] == times[:3]
        assert all(300 == s for s in clock.sleeps)

    @pytest.mark.anyio
    async def test_warns_once_per_new_issue(self, collector, clock, recorder):
        """An issue is warned about once while it lasts, and again when it comes back."""
        logger = logging.getLogger(f"{LOGGER_NAME}.test")
        # Summaries every 10 s: the failures stay inside the 60 s health window throughout.
        monitor = Monitor(collector, interval=10, logger=logger, clock=clock)
        fail(collector, 10)
        monitor.start()
        await until(lambda: len(recorder.summaries()) >= 4)
        assert 1 == len(recorder.warnings())
        collector.reset()
        await until(lambda: len(recorder.summaries()) >= 6)
        fail(collector, 10)
        await until(lambda: len(recorder.warnings()) >= 2)
        await monitor.stop()
        assert ["elevated_failure_rate"] * 2 == [w.llmrl["type"] for w in recorder.warnings()]

    @pytest.mark.anyio
    async def test_survives_an_exception(self, collector, clock, recorder, monkeypatch):
        """An exception while summarising is logged and the task keeps running."""
        logger = logging.getLogger(f"{LOGGER_NAME}.test")
        real = collector.health
        calls = {"n": 0}

        def flaky():
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("boom")
            return real()

        monkeypatch.setattr(collector, "health", flaky)
        monitor = Monitor(collector, interval=10, logger=logger, clock=clock)
        monitor.start()
        await until(lambda: len(recorder.summaries()) >= 2)
        assert monitor.running
        await monitor.stop()
        errors = [r for _, r in recorder.records if r.levelno == logging.ERROR]
        assert 1 == len(errors)
        assert "boom" == str(errors[0].exc_info[1])
        assert START + 20 == recorder.summaries()[0][0]

    @pytest.mark.anyio
    async def test_start_twice_and_stop_twice(self, collector, clock):
        """Starting twice keeps one task; stopping twice is harmless."""
        monitor = Monitor(collector, interval=5, clock=clock)
        monitor.start()
        task = monitor._task
        monitor.start()
        assert task is monitor._task
        await monitor.stop()
        await monitor.stop()
        assert task is not None
        assert task.cancelled()

    def test_start_needs_a_running_loop(self, collector):
        """start() outside an event loop raises RuntimeError."""
        with pytest.raises(RuntimeError):
            Monitor(collector).start()

    def test_log_summary_now(self, collector, clock, recorder):
        """log_summary() logs at once and returns the summary."""
        logger = logging.getLogger(f"{LOGGER_NAME}.test")
        summary = Monitor(collector, logger=logger, clock=clock).log_summary()
        assert ("healthy", 100.0, 0) == (
            summary["status"],
            summary["health_score"],
            summary["issues_found"],
        )
        assert 1 == len(recorder.summaries())

    @pytest.mark.parametrize("interval", [0, -1.0])
    def test_interval_must_be_positive(self, collector, interval):
        """A non-positive interval is refused, naming the setting."""
        with pytest.raises(ConfigurationError) as info:
            Monitor(collector, interval=interval)
        assert "interval" == info.value.setting
