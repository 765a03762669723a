# SPDX-License-Identifier: MIT
"""
One shard of a real Redis Cluster killed or stalled: only its providers notice.

Each test builds a 3-primary cluster of its own (``cluster-node-timeout``
1000 ms), puts one provider on each shard and keeps callers going through
all of them while one primary is SIGKILLed or SIGSTOPped (SIGCONT always
follows, in a ``finally``). The providers of the other shards must keep
their shared limits with no call held past ``redis_timeout`` + 0.2 s; those
of the broken shard fall back (open: local shares; closed:
`SharedStateUnavailableError`) within the same bound. With
``cluster-require-full-coverage yes`` (Redis's default) the whole cluster
refuses every key once the dead primary is flagged failed: every provider
falls back, which is why the README recommends ``no``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from llm_rate_limiter import RateLimits
from llm_rate_limiter.distributed import RedisRateLimiter, SharedCircuitBreaker, redis_from_env
from llm_rate_limiter.distributed._redis_client import RedisClient
from llm_rate_limiter.exceptions import SharedStateUnavailableError
from tests.distributed.test_limiter_failure import Hook

from .helpers import Cluster, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.redis_cluster]

TIMEOUT = 0.25
#: A call must never be held longer than this by a shard failing (generous on a loaded CI box).
BOUND = TIMEOUT + 0.2
#: Seconds a call takes once admitted.
CALL = 0.002
#: Callers stop after this many calls in all, whatever happens.
MAX_CALLS = 200_000
NEVER_BINDING = RateLimits(requests_per_minute=60_000_000, max_concurrency=1000)


class Shards:
    """One limiter per shard on one cluster client, and callers looping through them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.prefix = f"llmrl-test-{uuid.uuid4().hex[:8]}"
        by_shard = cluster.services(self.prefix)
        self.ports = list(by_shard)
        self.services = [names[0] for names in by_shard.values()]
        self.client: RedisClient | None = None
        self.limiters: list[RedisRateLimiter] = []
        self.hooks: list[Hook] = []
        self.log: list[tuple[int, float, float]] = []  # (shard index, admitted at, took)
        self.tasks: list[asyncio.Future[None]] = []
        self._grew = asyncio.Event()

    async def start(self, limits: RateLimits = NEVER_BINDING, **kwargs: Any) -> None:
        self.client = await redis_from_env(self.cluster.url)
        for service in self.services:
            hook = Hook()
            self.hooks.append(hook)
            self.limiters.append(
                RedisRateLimiter(
                    self.client,
                    limits,
                    service=service,
                    key_prefix=self.prefix,
                    hook=hook,
                    redis_timeout=TIMEOUT,
                    **kwargs,
                )
            )

    def call(self, per_shard: int, shards: list[int] | None = None) -> None:
        """Start *per_shard* callers on each shard (or on *shards*)."""
        for i in shards if shards is not None else range(len(self.limiters)):
            self.tasks += [asyncio.ensure_future(self._loop(i)) for _ in range(per_shard)]

    async def _loop(self, i: int) -> None:
        loop = asyncio.get_running_loop()
        limiter = self.limiters[i]
        while len(self.log) < MAX_CALLS:
            start = loop.time()
            async with limiter.acquire():
                now = loop.time()
                self.log.append((i, now, now - start))
                self._grew.set()
                await asyncio.sleep(CALL)

    async def wait_for(self, count: int, since: float, who: list[int]) -> None:
        """Until each shard of *who* has *count* admissions after *since*."""
        while any(sum(1 for i, t, _ in self.log if i == j and t > since) < count for j in who):
            for task in self.tasks:
                if task.done():
                    task.result()  # a caller failed: say why
            self._grew.clear()
            await self._grew.wait()

    def took(self, since: float, who: int) -> list[float]:
        return [took for i, t, took in self.log if i == who and t - took > since]

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for limiter in self.limiters:
            await limiter.aclose()
        if self.client is not None:
            await self.client.aclose()


@pytest.fixture
async def shards(make_cluster: Callable[..., Cluster]) -> AsyncIterator[Callable[..., Shards]]:
    made: list[Shards] = []

    def make(**kwargs: Any) -> Shards:
        made.append(Shards(make_cluster(3, node_timeout=1000, **kwargs)))
        return made[-1]

    try:
        yield make
    finally:
        for one in made:
            await one.aclose()


def others(broken: int) -> list[int]:
    return [i for i in range(3) if i != broken]


class TestOneShardKilled:
    async def test_only_its_providers_fall_back_and_the_others_stay_shared(
        self, shards: Callable[..., Shards]
    ) -> None:
        """A killed primary: its provider goes local within the bound; the others never notice."""
        env = shards()
        await env.start()
        loop = asyncio.get_running_loop()
        dead = 0
        env.call(5)
        with anyio.fail_after(30):
            await env.wait_for(50, -1.0, [0, 1, 2])
            env.cluster.node(env.ports[dead]).kill()
            killed = loop.time()
            await env.hooks[dead].wait_for(1)
            await env.wait_for(200, killed, [0, 1, 2])
            # Past cluster-node-timeout the others flag it failed: still no change for the rest.
            await anyio.to_thread.run_sync(
                wait_until, lambda: env.cluster.marked_failed(env.ports[dead]), "FAIL flag"
            )
            flagged = loop.time()
            evalsha = {i: env.cluster.evalsha_calls(env.ports[i]) for i in others(dead)}
            await env.wait_for(200, flagged, [0, 1, 2])
        assert [(env.services[dead], False)] == env.hooks[dead].changes
        assert all([] == env.hooks[i].changes for i in others(dead))
        assert not env.limiters[dead].statistics().shared_state_available
        assert all(env.limiters[i].statistics().shared_state_available for i in others(dead))
        for i in range(3):
            assert max(env.took(killed, i)) <= BOUND, (i, max(env.took(killed, i)))
        for i in others(dead):  # still admitted through their shards' scripts
            assert env.cluster.evalsha_calls(env.ports[i]) - evalsha[i] >= 200

    async def test_failing_closed_refuses_only_its_providers(
        self, shards: Callable[..., Shards], caplog: pytest.LogCaptureFixture
    ) -> None:
        """Closed: the dead shard's calls fail fast (SharedStateUnavailableError); others pass."""
        caplog.set_level(logging.WARNING, logger="llm_rate_limiter")
        env = shards()
        await env.start(redis_failure="closed")
        loop = asyncio.get_running_loop()
        dead = 1
        assert env.client is not None
        breaker = SharedCircuitBreaker(
            redis=env.client,
            service=env.services[dead],
            key_prefix=env.prefix,
            redis_timeout=TIMEOUT,
        )
        env.cluster.node(env.ports[dead]).kill()
        for _ in range(5):  # its exchanges fail: one line, not one per exchange
            await breaker.sync()
        await breaker.aclose()
        took = []
        for _ in range(10):
            start = loop.time()
            with pytest.raises(SharedStateUnavailableError, match=env.services[dead]) as info:
                async with env.limiters[dead].acquire():
                    pass
            took.append(loop.time() - start)
        assert f"127.0.0.1:{env.ports[dead]}" in str(info.value)  # where, in the reason
        with anyio.fail_after(10):
            for i in others(dead):
                for _ in range(20):
                    async with env.limiters[i].acquire():
                        pass
        assert max(took) <= BOUND, took
        assert [(env.services[dead], False)] == env.hooks[dead].changes
        assert all([] == env.hooks[i].changes for i in others(dead))
        assert all(20 == env.limiters[i].statistics().admitted for i in others(dead))
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("llm_rate_limiter")]
        assert 2 == len(lines), lines  # the limiter's and the breaker's, once each
        assert all(env.services[dead] in line for line in lines)
        assert all(f"127.0.0.1:{env.ports[dead]}" in line for line in lines)
        assert all("ConnectionError: Error 111" in line for line in lines)  # the message too

    async def test_with_full_coverage_required_every_provider_falls_back(
        self, shards: Callable[..., Shards]
    ) -> None:
        """cluster-require-full-coverage yes: once the dead primary is flagged, all fall back."""
        env = shards(full_coverage=True)
        await env.start()
        loop = asyncio.get_running_loop()
        dead = 2
        env.call(3)
        with anyio.fail_after(30):
            await env.wait_for(20, -1.0, [0, 1, 2])
            env.cluster.node(env.ports[dead]).kill()
            killed = loop.time()
            for hook in env.hooks:  # CLUSTERDOWN for every key once the node is flagged
                await hook.wait_for(1)
            await env.wait_for(50, loop.time(), [0, 1, 2])
        assert all((env.services[i], False) == env.hooks[i].changes[0] for i in range(3))
        for i in range(3):  # local shares: still no call held past the bound
            assert max(env.took(killed, i)) <= BOUND, (i, max(env.took(killed, i)))


class TestOneShardStalled:
    async def test_a_stalled_shard_holds_no_call_and_troubles_no_other_provider(
        self, shards: Callable[..., Shards]
    ) -> None:
        """A SIGSTOPped primary: its provider goes local within the bound, the others never wait."""
        env = shards()
        await env.start()
        loop = asyncio.get_running_loop()
        stalled_shard = 1
        node = env.cluster.node(env.ports[stalled_shard])
        env.call(5)
        with anyio.fail_after(30):
            await env.wait_for(50, -1.0, [0, 1, 2])
            node.stall()
            try:
                stalled = loop.time()
                await env.hooks[stalled_shard].wait_for(1)
                await env.wait_for(300, stalled, [0, 1, 2])
            finally:
                node.stall(False)
            resumed = loop.time()
            await env.hooks[stalled_shard].wait_for(2)
            await env.wait_for(50, loop.time(), [0, 1, 2])
        during = {
            i: [t for j, t2, t in env.log if j == i and t2 > stalled and t2 - t < resumed]
            for i in range(3)
        }
        for i in range(3):
            assert max(during[i]) <= BOUND, (i, max(during[i]))
        assert [(env.services[stalled_shard], False), (env.services[stalled_shard], True)] == (
            env.hooks[stalled_shard].changes
        )
        assert all([] == env.hooks[i].changes for i in others(stalled_shard))
        assert all(lim.statistics().shared_state_available for lim in env.limiters)
