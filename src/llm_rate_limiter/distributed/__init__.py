# SPDX-License-Identifier: MIT
"""
Redis backends: rate limits and circuit-breaker state shared by many processes and hosts.

- `RedisRateLimiter`: a `ProviderLimiter` twin whose buckets, cooldowns and
  concurrency slots live in Redis (one atomic Lua script per admission, on
  the server's clock).
- `SharedCircuitBreaker`: an `AsyncCircuitBreaker` whose openings and
  recoveries every process follows.
- `shared_policy`: a `ResiliencePolicy` built on both.
- `redis_from_env` / `redis_from_url`: a checked client from ``REDIS_URL``
  (default ``redis://127.0.0.1:6379/0``) or a URL; a ``redis+cluster://``
  URL gives a Redis Cluster client. `RedisClient` is the type either is.

Every part takes a ``redis.asyncio.Redis`` or a ``redis.asyncio.RedisCluster``:
the keys of one provider (and API key) share one hash tag, so each
provider's scripts run on one shard, and a failing shard troubles only the
providers it holds.

Needs the ``redis`` extra (redis-py 5 or later, for ``redis.asyncio``).
"""

from __future__ import annotations

try:
    import redis.asyncio  # noqa: F401
except ImportError as exc:  # pragma: no cover -- the test environment has redis
    msg = "llm_rate_limiter.distributed needs redis-py: pip install 'llm-rate-limiter[redis]'"
    raise ImportError(msg) from exc

from ._connect import DEFAULT_REDIS_URL, redis_from_env, redis_from_url
from ._redis_breaker import SharedCircuitBreaker
from ._redis_client import RedisClient
from ._redis_limiter import RedisRateLimiter
from ._redis_permit import RedisPermit
from ._shared_policy import shared_policy

__all__ = [
    "DEFAULT_REDIS_URL",
    "RedisClient",
    "RedisPermit",
    "RedisRateLimiter",
    "SharedCircuitBreaker",
    "redis_from_env",
    "redis_from_url",
    "shared_policy",
]
