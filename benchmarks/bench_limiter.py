# SPDX-License-Identifier: MIT
"""
`ProviderLimiter` against bare aiolimiter: acquire cost, and capacity used under load.

**Acquire cost** (`run`). Both sides have capacity to spare (a rate far above
the load), in the same run:

- ``bare``: ``await limiter.acquire()`` on one ``aiolimiter.AsyncLimiter``;
- ``ours``: ``async with limiter.acquire(500): pass`` on a `ProviderLimiter`
  with requests *and* tokens per minute (two buckets, statistics and the
  metrics hook call included);
- ``ours_all``: the same with tokens per day and ``max_concurrency`` too.

Each figure is the best of ``ROUNDS`` rounds of ``CALLS`` calls; the target is
``ours / bare <= 1.3``.

**Load** (`run_load`). ``LOAD_CALLS`` chat completions, ``LOAD_CONCURRENCY`` at
a time, with the real openai SDK against the fault server limited to
``LOAD_RATE`` requests per second (a bucket of one second's worth), a fresh
server for each side, on the same request set:

- ``sdk_default``: the SDK's own retries (2), no limiter;
- ``sdk_retries_8``: the SDK with ``max_retries=8``;
- ``aiolimiter_tenacity``: ``AsyncLimiter(rate, 1)`` + tenacity (jittered
  exponential backoff on `RateLimitError`, 10 attempts), SDK retries off;
- ``ours``: `ProviderLimiter` at the same rate, retrying 429s after
  ``on_rate_limited`` and settling with each response's headers.

For each: failed calls, 429s drawn (the server's count) and capacity used:
successes divided by what the server could admit during the run (its burst
plus rate x wall time); targets: no failed call, >= 0.98, fewer 429s than
``aiolimiter_tenacity``. Run ``python benchmarks/bench_limiter.py`` (both
parts, about a minute) or ``--acquire`` for the first only.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import openai
from _timing import best_per_call
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from llm_rate_limiter._headers import parse_retry_after
from llm_rate_limiter.limiter import ProviderLimiter, RateLimits
from llm_rate_limiter.testing import FaultConfig, FaultServer

ROUNDS = 7
CALLS = 20_000
TARGET = 1.3
_HUGE = 1e15
LOAD_RATE = 50
LOAD_CALLS = 400
LOAD_CONCURRENCY = 40
CAPACITY_TARGET = 0.98
_MESSAGES: list[Any] = [{"role": "user", "content": "hi there"}]


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
    return await best_per_call(fn, CALLS, ROUNDS)


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


Send = Callable[[openai.AsyncOpenAI], Awaitable[None]]


async def _create(client: openai.AsyncOpenAI) -> Any:
    return await client.chat.completions.with_raw_response.create(
        model="mock-gpt", messages=_MESSAGES
    )


def _sdk_side(retries: int) -> tuple[int, Callable[[], Send]]:
    def make() -> Send:
        async def send(client: openai.AsyncOpenAI) -> None:
            await _create(client)

        return send

    return retries, make


def _tenacity_side() -> tuple[int, Callable[[], Send]]:
    def make() -> Send:
        limiter = AsyncLimiter(LOAD_RATE, 1)

        async def send(client: openai.AsyncOpenAI) -> None:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(openai.RateLimitError),
                wait=wait_random_exponential(multiplier=0.05, max=2.0),
                stop=stop_after_attempt(10),
                reraise=True,
            ):
                with attempt:
                    async with limiter:
                        await _create(client)

        return send

    return 0, make


def _our_side() -> tuple[int, Callable[[], Send]]:
    def make() -> Send:
        limiter = ProviderLimiter(RateLimits(requests_per_minute=LOAD_RATE * 60))

        async def send(client: openai.AsyncOpenAI) -> None:
            for _ in range(10):
                async with limiter.acquire() as permit:
                    try:
                        raw = await _create(client)
                    except openai.RateLimitError as exc:
                        headers = exc.response.headers
                        limiter.on_rate_limited(parse_retry_after(headers), headers)
                        continue
                    permit.settle(headers=raw.headers)
                    return
            msg = "still rate limited after 10 attempts"
            raise RuntimeError(msg)

        return send

    return 0, make


async def _load_side(retries: int, make: Callable[[], Send]) -> dict[str, Any]:
    send = make()
    async with FaultServer(FaultConfig(rps=LOAD_RATE)) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=retries)
        gate = asyncio.Semaphore(LOAD_CONCURRENCY)
        failures = 0

        async def one() -> None:
            nonlocal failures
            async with gate:
                try:
                    await send(client)
                except openai.APIError:
                    failures += 1

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(LOAD_CALLS)))
        wall = time.perf_counter() - start
        stats = server.stats()
        await client.close()
    admissible = LOAD_RATE + LOAD_RATE * wall  # the server's burst + rate x time
    return {
        "failed_calls": failures,
        "rate_limited_429s": stats.rate_limited,
        "requests": stats.requests,
        "succeeded": stats.succeeded,
        "wall_s": round(wall, 3),
        "capacity_used": round(stats.succeeded / admissible, 3),
    }


async def _run_load() -> dict[str, Any]:
    sides = {
        "sdk_default": _sdk_side(2),
        "sdk_retries_8": _sdk_side(8),
        "aiolimiter_tenacity": _tenacity_side(),
        "ours": _our_side(),
    }
    result: dict[str, Any] = {
        "rate_per_s": LOAD_RATE,
        "calls": LOAD_CALLS,
        "concurrency": LOAD_CONCURRENCY,
    }
    for name, (retries, make) in sides.items():
        result[name] = await _load_side(retries, make)
    return result


def run_load() -> dict[str, Any]:
    """
    Run the same load through each side against a fresh fault server.

    Returns:
        Failed calls, 429s drawn, wall time and capacity used, per side.
    """
    return asyncio.run(_run_load())


def test_acquire_overhead() -> None:
    """Our no-wait acquire (requests + tokens) costs at most 1.3x a bare aiolimiter acquire."""
    result = run()
    assert result["ratio"] <= TARGET, result


def test_load() -> None:
    """Ours fails no call, uses >= 98% of the capacity and draws fewer 429s than bare aiolimiter."""
    result = run_load()
    ours, bare = result["ours"], result["aiolimiter_tenacity"]
    assert ours["failed_calls"] == 0, result
    assert ours["capacity_used"] >= CAPACITY_TARGET, result
    assert ours["rate_limited_429s"] <= bare["rate_limited_429s"], result


if __name__ == "__main__":
    report: dict[str, Any] = {"acquire": run()}
    if "--acquire" not in sys.argv:
        report["load"] = run_load()
    print(json.dumps(report, indent=2))
