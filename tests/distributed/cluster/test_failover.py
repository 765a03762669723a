# SPDX-License-Identifier: MIT
"""
A primary of a real 3 + 3 Redis Cluster killed and replaced by its replica.

The state after a failover is what the replica had received: a provider's
buckets (no fresh burst), its breaker opening (still open), its generation
key (no re-seed as after a restart that lost the data). Writes the old
primary had not yet replicated are lost (replication is asynchronous); the
test waits for the replica (``WAIT``) before the kill, so none are. While
the failover runs (``cluster-node-timeout`` + the election, about 2 s here)
the provider is on its fallback; the providers of the other shards are not
troubled at all (``cluster-require-full-coverage no``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import anyio
import pytest

from llm_rate_limiter import BreakerPolicy, RateLimits
from llm_rate_limiter.distributed import RedisRateLimiter, SharedCircuitBreaker, redis_from_env
from llm_rate_limiter.exceptions import RateLimitTimeoutError
from tests.distributed.test_limiter_failure import Hook

from .helpers import Cluster, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.redis_cluster]

TIMEOUT = 0.25
BOUND = TIMEOUT + 0.2
#: A bucket of 10 that refills at 0.1 request/s (a failover takes seconds), no waiting.
SLOW = RateLimits(requests_per_minute=6, burst=100.0, max_wait=0.0)
NEVER_BINDING = RateLimits(requests_per_minute=60_000_000)


async def burst(limiter: RedisRateLimiter) -> int:
    """Admissions until the first refusal (at most 12)."""
    for admitted in range(12):
        try:
            async with limiter.acquire():
                pass
        except RateLimitTimeoutError:
            return admitted
    return 12


class TestFailover:
    async def test_the_replica_carries_buckets_and_breaker_and_other_shards_go_on(
        self, make_cluster: Callable[..., Cluster]
    ) -> None:
        """After a failover: no fresh burst, the breaker still open, the other shard untroubled."""
        cluster = make_cluster(3, 1, node_timeout=1000)
        prefix = f"llmrl-test-{uuid.uuid4().hex[:8]}"
        (port, (x, *_)), (_, (y, *_)) = list(cluster.services(prefix).items())[:2]
        loop = asyncio.get_running_loop()
        before, after = await redis_from_env(cluster.url), None
        hooks = {x: Hook(), y: Hook()}
        parts: list[RedisRateLimiter | SharedCircuitBreaker] = []

        def limiter(client: object, service: str, limits: RateLimits) -> RedisRateLimiter:
            parts.append(
                RedisRateLimiter(
                    client,  # type: ignore[arg-type]
                    limits,
                    service=service,
                    key_prefix=prefix,
                    hook=hooks[service],
                    redis_timeout=TIMEOUT,
                    lease=100.0,
                )
            )
            return parts[-1]  # type: ignore[return-value]

        def breaker(client: object) -> SharedCircuitBreaker:
            parts.append(
                SharedCircuitBreaker(
                    BreakerPolicy(reset_timeout=60.0),
                    redis=client,  # type: ignore[arg-type]
                    service=x,
                    key_prefix=prefix,
                    redis_timeout=TIMEOUT,
                )
            )
            return parts[-1]  # type: ignore[return-value]

        other = limiter(before, y, NEVER_BINDING)
        took: list[tuple[float, float]] = []

        async def calls_on_the_other_shard() -> None:
            while len(took) < 200_000:
                start = loop.time()
                async with other.acquire():
                    took.append((loop.time(), loop.time() - start))
                await asyncio.sleep(0.002)

        callers = [asyncio.ensure_future(calls_on_the_other_shard()) for _ in range(3)]
        try:
            drained = limiter(before, x, SLOW)
            first = await burst(drained)
            emptied = loop.time()
            gen = await before.get(drained.keys["gen"])
            await drained.aclose()  # nothing of this process touches x again (no re-seed)
            old = breaker(before)
            old.force_open()
            await old.flush()
            with cluster.node(port).client() as primary:
                assert 1 == primary.execute_command("WAIT", 1, 5000)  # the replica has it all
            cluster.node(port).kill()
            killed = loop.time()
            with anyio.fail_after(40):
                await anyio.to_thread.run_sync(
                    wait_until, lambda: cluster.failed_over(port), "the replica promoted"
                )
                promoted = loop.time()
                while sum(1 for t, _ in took if t > promoted) < 100:
                    await asyncio.sleep(0.01)
            # A process that starts now reads what the replica carried over.
            after = await redis_from_env(cluster.url)
            carried = await after.get(drained.keys["gen"])
            second = await burst(limiter(after, x, SLOW))
            refilled = 0.1 * (loop.time() - emptied)
            new = breaker(after)
            await new.sync()
            state = new.state
        finally:
            for task in callers:
                task.cancel()
            await asyncio.gather(*callers, return_exceptions=True)
            for part in parts:
                await part.aclose()
            for client in (before, after):
                if client is not None:
                    await client.aclose()
        assert 10 <= first <= 11
        assert gen is not None
        assert gen == carried  # the data set survived: no re-seed
        assert second <= 1 + refilled, (second, refilled)  # a lost bucket lets 10 through
        assert "open" == state
        assert [] == hooks[y].changes
        assert max(t for at, t in took if at > killed) <= BOUND
