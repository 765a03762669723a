# SPDX-License-Identifier: MIT
"""
Steady goodput: the share of the server's limit a client uses once warm-up is over.

A short run is mostly warm-up: the burst the server's bucket holds at the start,
a client's own (smaller) burst, the settling of its pacing after it, and the
last reply's latency. The whole-run goodput (successes over the server's burst
plus its rate times the wall time) charges all of that to the client, so 40 calls
read 0.93 where 400 read 0.986. The steady part leaves it out and keeps the rate:

- it starts `SETTLE_SECONDS` after the admission (a request the server
  answered 200, from the client's HTTP log) that takes the client past what
  the server's bucket held at the start, and ends at the last admission;
- what the server could admit in it is its rate times the span, plus what its
  bucket (replayed from the admission times) held at the span's start and gave
  up by its end: capacity refilled while the burst went out is on offer, a
  margin a client keeps in the bucket throughout is not a rate lost;
- requests, or tokens (each request's charge), whichever binds: the larger share;
- fewer than `MIN_STEADY` admissions in the steady part: not measured (None).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence

from ._scenarios import BenchRequest, Scenario
from ._wire import WireRecord

__all__ = ["MIN_STEADY", "SETTLE_SECONDS", "steady_goodput"]

#: Admissions a steady part needs to be measured.
MIN_STEADY = 10
#: Seconds after the burst left out of the steady part, for a client's pacing to settle
#: (ours corrects its buckets from the first replies' headers there).
SETTLE_SECONDS = 0.25


def _levels(
    times: Sequence[float], costs: Sequence[float], burst: float, rate: float
) -> list[float]:
    """The server bucket's level after each admission, replayed from the admission times."""
    level, last, levels = burst, 0.0, []
    for t, cost in zip(times, costs, strict=True):
        level = max(0.0, min(burst, level + rate * (t - last)) - cost)
        last = t
        levels.append(level)
    return levels


def _steady_share(
    times: Sequence[float], costs: Sequence[float], burst: float, rate: float
) -> float | None:
    """What was admitted after the burst, over what the server could admit in that span."""
    # Steady once the client is past what the bucket held at the start, plus SETTLE_SECONDS.
    totals = itertools.accumulate(costs)
    past = next((i for i, total in enumerate(totals) if total > burst), None)
    if past is None:
        return None
    first = bisect.bisect_left(times, times[past] + SETTLE_SECONDS)
    if len(times) - 1 - first < MIN_STEADY:
        return None
    span = times[-1] - times[first]
    if span <= 0.0:
        return None
    levels = _levels(times, costs, burst, rate)
    # Capacity the bucket still held (refilled while the burst went out) and gave up in the
    # span was on offer too; a margin it keeps throughout is not a rate lost.
    drawn = max(0.0, levels[first] - levels[-1])
    return sum(costs[first + 1 :]) / (rate * span + drawn)


def steady_goodput(
    scenario: Scenario, wire: Sequence[WireRecord], requests: Sequence[BenchRequest]
) -> float | None:
    """
    The share of the server's limit *wire*'s client used in its steady part, or None.

    Args:
        scenario: The scenario run (its limits, and the server's bucket sizes).
        wire: The client's HTTP log.
        requests: The request set (the token charge of each request).

    Returns:
        The share, rounded to 3 places; None for a scenario without a closed-loop limit
        or with fewer than `MIN_STEADY` admissions in the steady part.
    """
    if not scenario.rate_limited:
        return None
    admitted = sorted((r for r in wire if r.status == 200 and r.index is not None), key=_sent)
    times = [r.sent for r in admitted]
    shares = []
    if scenario.rps is not None and scenario.request_burst is not None:
        ones = [1.0] * len(times)
        shares.append(_steady_share(times, ones, scenario.request_burst, scenario.rps))
    if scenario.tps is not None and scenario.token_burst is not None:
        costs = [float(requests[r.index].tokens) for r in admitted if r.index is not None]
        shares.append(_steady_share(times, costs, scenario.token_burst, scenario.tps))
    measured = [share for share in shares if share is not None]
    return round(max(measured), 3) if measured else None


def _sent(record: WireRecord) -> float:
    return record.sent
