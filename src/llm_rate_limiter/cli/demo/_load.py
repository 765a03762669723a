# SPDX-License-Identifier: MIT
"""
The demo's load: a pacer that offers calls at the phase's rate, and the workers that send them.

The load is closed at the top: at most ``concurrency`` calls are in flight, so
when the provider is slower than the offered rate the workers wait (in the
limiter's queue) instead of piling up calls. It is bounded in count (the
pacer hands out at most ``max_calls`` slots) and in time (each call has a
timeout, and `LoadGenerator.stop` cancels what is left after a grace period).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from ...client import AsyncLLMClient, CallInfo
from ...monitoring import MetricsCollector

__all__ = ["DemoMetrics", "LoadGenerator", "LoadStats", "Pacer", "shed_by_first"]


class DemoMetrics(MetricsCollector):
    """A `MetricsCollector` that also keeps every breaker transition with its time."""

    def __init__(self, start: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._start = start
        #: ``(seconds since start, service, old state, new state)``, in order.
        self.transitions: list[tuple[float, str, str, str]] = []

    def breaker_transition(self, service: str, old: str, new: str) -> None:
        """Record the transition, then count it as usual."""
        if len(self.transitions) < 10_000:
            self.transitions.append((time.monotonic() - self._start, service, old, new))
        super().breaker_transition(service, old, new)


class Pacer:
    """
    Hands out call slots at most ``rate`` per second, at most ``limit`` in all.

    Slots not taken are not saved up: a worker that comes back late gets the
    next slot from now, so no burst follows a slow period.
    """

    def __init__(self, limit: int) -> None:
        self.rate = 0.0
        self.issued = 0
        self._limit = limit
        self._next = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, deadline: float) -> bool:
        """Wait for a slot; False once the load is over (time or count)."""
        # One worker at a time waits for the next slot, so a change of rate
        # applies from the next slot on, not after a queue of reservations.
        async with self._lock:
            while self.issued < self._limit:
                now = time.monotonic()
                if now >= deadline:
                    return False
                if self.rate <= 0:
                    await asyncio.sleep(min(0.1, deadline - now))
                    continue
                slot = max(self._next, now)
                if slot >= deadline:
                    return False
                if slot > now:
                    await asyncio.sleep(slot - now)
                    continue  # the rate may have changed meanwhile
                self._next = slot + 1.0 / self.rate
                self.issued += 1
                return True
            return False


class LoadStats:
    """
    What the workers saw, counted as calls end (read by the sampler and the display).

    Every call ends one way: *served* (answered, by the first provider or by a
    fallback after the first one failed it), *failed* (raised), *shed* (the
    first provider's open breaker turned it away unsent; then a fallback
    answered it or it raised `CircuitOpenError`), or *cancelled* (still
    running when the load stopped).
    """

    def __init__(self) -> None:
        self.started = 0
        self.in_flight = 0
        #: Answered calls by the provider that answered (shed ones included).
        self.served: Counter[str] = Counter()
        #: Answered calls that went to a fallback (shed ones included).
        self.fallbacks = 0
        #: Calls that raised, by exception class (shed ones included).
        self.failures: Counter[str] = Counter()
        self.shed_served = 0
        self.shed_failed = 0
        self.cancelled = 0
        self.latency_total = 0.0

    @property
    def ended(self) -> int:
        """Calls that returned a reply or raised."""
        return sum(self.served.values()) + sum(self.failures.values())

    def as_dict(self) -> dict[str, Any]:
        """
        The counters as a JSON-ready dict.

        Once the load stopped, ``calls_served + calls_failed + calls_shed +
        calls_cancelled == calls_started``.
        """
        served = sum(self.served.values())
        return {
            "calls_started": self.started,
            "calls_ended": self.ended,
            "calls_served": served - self.shed_served,
            "calls_failed": sum(self.failures.values()) - self.shed_failed,
            "calls_shed": self.shed_served + self.shed_failed,
            "calls_cancelled": self.cancelled,
            "shed_served_by_fallback": self.shed_served,
            "shed_failed": self.shed_failed,
            "served_by": dict(self.served),
            "served_after_fallback": self.fallbacks - self.shed_served,
            "failures": dict(self.failures),
            "mean_latency": round(self.latency_total / served, 4) if served else None,
        }


def shed_by_first(info: CallInfo) -> bool:
    """Whether the first provider's open breaker turned the call away (it was never sent there)."""
    tried = info.providers_tried
    return bool(tried) and info.errors.get(tried[0]) == "CircuitOpenError"


class LoadGenerator:
    """
    Run ``concurrency`` workers that send chat calls through *client* until *deadline*.

    Args:
        client: The client under load.
        pacer: Where the workers take their slots.
        concurrency: Workers (calls in flight at most).
        deadline: `time.monotonic` value after which no call starts.
        call_timeout: Upper bound of one call, retries and fallbacks included.
        messages: The chat messages of every call.
        max_tokens: ``max_tokens`` of every call.
    """

    def __init__(
        self,
        client: AsyncLLMClient,
        pacer: Pacer,
        *,
        concurrency: int,
        deadline: float,
        call_timeout: float,
        messages: list[dict[str, str]],
        max_tokens: int,
    ) -> None:
        self.stats = LoadStats()
        self._client = client
        self._pacer = pacer
        self._deadline = deadline
        self._timeout = call_timeout
        self._messages = messages
        self._max_tokens = max_tokens
        self._concurrency = concurrency
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the workers."""
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"demo-worker-{i}")
            for i in range(self._concurrency)
        ]

    async def _worker(self) -> None:
        stats = self.stats
        while await self._pacer.take(self._deadline):
            info = CallInfo()
            stats.started += 1
            stats.in_flight += 1
            began = time.monotonic()
            try:
                async with asyncio.timeout(self._timeout):
                    await self._client.chat(
                        self._messages, call_info=info, max_tokens=self._max_tokens
                    )
            except asyncio.CancelledError:
                stats.cancelled += 1
                raise
            except Exception as exc:
                stats.failures[type(exc).__name__] += 1
                stats.shed_failed += shed_by_first(info)
            else:
                stats.served[info.provider or "?"] += 1
                stats.latency_total += time.monotonic() - began
                if info.fallbacks:
                    stats.fallbacks += 1
                stats.shed_served += shed_by_first(info)
            finally:
                stats.in_flight -= 1

    async def stop(self, grace: float) -> int:
        """Wait up to *grace* seconds for the calls in flight, cancel the rest; return how many."""
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return len(pending)
