# SPDX-License-Identifier: MIT
"""
The closed load loop and the figures of ``bench_outage_recovery`` (not a benchmark: no ``run()``).

Also imported by the LiteLLM child process (`_outage_litellm`), so it needs
nothing beyond the library's own runtime dependencies.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2

from llm_rate_limiter.cli.bench._clients import BenchClient
from llm_rate_limiter.cli.bench._metrics import STEADY_FRACTION, CallRecord, outage_arrivals
from llm_rate_limiter.cli.bench._run import _error_name
from llm_rate_limiter.cli.bench._scenarios import BenchRequest

#: Width of a throughput bin, seconds.
BIN = 0.5
#: Pre-outage throughput is the mean of the bins from here to the outage's start
#: (the first replies arrive after 0.4-0.6 s, so the bins before are ramp-up).
STEADY_FROM = 1.0


@dataclass(frozen=True, slots=True)
class Plan:
    """One scenario's load: the calls, the closed loop and the server's outage."""

    name: str
    calls: int
    callers: int
    outage: tuple[float, float]
    call_deadline: float
    cap: float
    late_after: float = 23.0  # "calls still unfinished this long after the outage ended"
    latency: tuple[float, float] = (0.4, 0.2)  # fixed + uniform jitter: 400-600 ms


class Control:
    """``/_control`` and ``/_reset`` of the fault server at *base_url* (for the child process)."""

    def __init__(self, base_url: str) -> None:
        self._http = httpx2.Client(base_url=base_url.removesuffix("/v1"), timeout=10.0)

    def configure(self, settings: Mapping[str, Any]) -> None:
        self._http.post("/_control", json=dict(settings)).raise_for_status()

    def reset(self) -> None:
        self._http.post("/_reset").raise_for_status()

    def close(self) -> None:
        self._http.close()


async def closed_loop(
    client: BenchClient, requests: Sequence[BenchRequest], plan: Plan, t0: float
) -> tuple[list[CallRecord], int]:
    """
    ``plan.callers`` workers, each sending its next call when the last one ended.

    Every call is bounded by ``plan.call_deadline``; the whole run by ``plan.cap``
    seconds after *t0* (then the calls in flight are cancelled).

    Returns:
        The records of the calls that ended, and how many calls had not ended at the cap.
    """
    loop = asyncio.get_running_loop()
    records: list[CallRecord] = []
    pending = iter(range(len(requests)))

    async def worker() -> None:
        for index in pending:
            start = loop.time()
            error = None
            try:
                async with asyncio.timeout(plan.call_deadline) as scope:
                    await client.call(requests[index])
            except TimeoutError as exc:
                error = "call_deadline" if scope.expired() else _error_name(exc)
            except Exception as exc:
                error = _error_name(exc)
            end = loop.time()
            records.append(CallRecord(index, start - t0, end - t0, ok=error is None, error=error))

    tasks = [asyncio.create_task(worker()) for _ in range(plan.callers)]
    _, late = await asyncio.wait(tasks, timeout=max(0.0, t0 + plan.cap - loop.time()))
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    return records, len(requests) - len(records)


async def measure(
    client: BenchClient,
    control: Any,
    settings: Mapping[str, Any],
    warm_up: Mapping[str, Any],
    requests: Sequence[BenchRequest],
    plan: Plan,
) -> tuple[list[CallRecord], int]:
    """Warm *client* up on a fault-free server, then reset it into *settings* and load it."""
    control.configure(warm_up)
    try:
        async with asyncio.timeout(10.0):
            await client.call(requests[0])
    except Exception as exc:  # a client that cannot even warm up still gets measured
        print(f"  warm-up call failed: {_error_name(exc)}")
    control.configure(settings)
    control.reset()  # the server's clock (and outage schedule) restarts here
    return await closed_loop(client, requests, plan, asyncio.get_running_loop().time())


def _bins(successes: Sequence[float], end: float) -> list[float]:
    """Successes per second in consecutive `BIN`-wide bins from 0 to *end*."""
    counts = [0] * max(1, math.ceil(end / BIN))
    for t in successes:
        counts[min(len(counts) - 1, int(t / BIN))] += 1
    return [c / BIN for c in counts]


def figures(
    records: Sequence[CallRecord],
    unfinished: int,
    stats: Mapping[str, Any],
    plan: Plan,
) -> dict[str, Any]:
    """Every figure of one client's run (see ``bench_outage_recovery``'s docstring)."""
    start, length = plan.outage
    end = start + length
    ok_times = [r.finished for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    wall = plan.cap if unfinished else max((r.finished for r in records), default=0.0)
    rates = _bins(ok_times, wall)
    steady = rates[int(STEADY_FROM / BIN) : int(start / BIN)]
    pre = sum(steady) / len(steady) if steady else 0.0
    recovery = next(
        (
            round(i * BIN - end, 2)
            for i in range(math.ceil(end / BIN - 1e-9), len(rates))
            if pre > 0.0 and rates[i] >= STEADY_FRACTION * pre
        ),
        None,
    )
    late_at = end + plan.late_after
    timeline = stats.get("timeline", [])
    in_window, peak = outage_arrivals(timeline, plan.outage)
    by_second = {int(row["t"]): int(row["arrivals"]) for row in timeline}
    after_bins = rates[math.ceil(end / BIN - 1e-9) :]
    after = sorted((r for r in failed if r.finished >= end), key=lambda r: r.finished)
    return {
        "calls": len(records) + unfinished,
        "ok": len(ok_times),
        "failed": len(failed),
        "failures_by_type": dict(Counter(r.error for r in failed).most_common()),
        "unfinished_at_cap": unfinished,
        "wall_s": round(wall, 2),
        "capped": bool(unfinished),
        "server_requests": stats.get("requests"),
        "outage_503s": stats.get("outage_rejections"),
        "outage_arrivals_timeline": in_window,
        "outage_peak_per_s": peak,
        "arrivals_by_second": {
            str(t): by_second.get(t, 0) for t in range(math.floor(start), math.ceil(end))
        },
        "pre_outage_per_s": round(pre, 1),
        "recovery_s": recovery,
        "first_ok_after_s": next((round(t - end, 2) for t in sorted(ok_times) if t >= end), None),
        "best_bin_after_per_s": max(after_bins, default=0.0),
        "left_at_outage_end": sum(1 for r in records if r.finished > end) + unfinished,
        "unfinished_late": sum(1 for r in records if r.finished > late_at) + unfinished,
        "failed_after_recovery": len(after),
        "failed_after_recovery_by_type": dict(Counter(r.error for r in after).most_common()),
        "failed_after_recovery_offsets_s": [round(r.finished - end, 2) for r in after],
        "timeline_per_s": rates,
    }
