# SPDX-License-Identifier: MIT
"""Timing helper shared by the micro-benchmarks (not a benchmark itself: no ``run()``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable


async def best_per_call(fn: Callable[[int], Awaitable[None]], calls: int, rounds: int) -> float:
    """Best seconds per call of ``await fn(calls)`` over *rounds* rounds."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        await fn(calls)
        best = min(best, (time.perf_counter() - start) / calls)
    return best
