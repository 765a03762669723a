# SPDX-License-Identifier: MIT
"""Type-only uses: every Redis backend accepts ``Redis | RedisCluster`` (checked by mypy)."""

from __future__ import annotations

import redis.asyncio as aioredis

import llm_rate_limiter as llmrl
from llm_rate_limiter.distributed import (
    RedisRateLimiter,
    SharedCircuitBreaker,
    redis_from_env,
    shared_policy,
)


async def cluster_everywhere() -> None:
    cluster = aioredis.RedisCluster.from_url("redis://127.0.0.1:7000")
    single = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    either: aioredis.Redis | aioredis.RedisCluster = await redis_from_env(
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"
    )
    limits = llmrl.RateLimits(requests_per_minute=600)
    for client in (cluster, single, either):
        limiter = RedisRateLimiter(client, limits, service="openai")
        breaker = SharedCircuitBreaker(llmrl.BreakerPolicy(), redis=client, service="openai")
        policy: llmrl.ResiliencePolicy = shared_policy("openai", redis=client, limits=limits)
        llm = llmrl.AsyncLLMClient([llmrl.ProviderConfig(name="a", api_key="k")], redis=client)
        _ = (limiter, breaker, policy, llm)
    await cluster.aclose()
