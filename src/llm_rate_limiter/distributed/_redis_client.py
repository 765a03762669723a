# SPDX-License-Identifier: MIT
"""
The Redis client the backends take (one node or a cluster), what counts as its failure, and where.

`RedisClient` is ``redis.asyncio.Redis | redis.asyncio.RedisCluster``: every
backend sends only commands whose keys share one hash tag (see ``_keys``),
so both run them alike, and a cluster sends each provider's commands to the
shard that holds its slot. `FAILURES` is what either raises when Redis does
not answer (redis-py's cluster errors about slots and topology do not derive
from ``RedisError``); `redis_address` names the node that serves a key
(``host:port``, never a password) for logs and errors.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import redis.asyncio as aioredis
import redis.exceptions

__all__ = ["FAILURES", "TORN_DOWN", "RedisClient", "describe", "redis_address"]

#: The client of every Redis backend: one server, or a Redis Cluster.
RedisClient: TypeAlias = "aioredis.Redis | aioredis.RedisCluster"

#: What a connection torn down under a command raises: redis-py's cluster client, on a
#: connection error, disconnects a node's idle connections while other tasks may have just
#: taken one (``'NoneType' object has no attribute 'writelines'``). Tried once more, like
#: a dropped connection, and a failure of that node if it happens again.
TORN_DOWN = (redis.exceptions.ConnectionError, AttributeError)

#: What a Redis (or a cluster) that does not answer raises (besides our own timeout).
FAILURES = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
    OSError,
    AttributeError,
)


def describe(exc: BaseException) -> str:
    """A short reason for *exc*: its type and message (Redis errors carry no secrets)."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    return f"{name}: {text[:160]}" if text else name


def redis_address(client: Any, key: str | None = None) -> str:
    """
    ``host:port`` (or the socket path) that serves *key* on *client*, without credentials.

    For a cluster, the primary that holds *key*'s slot as the client last saw
    the topology (``"redis cluster"`` before it knows one).
    """
    if isinstance(client, aioredis.RedisCluster):
        try:
            node = client.get_node_from_key(key) if key is not None else None
        except (redis.exceptions.RedisClusterException, redis.exceptions.RedisError):
            node = None
        return str(node.name) if node is not None else "redis cluster"
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    if kwargs.get("path"):
        return str(kwargs["path"])
    if kwargs.get("host"):
        return f"{kwargs['host']}:{kwargs.get('port', 6379)}"
    return "redis"
