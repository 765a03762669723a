# SPDX-License-Identifier: MIT
"""`AsyncLLMClient`'s monitoring and manual controls, over its `MetricsCollector`."""

from __future__ import annotations

import asyncio
from typing import Any

from .._clock import Clock
from ..exceptions import ClientClosedError, ConfigurationError
from ..monitoring import MetricsCollector, Monitor
from ._runtime import ProviderRuntime

__all__ = ["ClientMonitoring"]


class ClientMonitoring:
    """Health, issues, reports, breaker resets and the background monitor."""

    metrics: MetricsCollector
    _providers: dict[str, ProviderRuntime]
    _clock: Clock
    _monitor: Monitor | None
    _closed: bool

    def _provider(self, name: str) -> ProviderRuntime:
        try:
            return self._providers[name]
        except KeyError:
            msg = f"unknown provider {name!r} (known: {sorted(self._providers)})"
            raise ConfigurationError("provider", msg) from None

    def health(self) -> dict[str, Any]:
        """Overall and per-provider health: status, a 0-100 score, details."""
        return self.metrics.health()

    def service_status(self, provider: str) -> dict[str, Any]:
        """One provider's status and metrics."""
        self._provider(provider)
        return self.metrics.service_status(provider)

    def analyze_issues(self) -> dict[str, Any]:
        """Frequent issues found, each with a specific recommendation."""
        return self.metrics.analyze_issues()

    def performance_report(self) -> dict[str, Any]:
        """Totals, success rate, latency percentiles, tokens, retries, per provider."""
        return self.metrics.performance_report()

    def rate_limiter_stats(self) -> dict[str, dict[str, Any]]:
        """Comprehensive rate-limiter metrics per provider."""
        return self.metrics.rate_limiter_stats()

    def circuit_breaker_stats(self) -> dict[str, dict[str, Any]]:
        """Comprehensive circuit-breaker metrics per provider."""
        return self.metrics.circuit_breaker_stats()

    def reset_breaker(self, provider: str) -> None:
        """Close *provider*'s breaker by hand."""
        breaker = self._provider(provider).policy.breaker
        if breaker is not None:
            breaker.reset()

    def reset_all_breakers(self) -> None:
        """Close every provider's breaker."""
        for name in self._providers:
            self.reset_breaker(name)

    def start_monitoring(self, interval: float = 300.0) -> Monitor:
        """
        Start (or return) the background monitor: a log summary every *interval* seconds.

        Raises:
            RuntimeError: Called outside a running event loop (the monitor is a task).
            ClientClosedError: The client was closed.
        """
        if self._closed:
            msg = "this AsyncLLMClient is closed"
            raise ClientClosedError(msg)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            msg = (
                "start_monitoring() needs a running asyncio event loop: its monitor is an "
                "asyncio task. Call it from async code, e.g. inside the coroutine you pass to "
                "asyncio.run()"
            )
            raise RuntimeError(msg) from None
        if self._monitor is None or not self._monitor.running:
            self._monitor = Monitor(self.metrics, interval=interval, clock=self._clock)
            self._monitor.start()
        return self._monitor

    def log_monitoring_summary(self) -> dict[str, Any]:
        """Log one structured summary now and return it."""
        if self._monitor is not None:
            return self._monitor.log_summary()
        return Monitor(self.metrics, clock=self._clock).log_summary()
