# SPDX-License-Identifier: MIT
"""
`RedisRateLimiter` against the in-process `ProviderLimiter`, and a two-process budget.

Needs Redis at ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``).

**Acquire cost** (`run`, part ``acquire``). Capacity to spare on every side;
each figure is the best of ``ROUNDS`` rounds of ``CALLS`` sequential calls:

- ``ping``: one ``PING`` round trip (the floor of anything shared);
- ``local``: ``async with ProviderLimiter.acquire(500)`` (requests + tokens);
- ``redis``: the same on `RedisRateLimiter` (one script call);
- ``redis_settle``: plus ``permit.settle(used_tokens=...)`` with a changed
  count, waiting for the background correction (a second script call);
- ``redis_concurrency``: with ``max_concurrency`` too (the release is a
  ``ZREM`` round trip).

Target: ``redis`` within 2.5 ``ping`` round trips (the script itself does
about ten commands on the server).

**Two processes** (part ``processes``). Two OS processes, each with its own
client and limiter, take ``PROCESS_CALLS`` admissions each from one shared
budget of ``PROCESS_RATE`` requests per second; the aggregate rate after the
initial burst must stay within 2% of the budget.

**Waiters** (part ``waiters``). ``WAITER_PROCESSES`` OS processes with 1, 5
and 25 waiting callers each share a ``WAITER_RATE`` requests/s budget for
``WAITER_SECONDS`` (saturated: every caller always waits); each process
counts the admission scripts it ran (a wrapper around the script object).
Target: at most 2 script calls per admission however many wait (one local
queue per process; its head alone asks Redis, and a reservation needs no
second look), and the budget used within 2%.

Run ``python benchmarks/bench_redis.py``.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from _timing import best_per_call

from llm_rate_limiter.distributed import RedisRateLimiter, redis_from_env
from llm_rate_limiter.limiter import ProviderLimiter, RateLimits

ROUNDS = 5
CALLS = 2_000
TARGET_ROUND_TRIPS = 2.5
PROCESS_RATE = 100.0
PROCESS_CALLS = 150
PROCESS_TOLERANCE = 0.02
WAITER_PROCESSES = 4
WAITERS = (1, 5, 25)
WAITER_RATE = 100.0
WAITER_SECONDS = 3.0
TARGET_SCRIPTS_PER_ADMISSION = 2.0
_HUGE = 1e15


async def _best(fn: Callable[[int], Awaitable[None]]) -> float:
    """Best seconds per call over the rounds."""
    return await best_per_call(fn, CALLS, ROUNDS)


async def _acquire() -> dict[str, float]:
    client = await redis_from_env()
    prefix = f"llmrl-bench-{uuid.uuid4().hex[:8]}"
    limits = RateLimits(requests_per_minute=_HUGE, tokens_per_minute=_HUGE)
    local = ProviderLimiter(limits)
    shared = RedisRateLimiter(client, limits, service="bench", key_prefix=prefix)
    conc = RedisRateLimiter(
        client,
        RateLimits(requests_per_minute=_HUGE, tokens_per_minute=_HUGE, max_concurrency=10),
        service="bench-conc",
        key_prefix=prefix,
    )

    async def ping(calls: int) -> None:
        for _ in range(calls):
            await client.ping()

    def through(limiter: Any, settle: bool = False) -> Callable[[int], Awaitable[None]]:
        async def loop(calls: int) -> None:
            for _ in range(calls):
                async with limiter.acquire(500) as permit:
                    if settle:
                        permit.settle(used_tokens=400)
                if settle:
                    await limiter.flush()

        return loop

    try:
        await _best(ping)  # warm up (and load the scripts)
        await _best(through(shared))
        result = {
            "ping_us": await _best(ping),
            "local_us": await _best(through(local)),
            "redis_us": await _best(through(shared)),
            "redis_settle_us": await _best(through(shared, settle=True)),
            "redis_concurrency_us": await _best(through(conc)),
        }
    finally:
        await shared.aclose()
        await conc.aclose()
        keys = await client.keys(f"{prefix}:*")
        if keys:
            await client.delete(*keys)
        await client.aclose()
    out = {name: round(value * 1e6, 1) for name, value in result.items()}
    out["redis_round_trips"] = round(result["redis_us"] / result["ping_us"], 2)
    out["target_round_trips"] = TARGET_ROUND_TRIPS
    return out


async def _take(prefix: str, calls: int) -> list[float]:
    client = await redis_from_env()
    limiter = RedisRateLimiter(
        client,
        RateLimits(requests_per_minute=PROCESS_RATE * 60, burst=0.5),
        service="bench",
        key_prefix=prefix,
    )
    times = []
    try:
        for _ in range(calls):
            async with limiter.acquire():
                times.append(time.time())
    finally:
        await limiter.aclose()
        await client.aclose()
    return times


def _process(prefix: str, calls: int) -> list[float]:
    return asyncio.run(_take(prefix, calls))


def _processes() -> dict[str, float]:
    prefix = f"llmrl-bench-{uuid.uuid4().hex[:8]}"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        parts = pool.starmap(_process, [(prefix, PROCESS_CALLS)] * 2)
    times = sorted(t for part in parts for t in part)
    burst = int(PROCESS_RATE * 0.5)
    after_burst = times[burst:]
    rate = (len(after_burst) - 1) / (after_burst[-1] - after_burst[0])
    return {
        "budget_per_s": PROCESS_RATE,
        "admitted": len(times),
        "aggregate_rate_per_s": round(rate, 2),
        "rate_ratio": round(rate / PROCESS_RATE, 4),
        "tolerance": PROCESS_TOLERANCE,
    }


async def _wait_in_line(prefix: str, waiters: int, barrier: Any) -> dict[str, Any]:
    client = await redis_from_env()
    limits = RateLimits(requests_per_minute=WAITER_RATE * 60, burst=0.5)
    limiter = RedisRateLimiter(client, limits, service="bench-waiters", key_prefix=prefix)
    script = limiter._acquire_script
    scripts = 0

    async def counted(**kwargs: Any) -> Any:
        nonlocal scripts
        scripts += 1
        return await script(**kwargs)

    limiter._acquire_script = counted  # type: ignore[assignment]
    times: list[float] = []
    await asyncio.get_running_loop().run_in_executor(None, barrier.wait, 60)
    end = time.time() + WAITER_SECONDS

    async def caller() -> None:
        while time.time() < end:
            async with limiter.acquire():
                times.append(time.time())

    try:
        await asyncio.gather(*(caller() for _ in range(waiters)))
    finally:
        await limiter.aclose()
        await client.aclose()
    return {"times": times, "scripts": scripts}


def _waiter_process(prefix: str, waiters: int, barrier: Any) -> dict[str, Any]:
    return asyncio.run(_wait_in_line(prefix, waiters, barrier))


def _waiters() -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    rows = {}
    with ctx.Manager() as manager, ctx.Pool(WAITER_PROCESSES) as pool:
        for waiters in WAITERS:
            prefix = f"llmrl-bench-{uuid.uuid4().hex[:8]}"
            barrier = manager.Barrier(WAITER_PROCESSES)
            args = [(prefix, waiters, barrier)] * WAITER_PROCESSES
            parts = pool.starmap_async(_waiter_process, args).get(timeout=120)
            times = sorted(t for part in parts for t in part["times"])
            scripts = sum(part["scripts"] for part in parts)
            after_burst = times[int(WAITER_RATE * 0.5) :]
            rate = (len(after_burst) - 1) / (after_burst[-1] - after_burst[0])
            rows[f"{waiters}_per_process"] = {
                "admitted": len(times),
                "scripts": scripts,
                "scripts_per_admission": round(scripts / len(times), 3),
                "rate_ratio": round(rate / WAITER_RATE, 4),
            }
    return {
        "processes": WAITER_PROCESSES,
        "budget_per_s": WAITER_RATE,
        "seconds": WAITER_SECONDS,
        "target_scripts_per_admission": TARGET_SCRIPTS_PER_ADMISSION,
        **rows,
    }


def run() -> dict[str, Any]:
    """
    Measure the shared acquire's cost, two processes' rate and the scripts per admission.

    Returns:
        Microseconds per call for each side (and the acquire as a multiple
        of a PING), the two-process rate figures, and per count of waiters
        the script calls per admission.
    """
    return {
        "acquire": asyncio.run(_acquire()),
        "processes": _processes(),
        "waiters": _waiters(),
    }


def test_redis_bench() -> None:
    """A shared acquire costs at most 2.5 round trips; processes keep to the budget, 2 scripts."""
    result = run()
    assert result["acquire"]["redis_round_trips"] <= TARGET_ROUND_TRIPS, result
    assert abs(result["processes"]["rate_ratio"] - 1.0) <= PROCESS_TOLERANCE, result
    for waiters in WAITERS:
        row = result["waiters"][f"{waiters}_per_process"]
        assert row["scripts_per_admission"] <= TARGET_SCRIPTS_PER_ADMISSION, result
        assert abs(row["rate_ratio"] - 1.0) <= PROCESS_TOLERANCE, result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
