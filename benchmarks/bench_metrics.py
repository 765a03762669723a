# SPDX-License-Identifier: MIT
"""
Cost of recording an event in `MetricsCollector`, and its memory over 1,000,000 events.

In the same run:

- ``bare``: one ``counter[key] += 1`` on a dict (the cheapest possible record);
- ``event``: one hook call from a representative mix, in the proportions of a
  call with one attempt: ``call_started``, ``limiter_waited``,
  ``attempt_finished``, ``tokens_used``, ``call_finished`` (plus an error every
  tenth attempt), averaged per event.

Each figure is the best of ``ROUNDS`` rounds of ``CALLS`` calls (five events
each); the target is at most 2 microseconds per event. Memory is traced with
`tracemalloc` after 10,000 and after 1,000,000 events on the same collector
(two simulated seconds per call, so the first 10,000 events already fill
every minute bucket of the hour): it must stay flat.
Run ``python benchmarks/bench_metrics.py``.
"""

from __future__ import annotations

import gc
import json
import time
import tracemalloc

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.monitoring import MetricsCollector
from llm_rate_limiter.testing import FakeClock

ROUNDS = 5
CALLS = 20_000
EVENTS_PER_CALL = 5
TARGET_US = 2.0
MEMORY_EVENTS = (10_000, 100_000, 1_000_000)
#: Simulated seconds between calls: the first 10k events already span over an hour,
#: so every minute bucket is in use before the first measurement.
STEP = 2.0
_START = 1_000_000.0
_SERVICES = ("openai", "moonshot")


def _bare(calls: int) -> float:
    counter: dict[str, int] = {"openai": 0, "moonshot": 0}
    services = _SERVICES
    start = time.perf_counter()
    for i in range(calls * EVENTS_PER_CALL):
        counter[services[i & 1]] += 1
    return (time.perf_counter() - start) / (calls * EVENTS_PER_CALL)


def _record(c: MetricsCollector, calls: int, clock: FakeClock | None = None) -> None:
    timeout = RetryErrorType.TIMEOUT
    for i in range(calls):
        service = _SERVICES[i & 1]
        c.call_started(service)
        c.limiter_waited(service, 0.001, 250.0)
        c.attempt_finished(service, 0.8, timeout if i % 10 == 0 else None)
        c.tokens_used(service, 250.0, 240.0)
        c.call_finished(service, "success", 0.81, 1)
        if clock is not None:
            clock.advance(STEP)


def _ours(calls: int) -> float:
    collector = MetricsCollector(clock=FakeClock())
    start = time.perf_counter()
    _record(collector, calls)
    return (time.perf_counter() - start) / (calls * EVENTS_PER_CALL)


def _memory() -> dict[str, float]:
    """Traced bytes held after 10k and after 1M events on one collector."""
    # A monotonic reading like a host's after days of uptime (minute numbers past 256).
    clock = FakeClock(start=_START)
    collector = MetricsCollector(clock=clock)
    gc.collect()
    tracemalloc.start()
    results: dict[str, float] = {}
    done = 0
    for events in MEMORY_EVENTS:
        _record(collector, (events - done) // EVENTS_PER_CALL, clock)
        done = events
        gc.collect()
        current, _ = tracemalloc.get_traced_memory()
        results[f"kib_after_{events}_events"] = round(current / 1024, 1)
    tracemalloc.stop()
    first, last = (results[f"kib_after_{n}_events"] for n in (MEMORY_EVENTS[0], MEMORY_EVENTS[-1]))
    results["growth_kib"] = round(last - first, 1)
    results["minutes_simulated"] = round((clock.monotonic() - _START) / 60.0, 1)
    return results


def run() -> dict[str, float]:
    """
    Measure the record cost per event against a bare dict increment, and memory.

    Returns:
        Nanoseconds per event for both sides, their ratio, microseconds per
        event, and traced memory after 10k and 1M events.
    """
    _ours(CALLS)  # warm up
    bare: list[float] = []
    ours: list[float] = []
    for _ in range(ROUNDS):  # interleaved so a noisy neighbour hurts both alike
        bare.append(_bare(CALLS))
        ours.append(_ours(CALLS))
    b, o = min(bare), min(ours)
    return {
        "bare_dict_increment_ns": round(b * 1e9, 1),
        "record_event_ns": round(o * 1e9, 1),
        "record_event_us": round(o * 1e6, 3),
        "ratio": round(o / b, 1),
        "target_us": TARGET_US,
        **_memory(),
    }


def test_record_cost_and_flat_memory() -> None:
    """Recording costs at most 2 us per event and memory does not grow with events."""
    result = run()
    assert result["record_event_us"] <= TARGET_US, result
    assert result["growth_kib"] < 16, result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
