# SPDX-License-Identifier: MIT
"""
What counts as Redis failing, where it failed, and how the background writes say so.

Unit tests on fakes: the cluster client's own errors (not ``RedisError``)
and a connection torn down under a command count as an outage of the shard,
named by ``host:port``; background failures are logged once per change.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import SSLConnection

from llm_rate_limiter.distributed._background import Background
from llm_rate_limiter.distributed._breaker_link import SharedStateLink
from llm_rate_limiter.distributed._connect import _cluster
from llm_rate_limiter.distributed._redis_client import describe, redis_address
from llm_rate_limiter.distributed._shared_state import SharedState, Unavailable

pytestmark = pytest.mark.anyio


def state(**kwargs: Any) -> SharedState:
    async def probe() -> None:
        raise Unavailable("still down")

    return SharedState(
        "svc",
        timeout=0.5,
        failure="open",
        hook=None,
        probe=probe,
        on_change=lambda available: None,
        probe_interval=60.0,
        **kwargs,
    )


class TestDescribe:
    def test_type_and_message_on_one_line(self) -> None:
        """An error is described by its type and message, whitespace folded, without repr."""
        exc = redis.exceptions.ConnectionError("Error 111\n connecting to 127.0.0.1:7000.")
        assert "ConnectionError: Error 111 connecting to 127.0.0.1:7000." == describe(exc)
        assert "TimeoutError" == describe(TimeoutError())


class TestRedisAddress:
    def test_a_single_node_client_is_named_by_host_and_port_without_password(self) -> None:
        """A single-node client: host:port from its pool, never the password."""
        client = aioredis.Redis.from_url("redis://:pw@10.1.2.3:6380/0")
        assert "10.1.2.3:6380" == redis_address(client, "any")
        assert "redis" == redis_address(object())

    def test_a_cluster_before_it_knows_its_slots(self) -> None:
        """A cluster client that has not read its map of slots yet says so."""
        client = aioredis.RedisCluster(host="127.0.0.1", port=1)
        assert "redis cluster" == redis_address(client, "llmrl:{svc}:req")
        assert "redis cluster" == redis_address(client)


class TestClusterClient:
    def test_a_tls_cluster_url_with_several_nodes(self) -> None:
        """rediss+cluster:// builds a TLS cluster client: every start-up node, the settings."""
        client = _cluster(
            "rediss+cluster://u:pw@10.0.0.1:7000,10.0.0.2:7001/0?ssl_cert_reqs=none",
            "rediss",
            socket_timeout=1.5,
            socket_connect_timeout=0.5,
        )
        kwargs = client.connection_kwargs
        assert SSLConnection is kwargs["connection_class"]
        assert ("u", "pw", 1.5, 0.5) == (
            kwargs["username"],
            kwargs["password"],
            kwargs["socket_timeout"],
            kwargs["socket_connect_timeout"],
        )
        assert ["10.0.0.1:7000", "10.0.0.2:7001"] == [n.name for n in client.startup_nodes]
        assert client.nodes_manager.require_full_coverage is False


class TestClusterErrorsAreOutages:
    @pytest.mark.parametrize(
        "error",
        [
            redis.exceptions.SlotNotCoveredError("slot 42 not covered"),
            redis.exceptions.RedisClusterException("Redis Cluster cannot be connected"),
            redis.exceptions.ClusterDownError("The cluster is down"),
        ],
    )
    async def test_a_cluster_error_makes_the_state_unavailable_naming_the_node(
        self, error: Exception
    ) -> None:
        """Cluster errors (some no RedisError) make the state unavailable, naming host:port."""
        shared = state(where=lambda: "127.0.0.1:7001")

        async def fail() -> None:
            raise error

        with pytest.raises(Unavailable) as info:
            await shared.call(fail)
        await shared.aclose()
        assert not shared.available
        assert f"{type(error).__name__}: " in info.value.reason
        assert info.value.reason.endswith("(at 127.0.0.1:7001)")

    async def test_a_connection_torn_down_under_a_command_is_tried_once_more(self) -> None:
        """redis-py's torn-down connection (AttributeError) is retried once, then succeeds."""
        shared = state()
        calls = 0

        async def torn_then_fine() -> str:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise AttributeError("'NoneType' object has no attribute 'writelines'")
            return "ok"

        assert "ok" == await shared.call(torn_then_fine)
        assert (2, True) == (calls, shared.available)

    async def test_the_breaker_link_counts_cluster_errors_as_unavailable(self) -> None:
        """The breaker's link names the node and the error's message for a cluster error."""
        link = SharedStateLink(
            aioredis.Redis(host="10.0.0.9", port=7002),
            service="svc",
            hook=None,  # type: ignore[arg-type]
            failure="open",
            timeout=0.5,
            key="llmrl:{svc}:breaker:open",
        )
        assert link.failed(redis.exceptions.SlotNotCoveredError("slot 7 not covered"))
        assert "Redis at 10.0.0.9:7002 failed (SlotNotCoveredError: slot 7 not covered)" == (
            link.reason
        )


class TestBackgroundLogs:
    async def test_one_line_per_change_with_where_and_message(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """5 failed writes and then a good one log 2 lines: what and where, then how many."""
        background = Background("RedisRateLimiter('svc')", lambda: "127.0.0.1:7003")

        async def fail() -> None:
            raise redis.exceptions.ConnectionError("Connection refused")

        async def succeed() -> None:
            return None

        with caplog.at_level(logging.WARNING, logger="llm_rate_limiter.distributed"):
            for _ in range(5):
                background.spawn(fail())
                await background.flush()
                await asyncio.sleep(0)  # the done callbacks run
            background.spawn(succeed())
            await background.flush()
            await asyncio.sleep(0)
            background.spawn(succeed())
            await background.flush()
            await asyncio.sleep(0)
        messages = [r.getMessage() for r in caplog.records]
        assert [
            "RedisRateLimiter('svc'): shared update failed at 127.0.0.1:7003: "
            "ConnectionError: Connection refused; counting failures until one succeeds",
            "RedisRateLimiter('svc'): shared updates succeed again at 127.0.0.1:7003 (5 failed)",
        ] == messages
