# SPDX-License-Identifier: MIT
"""
`RedisRateLimiter` when Redis itself fails: killed, stalled, restarted.

Each test starts its own ``redis-server`` on a free port (no persistence;
``redis_server.RedisServer``), kills it (SIGKILL), stalls it (SIGSTOP /
SIGCONT) and restarts it on the same port, so a restart loses every key, as
a real one without persistence does. Without ``redis-server`` these tests fail.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from llm_rate_limiter import RateLimits
from llm_rate_limiter._hooks import NullHook
from llm_rate_limiter.distributed import RedisRateLimiter, redis_from_env
from llm_rate_limiter.exceptions import RateLimitTimeoutError, SharedStateUnavailableError
from tests.distributed.redis_server import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

TIMEOUT = 0.25
#: A call must never be held longer than this by Redis failing (generous on a loaded CI box).
BOUND = TIMEOUT + 0.2
#: Seconds a call takes once admitted.
CALL = 0.002
#: Callers stop after this many calls in all, whatever happens.
MAX_CALLS = 200_000


@pytest.fixture
def server() -> Iterator[RedisServer]:
    made = RedisServer(timeout=10.0)
    made.start()
    try:
        yield made
    finally:
        made.kill()


class Hook(NullHook):
    """Records ``shared_state_changed`` (and when), and waits for a count of them."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, bool]] = []
        self.at: list[float] = []
        self._changed = asyncio.Event()

    def shared_state_changed(self, service: str, available: bool) -> None:
        self.changes.append((service, available))
        self.at.append(asyncio.get_running_loop().time())
        self._changed.set()

    async def wait_for(self, count: int) -> None:
        while len(self.changes) < count:
            self._changed.clear()
            await self._changed.wait()


class Env:
    """Limiters (and their callers) on connections to the test's server, closed at the end."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.prefix = f"llmrl-test-{uuid.uuid4().hex[:12]}"
        self.clients: list[aioredis.Redis] = []
        self.limiters: list[RedisRateLimiter] = []
        self.callers: list[Callers] = []

    async def limiter(self, limits: RateLimits, **kwargs: Any) -> RedisRateLimiter:
        client = await redis_from_env(self.server.url)
        self.clients.append(client)
        kwargs.setdefault("redis_timeout", TIMEOUT)
        made = RedisRateLimiter(client, limits, service="svc", key_prefix=self.prefix, **kwargs)
        self.limiters.append(made)
        return made

    async def aclose(self) -> None:
        for callers in self.callers:
            await callers.stop(check=False)
        for limiter in self.limiters:
            await limiter.aclose()
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def env(server: RedisServer) -> AsyncIterator[Env]:
    made = Env(server)
    try:
        yield made
    finally:
        await made.aclose()


class Callers:
    """Callers looping through limiters, recording (limiter, admitted at, took) per call."""

    def __init__(self, env: Env, limiters: list[RedisRateLimiter], per_limiter: int) -> None:
        env.callers.append(self)
        self.log: list[tuple[int, float, float]] = []
        self._grew = asyncio.Event()
        self.tasks = [
            asyncio.ensure_future(self._loop(i, limiter))
            for i, limiter in enumerate(limiters)
            for _ in range(per_limiter)
        ]

    async def _loop(self, i: int, limiter: RedisRateLimiter) -> None:
        loop = asyncio.get_running_loop()
        while len(self.log) < MAX_CALLS:
            start = loop.time()
            async with limiter.acquire():
                now = loop.time()
                self.log.append((i, now, now - start))
                self._grew.set()
                await asyncio.sleep(CALL)  # the call (a local admission alone never yields)

    async def wait_for(self, count: int, since: float = -1.0, who: int | None = None) -> None:
        """Until *count* admissions after *since* (of limiter *who*, or any)."""
        while sum(1 for i, t, _ in self.log if t > since and who in (None, i)) < count:
            self._grew.clear()
            await self._grew.wait()

    async def stop(self, check: bool = True) -> None:
        """Cancel the callers; re-raise what any of them raised (if *check*)."""
        for task in self.tasks:
            if check and task.done():
                task.result()
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def worst_excess(times: list[float], capacity: float, rate: float) -> float:
    """The most any window [t_i, t_j] of admissions holds above capacity + rate * width."""
    times = sorted(times)
    return max(
        (j - i + 1) - (capacity + rate * (times[j] - times[i]))
        for i, j in itertools.combinations(range(len(times)), 2)
    )


class TestFailOpen:
    async def test_a_killed_redis_leaves_each_its_share_then_recovers(
        self, env: Env, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Redis killed: two limiters go on at half of 20/s each; restarted: shared, no burst."""
        caplog.set_level(logging.WARNING, logger="llm_rate_limiter")
        hooks = [Hook(), Hook()]
        limits = RateLimits(requests_per_minute=20 * 60, burst=0.5)  # 10 at once, 20/s
        limiters = [await env.limiter(limits, hook=h, heartbeat_interval=0.2) for h in hooks]
        loop = asyncio.get_running_loop()
        callers = Callers(env, limiters, 5)
        with anyio.fail_after(15):
            await callers.wait_for(20)
            while any(lim.statistics().live_processes != 2 for lim in limiters):
                await callers.wait_for(len(callers.log) + 1)  # the heartbeats counted both
            env.server.kill()
            killed = loop.time()
            for hook in hooks:
                await hook.wait_for(1)
            # 10 more local admissions each: at 10/s, about a second.
            for i in range(2):
                await callers.wait_for(10, since=killed + 0.5, who=i)
        down = [(i, t) for i, t, _ in callers.log if t > killed + 0.5]
        for i in range(2):
            mine = [t for j, t in down if j == i]
            rate = (len(mine) - 1) / (mine[-1] - mine[0])
            assert 10 * 0.8 <= rate <= 10 * 1.1, (i, rate)  # alone it would take all 20/s
        assert all(not lim.statistics().shared_state_available for lim in limiters)
        env.server.start()
        with anyio.fail_after(15):
            for hook in hooks:
                await hook.wait_for(2)
            back = max(t for i, t, _ in callers.log)
            await callers.wait_for(40, since=back)
        await callers.stop()
        assert [("svc", False), ("svc", True)] == hooks[0].changes == hooks[1].changes
        # Both probe on the same wall-clock instants: back together, not up to 1 s apart.
        assert abs(hooks[0].at[1] - hooks[1].at[1]) < 0.1
        assert all(lim.statistics().shared_state_available for lim in limiters)
        # No burst above the limit before, across and after the outage and the restart.
        assert worst_excess([t for _, t, _ in callers.log], 10, 20) <= 2.0
        after = [t for _, t, _ in callers.log if t > back]
        assert 20 * 0.85 <= (len(after) - 1) / (after[-1] - after[0]) <= 20 * 1.1
        stats = await env.clients[0].info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] >= 40  # shared again
        warnings = [r for r in caplog.records if "shared state of 'svc'" in r.getMessage()]
        assert 4 == len(warnings)  # one per transition per limiter

    async def test_a_stalled_redis_never_holds_a_call_past_the_timeout(self, env: Env) -> None:
        """With Redis stopped (SIGSTOP), no call waits longer than redis_timeout + 0.2 s."""
        limits = RateLimits(requests_per_minute=60_000_000, max_concurrency=100)  # never binding
        hook = Hook()
        limiter = await env.limiter(limits, hook=hook)
        loop = asyncio.get_running_loop()
        callers = Callers(env, [limiter], 20)
        with anyio.fail_after(15):
            await callers.wait_for(100)
            env.server.stall()
            stalled = loop.time()
            await hook.wait_for(1)
            await callers.wait_for(2000, since=stalled)
            env.server.stall(False)
            await hook.wait_for(2)
            resumed = loop.time()
            await callers.wait_for(100, since=resumed)
        await callers.stop()
        during = [took for _, t, took in callers.log if t > stalled and t - took < resumed]
        assert max(during) <= BOUND, max(during)
        assert [("svc", False), ("svc", True)] == hook.changes

    async def test_a_stalled_redis_never_holds_a_slot_waiter_past_the_timeout(
        self, env: Env
    ) -> None:
        """A call blocked on a slot notification leaves within redis_timeout + 0.2 s of a stall."""
        limits = RateLimits(max_concurrency=2)
        holder = await env.limiter(limits, lease=30.0)
        waiter = await env.limiter(limits, lease=30.0, poll_interval=5.0)
        loop = asyncio.get_running_loop()
        blocking = asyncio.Event()
        blpop = waiter._redis.blpop

        async def spy(*args: Any, **kwargs: Any) -> Any:
            blocking.set()
            return await blpop(*args, **kwargs)

        waiter._redis.blpop = spy  # type: ignore[method-assign]
        for permit in (holder.acquire(), holder.acquire()):
            await permit.__aenter__()
        task = asyncio.ensure_future(waiter.acquire().__aenter__())
        with anyio.fail_after(5):
            await blocking.wait()  # waiting for one of the two slots
        env.server.stall()
        stalled = loop.time()
        with anyio.fail_after(5):
            permit = await task  # from the local share, Redis being unavailable
        took = loop.time() - stalled
        env.server.stall(False)
        await permit.__aexit__(None, None, None)
        assert took <= BOUND, took
        assert not waiter.statistics().shared_state_available


class TestFailClosed:
    async def test_calls_fail_fast_while_redis_is_killed_or_stalled(self, env: Env) -> None:
        """Closed: calls fail fast with SharedStateUnavailableError, and pass again after."""
        hook = Hook()
        limits = RateLimits(requests_per_minute=6000)
        limiter = await env.limiter(limits, redis_failure="closed", hook=hook)
        loop = asyncio.get_running_loop()

        async def fail(times: int) -> list[float]:
            took = []
            for _ in range(times):
                start = loop.time()
                with pytest.raises(SharedStateUnavailableError, match="svc"):
                    async with limiter.acquire():
                        pass
                took.append(loop.time() - start)
            return took

        async def recover(changes: int) -> None:
            with anyio.fail_after(10):
                await hook.wait_for(changes)
                async with limiter.acquire():
                    pass

        await recover(0)
        env.server.kill()
        killed = await fail(10)  # connection refused: no need to wait at all
        env.server.start()
        await recover(2)
        env.server.stall()
        stalled = await fail(10)
        env.server.stall(False)
        await recover(4)
        assert max(killed) < 0.1, killed
        assert TIMEOUT - 0.01 <= stalled[0] <= BOUND, stalled  # the one that asked Redis
        assert max(stalled[1:] + killed[1:]) < 0.01  # the others did not ask
        assert [("svc", False), ("svc", True)] * 2 == hook.changes
        assert 3 == limiter.statistics().admitted


class TestRestart:
    async def test_a_restart_no_call_saw_admits_no_fresh_burst(self, env: Env) -> None:
        """Redis restarted between two calls: the buckets come back full, not empty."""
        limiter = await env.limiter(
            RateLimits(requests_per_minute=600, burst=1.0, max_wait=0.0), lease=100.0
        )

        async def burst() -> int:
            for admitted in range(12):
                try:
                    async with limiter.acquire():
                        pass
                except RateLimitTimeoutError:  # no capacity left
                    return admitted
            return 12

        first = await burst()
        env.server.kill()
        env.server.start()
        with anyio.fail_after(10):
            second = await burst()
        assert 10 <= first <= 11
        assert second <= 2  # a fresh bucket would let 10 through at once
