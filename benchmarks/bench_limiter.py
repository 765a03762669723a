# SPDX-License-Identifier: MIT
"""
Cost of an acquire that does not wait: `ProviderLimiter` against bare aiolimiter.

Both sides have capacity to spare (a rate far above the load), in the same run:

- ``bare``: ``await limiter.acquire()`` on one ``aiolimiter.AsyncLimiter``;
- ``ours``: ``async with limiter.acquire(500): pass`` on a `ProviderLimiter`
  with requests *and* tokens per minute (two buckets, statistics and the
  metrics hook call included);
- ``ours_all``: the same with tokens per day and ``max_concurrency`` too.

Each figure is the best of ``ROUNDS`` rounds of ``CALLS`` calls; the target is
``ours / bare <= 1.3``. Run ``python benchmarks/bench_limiter.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from aiolimiter import AsyncLimiter

from llm_rate_limiter._limiter import ProviderLimiter
from llm_rate_limiter._limits import RateLimits

ROUNDS = 7
CALLS = 20_000
TARGET = 1.3
_HUGE = 1e15


async def _bare(calls: int) -> None:
    limiter = AsyncLimiter(_HUGE, 60)
    for _ in range(calls):
        await limiter.acquire()


async def _ours(calls: int) -> None:
    limiter = ProviderLimiter(RateLimits(requests_per_minute=_HUGE, tokens_per_minute=_HUGE))
    for _ in range(calls):
        async with limiter.acquire(500):
            pass


async def _ours_all(calls: int) -> None:
    limits = RateLimits(
        requests_per_minute=_HUGE,
        tokens_per_minute=_HUGE,
        tokens_per_day=_HUGE,
        max_concurrency=10,
    )
    limiter = ProviderLimiter(limits)
    for _ in range(calls):
        async with limiter.acquire(500):
            pass


async def _best(fn: Callable[[int], Awaitable[None]]) -> float:
    """Best seconds per call over the rounds."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        await fn(CALLS)
        best = min(best, (time.perf_counter() - start) / CALLS)
    return best


async def _run() -> dict[str, float]:
    await _best(_bare)  # warm up
    bare: list[float] = []
    ours: list[float] = []
    ours_all: list[float] = []
    # Interleave the sides so a noisy neighbour hurts all of them alike.
    for _ in range(3):
        bare.append(await _best(_bare))
        ours.append(await _best(_ours))
        ours_all.append(await _best(_ours_all))
    b, o, a = min(bare), min(ours), min(ours_all)
    return {
        "bare_aiolimiter_acquire_us": round(b * 1e6, 3),
        "ours_requests_tokens_us": round(o * 1e6, 3),
        "ours_all_limits_us": round(a * 1e6, 3),
        "ratio": round(o / b, 3),
        "all_limits_ratio": round(a / b, 3),
        "target": TARGET,
    }


def run() -> dict[str, float]:
    """
    Measure the no-wait acquire cost, ours against bare aiolimiter, in one run.

    Returns:
        Microseconds per acquire for each side and the ratios to bare aiolimiter.
    """
    return asyncio.run(_run())


def test_acquire_overhead() -> None:
    """Our no-wait acquire (requests + tokens) costs at most 1.3x a bare aiolimiter acquire."""
    result = run()
    assert result["ratio"] <= TARGET, result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
