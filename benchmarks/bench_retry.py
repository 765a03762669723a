# SPDX-License-Identifier: MIT
"""
Cost of the retry wrapper when nothing fails, against a bare tenacity loop.

`Retrier.call` on a no-op coroutine that succeeds, versus
``async for attempt in AsyncRetrying(...): with attempt: await noop()`` (what
a caller would write with tenacity alone: a fresh `AsyncRetrying` per call),
in the same process and event loop. Reports microseconds per call (best of
`ROUNDS` rounds of `CALLS` calls) and the ratio; the target is <= 0.5.

Run: ``python benchmarks/bench_retry.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential_jitter

from llm_rate_limiter.retry import Retrier, RetryBudget, RetryPolicy

CALLS = 20_000
ROUNDS = 5
TARGET_RATIO = 0.5


async def _noop() -> int:
    return 1


async def _bare_tenacity(calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(4),
            wait=wait_exponential_jitter(initial=1.0, max=60.0),
            reraise=True,
        ):
            with attempt:
                await _noop()
    return time.perf_counter() - start


async def _retrier(retrier: Retrier, calls: int) -> float:
    call = retrier.call
    start = time.perf_counter()
    for _ in range(calls):
        await call(_noop)
    return time.perf_counter() - start


def _best_us(results: list[float], calls: int) -> float:
    return min(results) / calls * 1e6


async def _measure(calls: int, rounds: int) -> dict[str, Any]:
    plain = Retrier(RetryPolicy())
    full = Retrier(RetryPolicy(deadline=30.0, budget=RetryBudget()))
    bare: list[float] = []
    ours: list[float] = []
    ours_full: list[float] = []
    await _bare_tenacity(500)  # warm-up
    await _retrier(plain, 500)
    for _ in range(rounds):
        bare.append(await _bare_tenacity(calls))
        ours.append(await _retrier(plain, calls))
        ours_full.append(await _retrier(full, calls))
    bare_us = _best_us(bare, calls)
    ours_us = _best_us(ours, calls)
    full_us = _best_us(ours_full, calls)
    return {
        "calls_per_round": calls,
        "rounds": rounds,
        "tenacity_async_retrying_us": round(bare_us, 2),
        "retrier_call_us": round(ours_us, 2),
        "retrier_call_deadline_budget_us": round(full_us, 2),
        "ratio": round(ours_us / bare_us, 3),
        "ratio_deadline_budget": round(full_us / bare_us, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": ours_us / bare_us <= TARGET_RATIO,
    }


def run(calls: int = CALLS, rounds: int = ROUNDS) -> dict[str, Any]:
    """
    Measure per-call cost of `Retrier.call` and of a bare `AsyncRetrying` loop.

    Args:
        calls: Calls per round.
        rounds: Rounds; the best is reported.

    Returns:
        Microseconds per call for each, and their ratio.
    """
    return asyncio.run(_measure(calls, rounds))


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value}")
