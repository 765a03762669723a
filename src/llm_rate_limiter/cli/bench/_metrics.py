# SPDX-License-Identifier: MIT
"""
The figures of one benchmark run, from the client's records and the server's counters.

- goodput: successes over what the server could admit during the run, its
  burst plus its rate times the wall time (requests, or tokens when the token
  limit binds); only for closed-loop rate-limited scenarios;
- steady goodput (what the targets judge): the same share over the steady
  part of the run only, from the client's HTTP log (see `._steady`);
- outage: requests that reached the server while it was down (its timeline's
  seconds inside the outage window), the most in any one second after the
  first, and the time from the outage's end to the first success that starts
  a 1 s window holding 80% of the offered rate;
- insufficient_quota retries: server requests minus calls sent; for a
  scenario that fails by design, the calls that failed at once (one request,
  refused with a 4xx), from the client's HTTP log.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._scenarios import BenchRequest, Scenario
from ._steady import steady_goodput
from ._targets import evaluate_targets
from ._wire import WireRecord, attempts

__all__ = [
    "STEADY_FRACTION",
    "CallRecord",
    "evaluate_targets",
    "failed_at_once",
    "outage_arrivals",
    "percentile",
    "recovery_time",
    "summarize",
]

#: Throughput counts as steady again at this fraction of the offered rate.
STEADY_FRACTION = 0.8


@dataclass(frozen=True, slots=True)
class CallRecord:
    """
    What happened to one call, seen by the client.

    Attributes:
        index: The request's index in the request set.
        started: Seconds since the run's start when the call was sent.
        finished: Seconds since the run's start when it returned or failed.
        ok: Whether it succeeded.
        error: The failure's name (``"call_deadline"``, ``"not_started"``, an exception).
    """

    index: int
    started: float
    finished: float
    ok: bool
    error: str | None = None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The *q*-th percentile (0..100) of *values*, nearest rank; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def outage_arrivals(
    timeline: Sequence[Mapping[str, int]], outage: tuple[float, float]
) -> tuple[int, int]:
    """
    Requests that reached the server during *outage*, from its per-second timeline.

    Returns:
        ``(total, most in one second after the first second of the outage)``;
        the first second also holds the calls in flight when the outage began.
    """
    start, duration = outage
    first, end = math.floor(start), math.ceil(start + duration)
    per_second = {int(row["t"]): int(row["arrivals"]) for row in timeline}
    total = sum(per_second.get(t, 0) for t in range(first, end))
    later = [per_second.get(t, 0) for t in range(first + 1, end)]
    return total, max(later, default=0)


def recovery_time(
    finished: Sequence[float], outage_end: float, rate: float, run_end: float
) -> float | None:
    """
    Seconds from *outage_end* to the first success that starts a steady 1 s window.

    A window is steady when it holds ``STEADY_FRACTION * rate`` successes.

    Args:
        finished: Completion times of the successful calls.
        outage_end: When the outage ended.
        rate: The offered rate, successes per second when all is well.
        run_end: When the run ended (no window starts after ``run_end - 1``).

    Returns:
        The seconds, or None when throughput never became steady again.
    """
    times = sorted(t for t in finished if t >= outage_end)
    need = STEADY_FRACTION * rate
    for index, first in enumerate(times):
        if first + 1.0 > run_end + 1e-9:
            break
        if bisect.bisect_left(times, first + 1.0) - index >= need:
            return round(first - outage_end, 2)
    return None


def _goodput(
    scenario: Scenario, records: Sequence[CallRecord], requests: Sequence[BenchRequest], wall: float
) -> float | None:
    if not scenario.rate_limited or wall <= 0.0:
        return None
    shares = []
    ok = [r for r in records if r.ok]
    if scenario.rps is not None:
        shares.append(len(ok) / (scenario.rps + scenario.rps * wall))
    if scenario.tps is not None:
        tokens = sum(requests[r.index].tokens for r in ok)
        shares.append(tokens / (scenario.tps + scenario.tps * wall))
    return round(max(shares), 3)


def failed_at_once(records: Sequence[CallRecord], wire: Sequence[WireRecord]) -> int:
    """Failed calls that sent exactly one request, refused with a 4xx (no retry, no timeout)."""
    sent = attempts(wire)
    refused = {r.index for r in wire if r.status is not None and 400 <= r.status < 500}
    return sum(1 for r in records if not r.ok and sent[r.index] == 1 and r.index in refused)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 1)


def summarize(
    scenario: Scenario,
    records: Sequence[CallRecord],
    requests: Sequence[BenchRequest],
    stats: Mapping[str, Any],
    *,
    wire: Sequence[WireRecord] | None = None,
) -> dict[str, Any]:
    """
    The figures of one client's run of *scenario*.

    Args:
        scenario: The scenario run.
        records: The client's call records.
        requests: The request set (for token costs).
        stats: The fault server's ``/_stats`` after the run.
        wire: The client's HTTP log; without it the figures drawn from it are None.

    Returns:
        A JSON-ready dict (see the module docstring for the figures).
    """
    ok = [r for r in records if r.ok]
    sent = [r for r in records if r.error != "not_started"]
    wall = max((r.finished for r in records), default=0.0)
    latencies = [r.finished - r.started for r in ok]
    server_requests = int(stats["requests"])
    summary: dict[str, Any] = {
        "calls": len(records),
        "successes": len(ok),
        "failures": len(records) - len(ok),
        "errors": dict(Counter(r.error for r in records if not r.ok).most_common()),
        "server_requests": server_requests,
        "server_429": int(stats["rate_limited"]),
        "server_429_by_type": dict(stats.get("rate_limited_by_type", {})),
        "server_5xx": int(stats["server_errors"]),
        "share_429": round(int(stats["rate_limited"]) / server_requests, 4)
        if server_requests
        else 0.0,
        "wall_seconds": round(wall, 3),
        "goodput": _goodput(scenario, records, requests, wall),
        "goodput_steady": None if wire is None else steady_goodput(scenario, wire, requests),
        "p50_ms": _ms(percentile(latencies, 50)),
        "p95_ms": _ms(percentile(latencies, 95)),
        "p99_ms": _ms(percentile(latencies, 99)),
        "outage_requests": None,
        "outage_max_per_second": None,
        "recovery_seconds": None,
        "quota_retries": None,
        "failed_at_once": None,
        "http_requests": None if wire is None else len(wire),
        "timeline": list(stats.get("timeline", [])),
    }
    if scenario.outage is not None:
        total, most = outage_arrivals(summary["timeline"], scenario.outage)
        summary["outage_requests"] = total
        summary["outage_max_per_second"] = most
        offered = min(scenario.arrival_rate or math.inf, scenario.rps or math.inf)
        end = sum(scenario.outage)
        last_arrival = end if scenario.last_arrival is None else scenario.last_arrival
        summary["recovery_seconds"] = recovery_time(
            [r.finished for r in ok], end, offered, min(wall, last_arrival + 1.0)
        )
    if scenario.faults.get("insufficient_quota"):
        summary["quota_retries"] = server_requests - len(sent)
    if scenario.fails_by_design and wire is not None:
        summary["failed_at_once"] = failed_at_once(records, wire)
    return summary
