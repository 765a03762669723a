# SPDX-License-Identifier: MIT
"""
The demo's run: start the servers and the client, play the phases, sample once a second.

`run_demo` returns everything the report needs; it prints nothing itself but
tells a `Display` what happens (a live rich view, or plain lines).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Any, Protocol

from ...client import AsyncLLMClient, ProviderConfig
from ._load import DemoMetrics, LoadGenerator, Pacer
from ._scenario import (
    MAX_TOKENS,
    MESSAGES,
    DemoSettings,
    Phase,
    build_phases,
    fault_configs,
    provider_configs,
)

if TYPE_CHECKING:
    from ...testing import FaultServer

__all__ = ["DemoRun", "Display", "run_demo"]

_GRACE = 3.0  # seconds the calls in flight get to end after the load stops
_CALL_TIMEOUT = 15.0


class Display(Protocol):
    """Where the run reports progress: a live view or plain lines."""

    #: Seconds between two `refresh` calls; None for no periodic refresh.
    refresh_interval: float | None

    def phase_started(self, phase: Phase) -> None:
        """A phase begins."""

    def phase_ended(self, phase: Phase, summary: dict[str, Any]) -> None:
        """A phase is over; *summary* counts what happened in it."""

    def refresh(self) -> None:
        """Redraw (called every ``refresh_interval`` seconds)."""


class DemoRun:
    """The state of a running demo, read by the display and turned into the report."""

    def __init__(
        self,
        settings: DemoSettings,
        phases: list[Phase],
        client: AsyncLLMClient,
        providers: list[ProviderConfig],
        servers: dict[str, FaultServer],
        load: LoadGenerator,
        pacer: Pacer,
        metrics: DemoMetrics,
        start: float,
    ) -> None:
        self.settings = settings
        self.phases = phases
        self.client = client
        #: The client's provider settings (the report shows them, never their keys).
        self.providers = providers
        self.servers = servers
        self.load = load
        self.pacer = pacer
        self.metrics = metrics
        self.start = start
        self.phase: Phase = phases[0]
        self.timeline: list[dict[str, Any]] = []
        self.phase_summaries: dict[str, dict[str, Any]] = {}
        #: ``(time, counters)`` of each sample, the start first.
        self._marks: list[tuple[float, dict[str, Any]]] = [(0.0, self.counters())]
        self._phase_mark = self._marks[0][1]

    @property
    def elapsed(self) -> float:
        """Seconds since the load started."""
        return time.monotonic() - self.start

    def breaker_state(self, provider: str) -> str:
        """*provider*'s breaker state now (``"none"`` without a breaker)."""
        breaker = self.client.policy(provider).breaker
        return "none" if breaker is None else str(breaker.state)

    def counters(self) -> dict[str, Any]:
        """Cumulative counters: client side per provider, and each server's."""
        stats = self.load.stats
        providers: dict[str, dict[str, int]] = {}
        for name in self.client.providers:
            row = {"served": stats.served.get(name, 0)}
            server = self.servers.get(name)
            if server is not None:
                s = server.stats()
                row |= {
                    "server_requests": s.requests,
                    "server_accepted": s.accepted,
                    "server_429": s.rate_limited,
                    "server_errors": s.server_errors,
                }
            providers[name] = row
        return {
            "calls_started": stats.started,
            # Calls that raised, less those the primary's open breaker shed (counted apart).
            "failures": sum(stats.failures.values()) - stats.shed_failed,
            "shed": stats.shed_served + stats.shed_failed,
            "fallbacks": stats.fallbacks,
            "providers": providers,
        }

    @staticmethod
    def _delta(now: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
        out = {k: now[k] - before[k] for k in ("calls_started", "failures", "shed", "fallbacks")}
        out["providers"] = {
            name: {k: v - before["providers"][name][k] for k, v in row.items()}
            for name, row in now["providers"].items()
        }
        return out

    def _states_between(self, provider: str, t0: float, t1: float) -> list[str]:
        """The breaker states *provider* was in between *t0* and *t1*, in order, once each."""
        first, states = "closed", []
        for t, service, _, new in self.metrics.transitions:
            if service != provider:
                continue
            if t < t0:
                first = new
            elif t < t1:
                states.append(new)
        seen: list[str] = []
        for state in [first, *states, self.breaker_state(provider)]:
            if state not in seen:
                seen.append(state)
        return seen

    def sample(self, *, extend: bool = False) -> dict[str, Any]:
        """
        Add one timeline row: what happened since the previous sample.

        With *extend*, replace the last row by one that also covers the time
        since (for a short tail, which as a row of its own would show a
        meaningless rate).
        """
        if extend and self.timeline:
            self.timeline.pop()
            self._marks.pop()
        t1, now = self.elapsed, self.counters()
        t0, before = self._marks[-1]
        row = {
            "t": round(t1, 3),
            "dt": round(t1 - t0, 3),
            "phase": self.phase_at((t0 + t1) / 2).name,
            "offered_rate": self.phase_at((t0 + t1) / 2).rate,
            **self._delta(now, before),
        }
        for name, data in row["providers"].items():
            data["breaker"] = self.breaker_state(name)
            data["breaker_states"] = self._states_between(name, t0, t1)
        self.timeline.append(row)
        self._marks.append((t1, now))
        return row

    def phase_at(self, t: float) -> Phase:
        """The phase running *t* seconds after the start (the last one after the end)."""
        for phase in self.phases:
            if t < phase.end:
                return phase
        return self.phases[-1]

    def end_phase(self, phase: Phase) -> dict[str, Any]:
        """Count what happened since the phase started; returns and keeps the summary."""
        now = self.counters()
        summary = self._delta(now, self._phase_mark)
        for name in summary["providers"]:
            summary["providers"][name]["breaker_states"] = self._states_between(
                name, phase.start, max(self.elapsed, phase.end)
            )
        self._phase_mark = now
        self.phase_summaries[phase.name] = summary
        return summary


async def _play(run: DemoRun, display: Display) -> None:
    """Play the phases in order, sampling every second and refreshing the display."""
    phases = run.phases
    index, next_sample = 0, 1.0
    interval = display.refresh_interval
    next_refresh = 0.0 if interval else float("inf")
    _start_phase(run, phases[0], display)
    for _ in range(int(run.settings.duration * 20) + 100):  # bounded: each pass meets an event
        t = run.elapsed
        if t >= next_sample:
            run.sample()
            next_sample += 1.0
        if t >= phases[index].end:
            if index + 1 == len(phases):
                return
            display.phase_ended(phases[index], run.end_phase(phases[index]))
            index += 1
            _start_phase(run, phases[index], display)
        if interval and t >= next_refresh:
            display.refresh()
            next_refresh = t + interval
        wake = min(next_sample, phases[index].end, next_refresh)
        await asyncio.sleep(max(0.0, wake - run.elapsed))


def _start_phase(run: DemoRun, phase: Phase, display: Display) -> None:
    run.phase = phase
    run.pacer.rate = phase.rate
    if phase.name == "outage" and "primary" in run.servers:
        run.servers["primary"].outage(phase.end - phase.start)
    display.phase_started(phase)


async def run_demo(
    settings: DemoSettings, display_for: Callable[[DemoRun], AbstractContextManager[Display]]
) -> dict[str, Any]:
    """
    Run the demo and return what the report needs.

    Args:
        settings: What to run.
        display_for: Called with the `DemoRun` once everything is up; returns
            a context manager whose value is the `Display`.

    Returns:
        ``{"run": DemoRun, "health", "issues", "performance", "server_stats",
        "cancelled", "elapsed"}``.
    """
    phases = build_phases(settings)
    async with AsyncExitStack() as stack:
        servers: dict[str, FaultServer] = {}
        if settings.embedded:
            from ...testing import FaultServer

            for name, config in fault_configs(settings).items():
                servers[name] = await stack.enter_async_context(FaultServer(config))
        urls = {name: server.base_url for name, server in servers.items()}
        start = time.monotonic()
        metrics = DemoMetrics(start)
        providers = provider_configs(settings, urls)
        fallbacks = {"primary": ["fallback"]} if settings.embedded else None
        client = await stack.enter_async_context(
            AsyncLLMClient(providers, fallbacks=fallbacks, metrics=metrics)
        )
        from .._main import otel_instrument  # demo --otel: nothing imported without it

        otel_instrument(client)
        pacer = Pacer(settings.max_calls(phases))
        load = LoadGenerator(
            client,
            pacer,
            concurrency=settings.concurrency,
            deadline=start + settings.duration,
            call_timeout=_CALL_TIMEOUT,
            messages=[dict(m) for m in MESSAGES],
            max_tokens=MAX_TOKENS,
        )
        run = DemoRun(settings, phases, client, providers, servers, load, pacer, metrics, start)
        with display_for(run) as display:
            load.start()
            try:
                await _play(run, display)
            except BaseException:
                await load.stop(0.0)  # interrupted: cancel the calls in flight at once
                raise
            cancelled = await load.stop(_GRACE)
            tail = run.elapsed - (run.timeline[-1]["t"] if run.timeline else 0.0)
            if tail > 0.01:
                run.sample(extend=tail < 0.5)
            display.phase_ended(phases[-1], run.end_phase(phases[-1]))
            display.refresh()
        return {
            "run": run,
            "health": client.health(),
            "issues": client.analyze_issues(),
            "performance": client.performance_report(),
            "server_stats": {name: s.stats().as_dict() for name, s in servers.items()},
            "cancelled": cancelled,
            "elapsed": run.elapsed,
        }
