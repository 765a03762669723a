# SPDX-License-Identifier: MIT
"""
Running ``llm-rate-limiter bench``: every scenario, every client, one fault server.

For each scenario and client: the server (its own process) is configured for
the scenario and reset, the client sends the scenario's request set, and the
client's records, its HTTP log and the server's counters become one summary.
Every load is bounded: a per-call deadline, and a wall-clock cap after which no
call starts. The HTTP log is binned for the timelines: per second, or per
quarter second with ``--quick`` (a run of a few seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ._clients import BREAKER, BenchClient, make_client
from ._metrics import CallRecord, summarize
from ._scenarios import (
    ALL_CLIENTS,
    CLIENT_NAMES,
    SCENARIOS,
    WARM_UP_SETTINGS,
    BenchRequest,
    Scenario,
    build_requests,
    quick_scenario,
    server_settings,
)
from ._server import BenchServer
from ._targets import evaluate_targets
from ._wire import WireLog, wire_timeline

__all__ = ["BenchOptions", "progress_line", "run_bench", "run_load", "timeline_bin"]


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """
    What ``llm-rate-limiter bench`` runs and where it writes.

    Attributes:
        scenarios: Scenario names, in order.
        clients: Client names, in order.
        calls: Calls per client, overriding every scenario's own size.
        concurrency: Calls in flight, overriding every scenario's own.
        quick: Small sizes (for tests and a first look).
        output: The folder for ``bench.md``, ``bench.json`` and the plots.
        plots: Write PNG plots (needs matplotlib).
    """

    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    clients: tuple[str, ...] = CLIENT_NAMES
    calls: int | None = None
    concurrency: int | None = None
    quick: bool = False
    output: Path = Path("bench-output")
    plots: bool = True


def timeline_bin(options: BenchOptions) -> float:
    """Seconds per bin of the timelines: 1, or 0.25 with ``--quick``."""
    return 0.25 if options.quick else 1.0


def resolve(options: BenchOptions) -> list[Scenario]:
    """The scenarios of *options*, sized (quick, calls, concurrency) as asked."""
    scenarios = []
    for name in options.scenarios:
        scenario = SCENARIOS[name]
        if options.quick:
            scenario = quick_scenario(scenario)
        if options.calls is not None:
            scenario = replace(scenario, calls=options.calls)
        if options.concurrency is not None:
            scenario = replace(scenario, concurrency=options.concurrency)
        scenarios.append(scenario)
    return scenarios


async def run_load(
    client: BenchClient, requests: Sequence[BenchRequest], scenario: Scenario, t0: float
) -> list[CallRecord]:
    """
    Send *requests* through *client*, ``scenario.concurrency`` at a time.

    Times in the records are seconds since *t0* (a ``loop.time()`` reading).
    In an open-loop scenario call *i* starts no earlier than ``i / arrival_rate``.

    Returns:
        One record per request, in request order.
    """
    loop = asyncio.get_running_loop()
    records: list[CallRecord | None] = [None] * len(requests)
    pending = iter(range(len(requests)))
    cap_at = t0 + scenario.max_seconds
    rate = scenario.arrival_rate

    async def one(index: int) -> CallRecord:
        if rate is not None:
            delay = t0 + index / rate - loop.time()
            if delay > 0.0:
                await asyncio.sleep(delay)
        start = loop.time()
        if start >= cap_at:
            return CallRecord(index, start - t0, start - t0, ok=False, error="not_started")
        error = None
        try:
            async with asyncio.timeout(scenario.call_deadline):
                await client.call(requests[index])
        except TimeoutError:
            error = "call_deadline"
        except Exception as exc:
            error = _error_name(exc)
        return CallRecord(index, start - t0, loop.time() - t0, ok=error is None, error=error)

    async def worker() -> None:
        for index in pending:
            records[index] = await one(index)

    await asyncio.gather(*(worker() for _ in range(max(1, scenario.concurrency))))
    return [r for r in records if r is not None]


def _error_name(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "code", None)
    name = type(exc).__name__
    if status is not None:
        name = f"{name}({status}{'/' + code if isinstance(code, str) else ''})"
    return name


async def _run_client(
    server: BenchServer,
    name: str,
    scenario: Scenario,
    requests: list[BenchRequest],
    bin_seconds: float,
) -> dict[str, Any]:
    wire = WireLog()
    http_client = wire.http_client()
    try:
        client = make_client(name, server.base_url, scenario, http_client)
    except BaseException:
        await http_client.aclose()
        raise
    try:
        # Warm up on a fault-free server: the first call of a fresh client pays
        # one-off imports and a connection (~35 ms here), which is not load.
        server.configure(WARM_UP_SETTINGS)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(scenario.call_deadline):
                await client.call(requests[0])
        server.configure(server_settings(scenario))
        server.reset()
        t0 = asyncio.get_running_loop().time()
        wire.start(t0)
        records = await run_load(client, requests, scenario, t0)
        wire.stop()
    finally:
        await client.aclose()
        await http_client.aclose()
    stats = server.stats()
    summary = summarize(scenario, records, requests, stats, wire=wire.records)
    summary["http_timeline"] = wire_timeline(wire.records, bin_seconds)
    return summary


def progress_line(scenario: Scenario, name: str, s: dict[str, Any], seconds: float) -> str:
    """One client's progress line: its calls' outcome (the expected one when failure is)."""
    if scenario.fails_by_design and s.get("failed_at_once") is not None:
        outcome = f"expected outcome: {s['failed_at_once']}/{s['calls']} failed at once"
        if s["quota_retries"] is not None:
            outcome += f", {s['quota_retries']} retries of insufficient_quota;"
    else:
        outcome = f"ok {s['successes']:>4}/{s['calls']:<4}"
    return (
        f"  {scenario.name:<19} {name:<20} {outcome} server requests {s['server_requests']:>5}  "
        f"429s {s['server_429']:>5}  ({seconds:.1f} s)"
    )


async def _run_all(
    options: BenchOptions, server: BenchServer, say: Callable[[str], None]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    bin_seconds = timeline_bin(options)
    for scenario in resolve(options):
        requests = build_requests(scenario.calls)
        clients: dict[str, Any] = {}
        for name in options.clients:
            started = time.perf_counter()
            s = clients[name] = await _run_client(server, name, scenario, requests, bin_seconds)
            say(progress_line(scenario, name, s, time.perf_counter() - started))
        info = asdict(scenario)
        info["request_burst"] = scenario.request_burst
        info["token_burst"] = scenario.token_burst
        info["mean_request_tokens"] = round(sum(r.tokens for r in requests) / len(requests), 1)
        results[scenario.name] = {
            "description": scenario.describe(),
            "fails_by_design": scenario.fails_by_design,
            "scenario": info,
            "clients": clients,
        }
    return results


def run_bench(options: BenchOptions, say: Callable[[str], None] = print) -> dict[str, Any]:
    """
    Run the load benchmark and write its report; return everything measured.

    Args:
        options: Scenarios, clients, sizes and the output folder.
        say: Where progress lines go.

    Returns:
        ``{"settings", "machine", "scenarios", "targets"}``, also written to
        ``bench.json`` in the output folder next to ``bench.md`` and the plots.
    """
    from ._report import write_report

    unknown = [s for s in options.scenarios if s not in SCENARIOS]
    unknown += [c for c in options.clients if c not in ALL_CLIENTS]
    if unknown:
        msg = f"unknown scenario or client: {', '.join(unknown)}"
        raise ValueError(msg)
    say(f"llm-rate-limiter bench: {', '.join(options.scenarios)} x {', '.join(options.clients)}")
    started = time.perf_counter()
    with BenchServer() as server:
        scenarios = asyncio.run(_run_all(options, server, say))
    report: dict[str, Any] = {
        "settings": {
            "quick": options.quick,
            "calls": options.calls,
            "concurrency": options.concurrency,
            "breaker": BREAKER,
            "timeline_bin": timeline_bin(options),
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "scenarios": scenarios,
        "targets": evaluate_targets(scenarios, BREAKER, quick=options.quick),
    }
    write_report(report, Path(options.output), plots=options.plots, say=say)
    return report
