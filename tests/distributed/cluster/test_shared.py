# SPDX-License-Identifier: MIT
"""
Limits and breakers shared through a real 3-primary Redis Cluster (one module-wide cluster).

Each "process" is a client of its own (its own connections to every node).
Providers are picked so that their hash tags land on given shards; the
nodes' command statistics show which shard ran each provider's scripts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from llm_rate_limiter import AsyncLLMClient, BreakerPolicy, RateLimits, RetryPolicy
from llm_rate_limiter.distributed import (
    RedisRateLimiter,
    SharedCircuitBreaker,
    redis_from_env,
)
from llm_rate_limiter.distributed._redis_client import RedisClient
from llm_rate_limiter.exceptions import RateLimitTimeoutError
from llm_rate_limiter.testing import FaultConfig, FaultServer
from tests.client.helpers import MESSAGES, provider
from tests.distributed.test_limiter_failure import worst_excess

from .helpers import Cluster

pytestmark = [pytest.mark.anyio, pytest.mark.redis_cluster]

RATE = 20.0  # requests per second, per provider, shared
CAPACITY = 10.0  # burst=0.5


class Env:
    """Clients of the module's cluster ("processes"), a key prefix of the test's own."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.prefix = f"llmrl-test-{uuid.uuid4().hex[:8]}"
        self.clients: list[RedisClient] = []
        self.closing: list[Any] = []

    async def client(self) -> RedisClient:
        self.clients.append(await redis_from_env(self.cluster.url))
        return self.clients[-1]

    def limiter(self, client: RedisClient, service: str, **kwargs: Any) -> RedisRateLimiter:
        limits = RateLimits(requests_per_minute=RATE * 60, burst=CAPACITY / RATE)
        made = RedisRateLimiter(client, limits, service=service, key_prefix=self.prefix, **kwargs)
        self.closing.append(made)
        return made

    def breaker(self, client: RedisClient, service: str) -> SharedCircuitBreaker:
        made = SharedCircuitBreaker(
            BreakerPolicy(), redis=client, service=service, key_prefix=self.prefix
        )
        self.closing.append(made)
        return made

    async def aclose(self) -> None:
        for part in self.closing:
            await part.aclose()
        if self.clients:
            async for key in self.clients[0].scan_iter(match=f"{self.prefix}:*"):
                await self.clients[0].delete(key)  # one key at a time: keys of many slots
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def env(cluster: Cluster) -> AsyncIterator[Env]:
    made = Env(cluster)
    try:
        yield made
    finally:
        await made.aclose()


async def run_callers(
    limiters: list[RedisRateLimiter], per_limiter: int, until: int
) -> dict[str, list[float]]:
    """Call through every limiter until each service has *until* admissions; their times."""
    loop = asyncio.get_running_loop()
    times: dict[str, list[float]] = {lim.service: [] for lim in limiters}
    done = asyncio.Event()

    async def caller(limiter: RedisRateLimiter) -> None:
        mine = times[limiter.service]
        while len(mine) < until:
            async with limiter.acquire():
                mine.append(loop.time())
        if all(len(t) >= until for t in times.values()):
            done.set()

    tasks = [asyncio.ensure_future(caller(lim)) for lim in limiters for _ in range(per_limiter)]
    try:
        with anyio.fail_after(30):
            await done.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return times


class TestAdmissions:
    async def test_each_provider_keeps_its_shared_limit_on_its_own_shard(self, env: Env) -> None:
        """3 providers on 3 shards, 2 clients each: each uses >= 85% of its 20/s, never above."""
        services = [names[0] for names in env.cluster.services(env.prefix).values()]
        clients = [await env.client(), await env.client()]
        limiters = [env.limiter(c, s) for s in services for c in clients]
        times = await run_callers(limiters, per_limiter=4, until=50)
        for service in services:
            mine = sorted(times[service])
            assert worst_excess(mine, CAPACITY, RATE) <= 1.0, service
            used = (len(mine) - CAPACITY) / (RATE * (mine[-1] - mine[0]))
            assert used >= 0.85, (service, used)

    async def test_a_providers_scripts_run_only_on_its_shard(self, env: Env) -> None:
        """One provider's admissions run EVALSHA on the primary of its slot and on no other."""
        by_shard = env.cluster.services(env.prefix)
        home, service = next(iter((port, names[0]) for port, names in by_shard.items()))
        client = await env.client()
        limiter = env.limiter(client, service)
        env.cluster.reset_stats()
        await run_callers([limiter], per_limiter=2, until=30)
        calls = {port: env.cluster.evalsha_calls(port) for port in by_shard}
        assert calls[home] >= 30
        assert {port: 0 for port in by_shard if port != home} == {
            port: n for port, n in calls.items() if port != home
        }


class TestBreakers:
    async def test_an_opening_reaches_the_other_client_and_stays_on_its_provider(
        self, env: Env
    ) -> None:
        """An opening of provider A (shard 1) reaches the other client; B (shard 2) stays closed."""
        a, b = (names[0] for names in list(env.cluster.services(env.prefix).values())[:2])
        first, second = await env.client(), await env.client()
        a1, a2, b2 = env.breaker(first, a), env.breaker(second, a), env.breaker(second, b)
        a1.force_open()
        await a1.flush()
        await a2.sync()
        await b2.sync()
        assert ("open", "open", "closed") == (a1.state, a2.state, b2.state)
        a1.reset()
        await a1.flush()
        await a2.sync()
        assert ("closed", "closed") == (a1.state, a2.state)


class TestAsyncLLMClient:
    async def test_two_clients_share_each_providers_budget_on_its_shard(self, env: Env) -> None:
        """Two AsyncLLMClients on one cluster: each provider's 5 shared requests, not 5 each."""
        key = "sk-cluster-test"
        a, b = (names[0] for names in list(env.cluster.services(env.prefix, 1, key).values())[:2])
        # 1 request/s, a bucket of 5, no waiting: past 5 (6 if a second passes) a call is refused.
        limits = RateLimits(requests_per_minute=60, burst=5.0, max_wait=0.0)
        async with FaultServer(FaultConfig(seed=3)) as server:
            clients = [
                AsyncLLMClient(
                    [
                        provider(server, name, key=key, limits=limits, retry=RetryPolicy(0))
                        for name in (a, b)
                    ],
                    redis=await env.client(),
                    redis_key_prefix=env.prefix,
                )
                for _ in range(2)
            ]
            served = {a: 0, b: 0}
            try:
                for name in (a, b):
                    for _ in range(6):
                        for client in clients:
                            try:
                                await client.chat(MESSAGES, provider=name)
                                served[name] += 1
                            except RateLimitTimeoutError:
                                pass
            finally:
                for client in clients:
                    await client.aclose()
            assert server.stats().requests == served[a] + served[b]
        assert 5 <= served[a] <= 6, served
        assert 5 <= served[b] <= 6, served
