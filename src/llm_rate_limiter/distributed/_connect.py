# SPDX-License-Identifier: MIT
"""
`redis_from_env`: a Redis client (one node or a cluster) from ``REDIS_URL``, checked at once.

``redis://`` and ``rediss://`` (and ``unix://``) build a single-node client;
``redis+cluster://`` and ``rediss+cluster://`` a `redis.asyncio.RedisCluster`,
from one or more comma-separated start-up nodes
(``redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000``). Both get the same
socket timeouts; the cluster client also gets settings that keep one shard's
trouble on that shard (see `cluster_settings`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import redis.asyncio as aioredis
import redis.exceptions
from redis._parsers import AsyncCommandsParser
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .._validate import check_number
from ..exceptions import ConfigurationError
from ._redis_client import FAILURES, RedisClient, describe

__all__ = [
    "CLUSTER_SCHEMES",
    "DEFAULT_REDIS_URL",
    "cluster_settings",
    "redis_from_env",
    "redis_from_url",
]

#: Where the Redis backends connect when ``REDIS_URL`` is not set.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: URL schemes that ask for a Redis Cluster client, and the scheme each stands for.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
#: Connections one cluster client may open to one node (redis-py's default, 100, raises
#: ``MaxConnectionsError`` past it, which would count as an outage of that shard).
CLUSTER_MAX_CONNECTIONS = 10_000


def _redact(url: str) -> str:
    """*url* without its password."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


class _CommandTableOnce(AsyncCommandsParser):
    """
    A cluster client's command table, read once (internal).

    redis-py re-reads it (``COMMAND``, a reply of some 100 kB that takes
    30 ms or more of the event loop to parse) each time it refreshes its map
    of slots, which it does after every connection error: a dead shard's
    probes would stall every provider's calls. The table does not change
    with the topology; the node asked for it follows the refresh.
    """

    __slots__ = ()

    async def initialize(self, node: ClusterNode | None = None) -> None:
        if node is not None:
            self.node = node
        if not self.commands:
            await super().initialize(node)


class ClusterClient(aioredis.RedisCluster):
    """
    The `redis.asyncio.RedisCluster` that `redis_from_env` builds (internal).

    Its `aclose` closes every connection whatever the client's state:
    redis-py's skips it while a refresh of the map of slots is pending, which
    is the case after any connection error (a dead shard) until the next
    command, so closing a client in that state would leak its sockets.
    """

    async def aclose(self) -> None:
        await super().aclose()
        for nodes in ("nodes_cache", "startup_nodes"):
            with contextlib.suppress(*FAILURES):
                await self.nodes_manager.aclose(nodes)


def cluster_settings() -> dict[str, Any]:
    """
    What `redis_from_env` gives a cluster client besides its URL and timeouts.

    - ``require_full_coverage=False``: the client maps the slots it can see
      and serves them even while some shard is missing (redis-py's default
      refuses to start, or to refresh its map, without every slot);
    - ``retry`` of 0 retries: redis-py's own would sleep and re-send within
      ``redis_timeout`` (the backends retry a dropped connection once
      themselves, after the client refreshed its map of the slots);
    - ``max_connections`` per node of `CLUSTER_MAX_CONNECTIONS`.

    `redis_from_env` also has the client read the command table only once
    (not at every refresh of its map of slots).
    """
    return {
        "require_full_coverage": False,
        "retry": Retry(NoBackoff(), 0),
        "max_connections": CLUSTER_MAX_CONNECTIONS,
    }


def _cluster(url: str, scheme: str, **timeouts: Any) -> ClusterClient:
    """A cluster client from a ``redis+cluster://`` URL (not connected yet)."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    nodes: list[tuple[str, int]] = []
    for host in hosts.split(","):
        name, colon, port = host.strip().rpartition(":")
        if not colon:
            name, port = port, "6379"
        if not name or not port.isdigit():
            msg = f"{_redact(url)!r}: {host!r} is not host:port"
            raise ConfigurationError("REDIS_URL", msg)
        nodes.append((unquote(name), int(port)))
    first = urlunsplit(parts._replace(scheme=scheme, netloc=f"{userinfo}{at}{hosts.split(',')[0]}"))
    kwargs: dict[str, Any] = dict(parse_url(first))
    db = kwargs.pop("db", 0)
    if db not in (0, "0", None):
        msg = f"{_redact(url)!r} names database {db}: a Redis Cluster has only database 0"
        raise ConfigurationError("REDIS_URL", msg)
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    if kwargs.pop("connection_class", None) is SSLConnection:
        kwargs["ssl"] = True
    kwargs.update(cluster_settings())
    client = ClusterClient(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        health_check_interval=30,
        **timeouts,
        **kwargs,
    )
    client.commands_parser = _CommandTableOnce()
    return client


async def _check_cluster(client: aioredis.RedisCluster, url: str) -> None:
    """Learn the topology and ping one primary; close *client* and raise if either fails."""
    try:
        await client.initialize()
        await client.ping(target_nodes=aioredis.RedisCluster.RANDOM)
    except FAILURES as exc:
        await client.aclose()
        msg = f"cannot connect to the Redis Cluster at {_redact(url)}: {describe(exc)}"
        raise ConfigurationError("REDIS_URL", msg) from exc


async def _check_node(client: aioredis.Redis, url: str) -> None:
    """Ping *client* and refuse a cluster node behind a single-node URL; close it if so."""
    try:
        await client.ping()
        try:
            clustered = (await client.info("cluster")).get("cluster_enabled") == 1
        except redis.exceptions.ResponseError:  # INFO renamed or refused: cannot tell
            clustered = False
    except FAILURES as exc:
        await client.aclose()
        if "cluster mode" in str(exc).lower():  # SELECT n on a cluster node
            msg = f"{_redact(url)} is a Redis Cluster node, which has only database 0"
        else:
            msg = f"cannot connect to Redis at {_redact(url)}: {describe(exc)}"
        raise ConfigurationError("REDIS_URL", msg) from exc
    if clustered:
        await client.aclose()
        scheme = urlsplit(url).scheme
        msg = (
            f"{_redact(url)} is a Redis Cluster node: use {scheme}+cluster:// "
            "(a single-node client fails with MOVED for the keys of other shards)"
        )
        raise ConfigurationError("REDIS_URL", msg)


async def redis_from_env(
    url: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    socket_timeout: float = 5.0,
    socket_connect_timeout: float = 2.0,
) -> RedisClient:
    """
    Connect to Redis at *url*, else ``REDIS_URL``, else ``redis://127.0.0.1:6379/0``.

    A ``redis+cluster://`` (or ``rediss+cluster://``) URL builds a
    `redis.asyncio.RedisCluster` from one or more comma-separated start-up
    nodes, e.g. ``redis+cluster://10.0.0.1:7000,10.0.0.2:7000``; any other
    scheme a single-node `redis.asyncio.Redis`. The client has socket
    timeouts, and it is checked here (a cluster: its map of slots is read
    and one primary pinged), so a wrong URL or a server that is down fails
    now, with a message naming ``REDIS_URL``, instead of on the first call.

    Args:
        url: The Redis URL; None reads ``REDIS_URL``.
        environ: Where to read ``REDIS_URL`` (default `os.environ`).
        socket_timeout: Seconds any command may take on the socket.
        socket_connect_timeout: Seconds a connection may take to open.

    Returns:
        The connected client; close it with ``await client.aclose()``.

    Raises:
        ConfigurationError: The URL is malformed or names a database other
            than 0 on a cluster, the timeouts are not > 0, the server cannot
            be reached or refuses the credentials, or a single-node URL
            points at a cluster node.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.3.0
       ``redis+cluster://`` and ``rediss+cluster://`` URLs build a Redis Cluster client.
    """
    check_number("socket_timeout", socket_timeout, inclusive=False)
    check_number("socket_connect_timeout", socket_connect_timeout, inclusive=False)
    env = os.environ if environ is None else environ
    url = url or env.get("REDIS_URL") or DEFAULT_REDIS_URL
    timeouts: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
    }
    scheme = urlsplit(url).scheme.lower()
    try:
        if scheme in CLUSTER_SCHEMES:
            cluster = _cluster(url, CLUSTER_SCHEMES[scheme], **timeouts)
        else:
            node = aioredis.Redis.from_url(url, health_check_interval=30, **timeouts)
    except (ValueError, redis.exceptions.RedisClusterException) as exc:
        msg = f"{_redact(url)!r} is not a Redis URL ({exc})"
        raise ConfigurationError("REDIS_URL", msg) from None
    if scheme in CLUSTER_SCHEMES:
        await _check_cluster(cluster, url)
        return cluster
    await _check_node(node, url)
    return node


async def redis_from_url(
    url: str, *, socket_timeout: float = 5.0, socket_connect_timeout: float = 2.0
) -> RedisClient:
    """
    Connect to Redis, or to a Redis Cluster, at *url*, checked as `redis_from_env` checks it.

    ``redis://`` and ``rediss://`` give one node; ``redis+cluster://`` and
    ``rediss+cluster://`` a cluster from one or more comma-separated start-up
    nodes (``redis+cluster://:secret@10.0.0.1:7000,10.0.0.2:7000``).

    Raises:
        ConfigurationError: As for `redis_from_env` (the setting named is ``REDIS_URL``).

    .. versionadded:: 0.3.0
    """
    return await redis_from_env(
        url,
        environ={},
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_connect_timeout,
    )
