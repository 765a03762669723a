# SPDX-License-Identifier: MIT
"""
Closed-state cost per call of `AsyncCircuitBreaker` against bare pybreaker.

Both sides guard the same awaited no-op coroutine, in the same run:

- ``bare``: ``with breaker.calling(): await noop()`` on a plain
  ``pybreaker.CircuitBreaker`` (the cheapest correct asyncio use of pybreaker);
- ``ours``: ``admit()``, ``await noop()``, ``on_success(ticket, latency)``
  with the latency timed on the breaker's clock (what the policy's hot path does);
- ``guard``: ``async with breaker.guard(): await noop()``.

Each figure is the best of ``ROUNDS`` rounds of ``CALLS`` calls; the target is
``ours / bare <= 1.3``. Run ``python benchmarks/bench_breaker.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import pybreaker
from _timing import best_per_call

from llm_rate_limiter.breaker import AsyncCircuitBreaker, BreakerPolicy

ROUNDS = 7
CALLS = 20_000
TARGET = 1.3


async def noop() -> None:
    """The guarded call: a coroutine that returns at once."""


async def _bare(calls: int) -> None:
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    for _ in range(calls):
        with breaker.calling():
            await noop()


async def _ours(calls: int) -> None:
    breaker = AsyncCircuitBreaker(BreakerPolicy(failure_rate_threshold=0.5))
    admit = breaker.admit
    on_success = breaker.on_success
    mono = time.monotonic
    for _ in range(calls):
        ticket = admit()
        start = mono()
        await noop()
        on_success(ticket, mono() - start)


async def _guard(calls: int) -> None:
    breaker = AsyncCircuitBreaker(BreakerPolicy(failure_rate_threshold=0.5))
    for _ in range(calls):
        async with breaker.guard():
            await noop()


async def _best(fn: Callable[[int], Awaitable[None]]) -> float:
    """Best seconds per call over the rounds."""
    return await best_per_call(fn, CALLS, ROUNDS)


async def _run() -> dict[str, float]:
    await _best(_bare)  # warm up
    bare: list[float] = []
    ours: list[float] = []
    guard: list[float] = []
    # Interleave the sides so a noisy neighbour hurts all of them alike.
    for _ in range(3):
        bare.append(await _best(_bare))
        ours.append(await _best(_ours))
        guard.append(await _best(_guard))
    b, o, g = min(bare), min(ours), min(guard)
    return {
        "bare_pybreaker_us": round(b * 1e6, 3),
        "ours_admit_on_success_us": round(o * 1e6, 3),
        "ours_guard_us": round(g * 1e6, 3),
        "ratio": round(o / b, 3),
        "guard_ratio": round(g / b, 3),
        "target": TARGET,
    }


def run() -> dict[str, float]:
    """
    Measure the closed-state cost per call, ours against bare pybreaker, in one run.

    Returns:
        Microseconds per call for each side and the ratios to bare pybreaker.
    """
    return asyncio.run(_run())


def test_closed_state_overhead() -> None:
    """Our closed-state admit + on_success costs at most 1.3x a bare pybreaker call."""
    result = run()
    assert result["ratio"] <= TARGET, result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
