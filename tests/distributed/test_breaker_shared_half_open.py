# SPDX-License-Identifier: MIT
"""
`SharedCircuitBreaker`'s half-open trial quota in Redis (``REDIS_URL``; without it these fail).

Two breakers on two connections stand in for two processes (real time, short
``reset_timeout``); one test runs four real OS processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from llm_rate_limiter import BreakerPolicy
from llm_rate_limiter._clock import SYSTEM_CLOCK, Clock
from llm_rate_limiter.distributed import (
    SharedCircuitBreaker,
    _breaker_scripts,
    _breaker_trials,
    redis_from_env,
)
from llm_rate_limiter.exceptions import CircuitOpenError
from llm_rate_limiter.testing import FakeClock
from tests.helpers import server_error

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

POLICY = BreakerPolicy(fail_max=1, reset_timeout=0.3)


class Env:
    """Two connections ("processes") and a key prefix of this test's own."""

    def __init__(self, a: aioredis.Redis, b: aioredis.Redis) -> None:
        self.a, self.b = a, b
        self.prefix = f"llmrl-test-{uuid.uuid4().hex[:12]}"
        self.made: list[SharedCircuitBreaker] = []

    def pair(
        self, policy: BreakerPolicy = POLICY, clock_a: Clock = SYSTEM_CLOCK, **kwargs: Any
    ) -> list[SharedCircuitBreaker]:
        """One breaker on each connection, for one service; A's on *clock_a*."""
        made = [
            SharedCircuitBreaker(
                policy, redis=client, service="svc", key_prefix=self.prefix, clock=clock, **kwargs
            )
            for client, clock in ((self.a, clock_a), (self.b, SYSTEM_CLOCK))
        ]
        self.made += made
        return made


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    a, b = await redis_from_env(), await redis_from_env()
    made = Env(a, b)
    try:
        yield made
    finally:
        for breaker in made.made:
            await breaker.aclose()
        await a.delete(*await a.keys(f"{made.prefix}:*"), f"{made.prefix}:-")  # never none
        await a.aclose()
        await b.aclose()


async def opened_everywhere(a: SharedCircuitBreaker, b: SharedCircuitBreaker) -> None:
    """Open A by one failure and have B follow it."""
    await b.sync()
    a.on_failure(a.admit(), server_error(), 0.01)
    await a.flush()
    await b.sync()
    assert ("open", "open") == (a.state, b.state)


Wait = asyncio.Task[int]


async def first_admitted(
    a: SharedCircuitBreaker, b: SharedCircuitBreaker
) -> tuple[SharedCircuitBreaker, Wait, SharedCircuitBreaker, Wait]:
    """Both wait for a trial; return the one admitted first and the other, with their waits."""
    waits = {asyncio.create_task(x.wait_for_admission()): x for x in (a, b)}
    with anyio.fail_after(10):
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    assert 1 == len(done)
    (won,), (lost,) = done, pending
    return waits[won], won, waits[lost], lost


class TestOneTrialAcrossProcesses:
    async def test_the_other_waits_and_a_success_releases_it(self, env: Env) -> None:
        """With one trial slot only one breaker sends; the other's waiter goes when it succeeds."""
        a, b = env.pair()
        await opened_everywhere(a, b)
        winner, won, loser, lost = await first_admitted(a, b)
        done, _ = await asyncio.wait({lost}, timeout=0.5)  # it keeps asking Redis meanwhile
        assert set() == done
        winner.on_success(won.result(), 0.01)
        with anyio.fail_after(10):
            await lost
        assert ("closed", "closed") == (winner.state, loser.state)

    async def test_a_failure_reopens_both_and_the_wait_goes_on(self, env: Env) -> None:
        """A failed trial re-opens the other breaker too; its waiter waits for the next trial."""
        a, b = env.pair()
        await opened_everywhere(a, b)
        winner, won, loser, lost = await first_admitted(a, b)
        winner.on_failure(won.result(), server_error(), 0.01)
        await winner.flush()
        await loser.sync()
        assert ("open", "open", False) == (winner.state, loser.state, lost.done())
        assert 0.1 < loser.seconds_until_trial() <= 0.3
        lost.cancel()

    async def test_two_slots_are_shared_by_two_breakers(self, env: Env) -> None:
        """With half_open_max_calls=2 four waiters in two breakers send two trials, no third."""
        a, b = env.pair(BreakerPolicy(fail_max=1, reset_timeout=0.3, half_open_max_calls=2))
        await opened_everywhere(a, b)
        pending = {asyncio.create_task(x.wait_for_admission()) for x in (a, a, b, b)}
        admitted: set[Wait] = set()
        with anyio.fail_after(10):
            while len(admitted) < 2:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                admitted |= done
        done, _ = await asyncio.wait(pending, timeout=0.5)
        assert (2, set()) == (len(admitted), done)
        for wait in pending:
            wait.cancel()

    async def test_a_reset_elsewhere_releases_the_waiters(self, env: Env) -> None:
        """Calls waiting on a breaker open for 30 s go as soon as another process resets it."""
        a, b = env.pair(BreakerPolicy(fail_max=1, reset_timeout=30.0))
        await opened_everywhere(a, b)
        waiting = asyncio.create_task(b.wait_for_admission())
        await b.sync()  # B knows it has a waiter: from now on it looks at Redis by itself
        a.reset()
        with anyio.fail_after(10):
            await waiting
        assert "closed" == b.state


class TestSlotsComeBack:
    async def test_a_dead_holders_slot_expires(self, env: Env) -> None:
        """A slot a dead process took (never freed) lets the next trial out once it expired."""
        a, b = env.pair()
        await opened_everywhere(a, b)
        trial_at = time.monotonic() + a.seconds_until_trial()
        seconds, micros = await env.a.time()
        expiry = seconds * 1000 + micros // 1000 + int(a.seconds_until_trial() * 1000) + 500
        await env.a.zadd(a.keys[2], {"dead-host:1:x": expiry})
        with anyio.fail_after(10):
            await a.wait_for_admission()
        assert time.monotonic() - trial_at >= 0.45

    async def test_a_cancelled_trial_frees_its_slot_at_once(
        self, env: Env, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Cancelling a trial frees its Redis slot now, not at its expiry (30 s here)."""
        monkeypatch.setattr(_breaker_scripts, "TRIAL_LEASE", 30.0)
        a, b = env.pair()
        await opened_everywhere(a, b)
        winner, won, _, lost = await first_admitted(a, b)
        winner.on_cancel(won.result())
        with anyio.fail_after(10):
            await lost

    async def test_a_spare_slot_nobody_takes_goes_back(
        self, env: Env, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A slot granted for a caller that went elsewhere is given back for the other breaker."""
        monkeypatch.setattr(_breaker_scripts, "TRIAL_LEASE", 30.0)
        clock = FakeClock()
        a, b = env.pair(clock_a=clock)
        await opened_everywhere(a, b)
        clock.advance(a.seconds_until_trial())
        await env.a.delete(a.keys[0])  # the opening ends in Redis too (it runs on real time)
        with pytest.raises(CircuitOpenError):
            a.admit()  # a caller with a fallback: refused, and a slot is asked for
        await a.flush()
        assert 1 == await env.a.zcard(a.keys[2])  # granted, spare: nobody takes it
        with anyio.fail_after(10):
            await b.wait_for_admission()

    async def test_a_long_trial_keeps_its_slot(
        self, env: Env, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A trial in flight for four slot lifetimes (0.3 s each) keeps its slot: it is renewed."""
        for module in (_breaker_scripts, _breaker_trials):
            monkeypatch.setattr(module, "TRIAL_LEASE", 0.3)
        a, b = env.pair()
        await opened_everywhere(a, b)
        winner, won, _, lost = await first_admitted(a, b)
        done, _ = await asyncio.wait({lost}, timeout=1.2)
        assert set() == done
        winner.on_success(won.result(), 0.01)
        with anyio.fail_after(10):
            await lost

    async def test_after_aclose_trials_are_local(self, env: Env) -> None:
        """A closed-down breaker no longer asks Redis for trial slots: its local quota decides."""
        a, b = env.pair()
        await opened_everywhere(a, b)
        await a.aclose()
        await env.a.zadd(a.keys[2], {"held-elsewhere": 2**50})  # Redis has no slot left
        with anyio.fail_after(10):
            await a.wait_for_admission()


class TestRecoveriesAndKeys:
    async def test_a_stale_recovery_keeps_a_newer_opening(self, env: Env) -> None:
        """A's trial succeeding after B opened anew does not erase B's opening: A follows it."""
        clock = FakeClock()
        a, b = env.pair(BreakerPolicy(fail_max=1, reset_timeout=30.0), clock_a=clock)
        a.on_failure(a.admit(), server_error(), 0.01)
        await a.flush()
        clock.advance(30.0)
        await env.a.delete(a.keys[0])  # A's opening is over in Redis too
        with pytest.raises(CircuitOpenError):
            a.admit()
        await a.flush()
        ticket = a.admit()  # A's trial is out; meanwhile B fails and opens anew
        b.on_failure(b.admit(), server_error(), 0.01)
        await b.flush()
        newer = await env.a.get(a.keys[0])
        a.on_success(ticket, 0.01)
        await a.flush()
        assert (newer, "open", "open") == (await env.a.get(a.keys[0]), a.state, b.state)

    async def test_fingerprint_is_in_every_key(self, env: Env) -> None:
        """The fingerprint is in the hash tag of all three keys, and the opening is stored there."""
        a, b = env.pair(fingerprint="3f2a9c0d1b7e")
        tag = "{svc:3f2a9c0d1b7e}"
        assert all(tag in key for key in a.keys)
        await opened_everywhere(a, b)
        assert 1 == await env.a.exists(a.keys[0])


# One process of the four: WORKERS calls at a time against a fake provider whose
# health is a Redis flag; each trial call stamps Redis's time into a list.
PROCESS = """
import asyncio, collections, json, sys
from llm_rate_limiter import BreakerPolicy, ResiliencePolicy, RetryPolicy
from llm_rate_limiter.distributed import SharedCircuitBreaker, redis_from_env

PREFIX, RESET, MAX_CALLS, WORKERS = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), 3
STAMP = "local t = redis.call('TIME'); redis.call('RPUSH', KEYS[2], 1); " \\
    "return redis.call('RPUSH', KEYS[1], t[1] .. string.format('%06d', tonumber(t[2])))"

async def main():
    redis = await redis_from_env()
    policy = BreakerPolicy(fail_max=1, reset_timeout=RESET, half_open_max_calls=MAX_CALLS)
    breaker = SharedCircuitBreaker(policy, redis=redis, service="svc", key_prefix=PREFIX)
    calls = ResiliencePolicy("svc", retry=RetryPolicy(max_retries=0), circuit_breaker=breaker)
    stamp = redis.register_script(STAMP)
    unexpected, recovered = collections.Counter(), False

    async def send():
        if breaker.state == "half_open":  # a trial (read as admitted: nothing awaited since)
            await stamp(keys=[PREFIX + ":trials", PREFIX + ":trial-events"])
        healthy, stop = await redis.mget(PREFIX + ":healthy", PREFIX + ":stop")
        await asyncio.sleep(0.01)  # the fake provider's latency
        if healthy != b"1":
            raise ConnectionError("the fake provider is down")
        return stop == b"1"

    async def worker():
        nonlocal recovered
        while True:
            try:
                stop = await calls.call(send)
            except ConnectionError:  # the fake provider is down
                continue
            except Exception as exc:
                unexpected[type(exc).__name__] += 1
                continue
            if not recovered:
                recovered = True
                await redis.rpush(PREFIX + ":recovered", 1)
            if stop:
                return

    await breaker.sync()
    await redis.rpush(PREFIX + ":ready", 1)
    async with asyncio.timeout(90):
        await asyncio.gather(*(worker() for _ in range(WORKERS)))
    await breaker.aclose()
    print(json.dumps({"unexpected": unexpected}))

asyncio.run(main())
"""


async def pop(redis: aioredis.Redis, key: str) -> None:
    """Take one entry of the list *key*, waiting for it (under the client's socket timeout)."""
    while not await redis.blpop([key], timeout=2):
        pass


async def test_four_processes_share_the_trial_quota(tmp_path: Path) -> None:
    """Across 4 OS processes at most half_open_max_calls trials go out per reset period."""
    reset, max_calls, periods = 0.6, 2, 5
    prefix = f"llmrl-test-{uuid.uuid4().hex[:12]}"
    redis = aioredis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    script = tmp_path / "process.py"
    script.write_text(PROCESS)
    args = [str(script), prefix, str(reset), str(max_calls)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(4)
    ]
    try:
        with anyio.fail_after(120):
            for _ in procs:
                await pop(redis, f"{prefix}:ready")
            for _ in range(periods * max_calls):  # the fake provider fails every trial
                await pop(redis, f"{prefix}:trial-events")
            await redis.set(f"{prefix}:healthy", "1")
            for _ in procs:
                await pop(redis, f"{prefix}:recovered")
            await redis.set(f"{prefix}:stop", "1")
            outputs = [await proc.communicate() for proc in procs]
        stamps = sorted(int(raw) / 1e6 for raw in await redis.lrange(f"{prefix}:trials", 0, -1))
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await redis.delete(*await redis.keys(f"{prefix}:*"), f"{prefix}:-")  # never none
        await redis.aclose()
    assert [0, 0, 0, 0] == [proc.returncode for proc in procs], outputs
    assert [{"unexpected": {}}] * 4 == [json.loads(out) for out, _ in outputs]
    # Trials of one period start together; the next period starts reset seconds later.
    crowded = max(sum(s <= t < s + reset / 2 for t in stamps) for s in stamps)
    assert len(stamps) >= periods * max_calls
    assert crowded <= max_calls
