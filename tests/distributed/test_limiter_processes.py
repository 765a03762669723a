# SPDX-License-Identifier: MIT
"""
`RedisRateLimiter` shared by real OS processes (``multiprocessing``, spawn) through ``REDIS_URL``.

Each worker process builds its own client and limiter, waits at a barrier
so all start together, and reports the wall-clock instants of its
admissions and how many admission scripts it ran. Everything is bounded in
time; a key prefix of each test's own keeps runs apart.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from llm_rate_limiter import RateLimits
from llm_rate_limiter.distributed import RedisRateLimiter, redis_from_env

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

RATE = 20.0  # requests per second, shared
BURST = 0.5  # so the bucket holds 10


async def _work(prefix: str, callers: int, seconds: float, barrier: Any) -> dict[str, Any]:
    client = await redis_from_env()
    limits = RateLimits(requests_per_minute=RATE * 60, burst=BURST)
    limiter = RedisRateLimiter(client, limits, service="svc", key_prefix=prefix)
    script = limiter._acquire_script
    scripts = 0

    async def counted(**kwargs: Any) -> Any:
        nonlocal scripts
        scripts += 1
        return await script(**kwargs)

    limiter._acquire_script = counted  # type: ignore[assignment]
    times: list[float] = []
    await asyncio.get_running_loop().run_in_executor(None, barrier.wait, 60)
    end = time.time() + seconds

    async def caller() -> None:
        while time.time() < end:
            async with limiter.acquire():
                times.append(time.time())

    try:
        await asyncio.gather(*(caller() for _ in range(callers)))
    finally:
        await limiter.aclose()
        await client.aclose()
    return {"times": times, "scripts": scripts}


def _worker(prefix: str, callers: int, seconds: float, barrier: Any) -> dict[str, Any]:
    return asyncio.run(_work(prefix, callers, seconds, barrier))


def run_workers(processes: int, callers: int, seconds: float) -> list[dict[str, Any]]:
    """Run *processes* workers of *callers* callers each for *seconds*; their reports."""
    ctx = multiprocessing.get_context("spawn")
    prefix = f"llmrl-test-{uuid.uuid4().hex[:12]}"
    with ctx.Manager() as manager:
        barrier = manager.Barrier(processes)
        with ctx.Pool(processes) as pool:
            pending = pool.starmap_async(_worker, [(prefix, callers, seconds, barrier)] * processes)
            return pending.get(timeout=60 + seconds)


def worst_excess(times: list[float], capacity: float, rate: float) -> float:
    """The most any window [t_i, t_j] of admissions holds above capacity + rate * width."""
    times = sorted(times)
    return max(
        (j - i + 1) - (capacity + rate * (times[j] - times[i]))
        for i, j in itertools.combinations(range(len(times)), 2)
    )


class TestProcesses:
    def test_four_processes_use_one_limit_and_never_pass_it(self) -> None:
        """4 processes x 5 callers take >= 95% of a shared 20/s and never more than one burst."""
        reports = run_workers(4, 5, 4.0)
        times = sorted(t for report in reports for t in report["times"])
        assert all(report["times"] for report in reports)  # every process got its turns
        capacity = RATE * BURST
        # Never above the bucket plus the rate over any window (0.5 of slack for the
        # time between Redis admitting a call and the worker reading its clock).
        assert worst_excess(times, capacity, RATE) <= 0.5
        used = (len(times) - capacity) / (RATE * (times[-1] - times[0]))
        assert used >= 0.95, used

    def test_25_waiters_per_process_cost_at_most_2_scripts_per_admission(self) -> None:
        """4 processes x 25 waiters on one 20/s limit run at most 2 admission scripts per call."""
        reports = run_workers(4, 25, 3.0)
        admitted = sum(len(report["times"]) for report in reports)
        scripts = sum(report["scripts"] for report in reports)
        assert admitted >= RATE * 3.0 * 0.9
        assert scripts / admitted <= 2.0, (scripts, admitted)


_HOLDER = """
import asyncio, sys
from llm_rate_limiter import RateLimits
from llm_rate_limiter.distributed import RedisRateLimiter, redis_from_env

async def main():
    client = await redis_from_env()
    limiter = RedisRateLimiter(client, RateLimits(max_concurrency=1), service="svc",
                               key_prefix=sys.argv[1])
    await limiter.acquire().__aenter__()
    print("held", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
def holder() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A process that takes the only slot of a fresh prefix (default lease) and then hangs."""
    prefix = f"llmrl-test-{uuid.uuid4().hex[:12]}"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, prefix], stdout=subprocess.PIPE, text=True
    )
    try:
        yield proc, prefix
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


class TestLeases:
    async def test_a_killed_holders_slot_returns_within_its_lease(
        self, holder: tuple[subprocess.Popen[str], str]
    ) -> None:
        """A process SIGKILLed holding the only slot has it back within the 10 s default lease."""
        proc, prefix = holder
        assert proc.stdout is not None
        with anyio.fail_after(30):
            assert "held\n" == await anyio.to_thread.run_sync(proc.stdout.readline)
        client = await redis_from_env()
        limiter = RedisRateLimiter(
            client, RateLimits(max_concurrency=1), service="svc", key_prefix=prefix
        )
        loop = asyncio.get_running_loop()
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await limiter.acquire().__aenter__()  # held by the other process
            os.kill(proc.pid, signal.SIGKILL)
            killed = loop.time()
            with anyio.fail_after(20):
                async with limiter.acquire():
                    waited = loop.time() - killed
        finally:
            await limiter.aclose()
            keys = await client.keys(f"{prefix}:*")
            if keys:
                await client.delete(*keys)
            await client.aclose()
        assert 10.0 == limiter._lease
        assert waited <= 10.0 + 1.5
