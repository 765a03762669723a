# SPDX-License-Identifier: MIT
"""`redis_from_env` with ``redis+cluster://`` URLs, against a real 3-primary cluster."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from llm_rate_limiter.distributed import RedisClient, redis_from_env, redis_from_url
from llm_rate_limiter.distributed._connect import CLUSTER_MAX_CONNECTIONS
from llm_rate_limiter.distributed._keys import service_key
from llm_rate_limiter.distributed._redis_client import redis_address
from llm_rate_limiter.exceptions import ConfigurationError

from .helpers import Cluster

pytestmark = [pytest.mark.anyio, pytest.mark.redis_cluster]


class TestClusterURL:
    async def test_a_cluster_url_builds_a_checked_cluster_client(self, cluster: Cluster) -> None:
        """redis+cluster:// gives a RedisCluster (single-node timeouts) knowing every shard."""
        client = await redis_from_env(environ={"REDIS_URL": cluster.url}, socket_timeout=3.0)
        try:
            assert isinstance(client, aioredis.RedisCluster)
            kwargs = client.connection_kwargs
            assert (3.0, 2.0) == (kwargs["socket_timeout"], kwargs["socket_connect_timeout"])
            assert 30 == kwargs["health_check_interval"]
            assert CLUSTER_MAX_CONNECTIONS == kwargs["max_connections"]
            assert 0 == client.retry.get_retries()
            assert client.nodes_manager.require_full_coverage is False
            assert sorted(cluster.primaries()) == sorted(n.port for n in client.get_primaries())
            # Keys of three providers, one per shard, all reachable through one client.
            for names in cluster.services("llmrl-connect").values():
                await client.set(f"llmrl-connect:{{{names[0]}}}:req", "1", ex=10)
                assert b"1" == await client.get(f"llmrl-connect:{{{names[0]}}}:req")
        finally:
            await client.aclose()

    async def test_redis_from_url_takes_the_url_given_not_the_environment(
        self, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """redis_from_url(cluster URL) is a checked cluster client whatever REDIS_URL says."""
        monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
        client: RedisClient = await redis_from_url(cluster.url, socket_connect_timeout=1.5)
        try:
            assert isinstance(client, aioredis.RedisCluster)
            assert 1.5 == client.connection_kwargs["socket_connect_timeout"]
            assert sorted(cluster.primaries()) == sorted(n.port for n in client.get_primaries())
        finally:
            await client.aclose()

    async def test_a_keys_address_is_the_primary_of_its_slot(self, cluster: Cluster) -> None:
        """Logs and errors name the shard of a provider's keys: its primary's host:port."""
        client = await redis_from_env(cluster.url)
        try:
            for port, names in cluster.services("llmrl-addr").items():
                key = service_key("llmrl-addr", names[0], "req")
                assert f"127.0.0.1:{port}" == redis_address(client, key)
        finally:
            await client.aclose()

    async def test_a_refreshed_map_of_slots_does_not_read_the_command_table_again(
        self, cluster: Cluster
    ) -> None:
        """Refreshing the topology (after any connection error) sends no new COMMAND."""
        client = await redis_from_env(cluster.url)
        try:
            cluster.reset_stats()
            for _ in range(3):
                client._initialize = True  # what redis-py sets on a connection error
                await client.initialize()
            await client.set("llmrl-refresh:{x}", "1", ex=10)
            commands = 0
            for port in cluster.primaries():
                with cluster.node(port).client() as node:
                    commands += int(
                        node.info("commandstats").get("cmdstat_command", {}).get("calls", 0)
                    )
            assert 0 == commands
            assert client.commands_parser.commands  # read once, at start-up
        finally:
            await client.aclose()

    async def test_closing_after_a_connection_error_closes_every_connection(
        self, cluster: Cluster
    ) -> None:
        """aclose() closes every socket even with a map refresh pending (redis-py's would not)."""
        client = await redis_from_env(cluster.url)
        for names in cluster.services("llmrl-close").values():
            await client.set(f"llmrl-close:{{{names[0]}}}", "1", ex=10)
        client._initialize = True  # what redis-py sets on a connection error
        await client.aclose()
        nodes = [*client.nodes_manager.nodes_cache.values()]
        nodes += client.nodes_manager.startup_nodes.values()
        connections = [c for node in nodes for c in node._connections]
        assert len(connections) >= 3
        assert not any(c.is_connected for c in connections)

    async def test_start_up_nodes_past_a_dead_one(self, cluster: Cluster) -> None:
        """Several comma-separated start-up nodes: a dead first one is skipped."""
        port = cluster.primaries()[1]
        client = await redis_from_env(f"redis+cluster://127.0.0.1:1,127.0.0.1:{port}/0")
        try:
            assert isinstance(client, aioredis.RedisCluster)
            assert 3 == len(client.get_primaries())
        finally:
            await client.aclose()

    async def test_a_database_other_than_0_is_refused(self) -> None:
        """A cluster has only database 0: /1 is a ConfigurationError naming REDIS_URL."""
        with pytest.raises(ConfigurationError, match=r"REDIS_URL.*only database 0") as info:
            await redis_from_env("redis+cluster://user:s3cret@127.0.0.1:7000/1")
        assert "s3cret" not in str(info.value)

    async def test_a_malformed_node_is_refused(self) -> None:
        """A start-up node that is not host:port is a ConfigurationError."""
        with pytest.raises(ConfigurationError, match=r"REDIS_URL.*'127.0.0.1:x' is not host:port"):
            await redis_from_env("redis+cluster://127.0.0.1:x")

    async def test_an_unreachable_cluster_is_refused_without_the_password(self) -> None:
        """No node answers: a ConfigurationError naming REDIS_URL, the password redacted."""
        with pytest.raises(ConfigurationError, match=r"REDIS_URL.*Redis Cluster") as info:
            await redis_from_env("redis+cluster://:s3cret@127.0.0.1:1", socket_connect_timeout=0.5)
        assert "s3cret" not in str(info.value)
        assert ":***@127.0.0.1:1" in str(info.value)

    @pytest.mark.redis
    async def test_a_cluster_url_to_a_single_redis_is_refused(self) -> None:
        """redis+cluster:// pointed at a Redis without cluster mode is a ConfigurationError."""
        with pytest.raises(ConfigurationError, match=r"REDIS_URL.*cluster"):
            await redis_from_env("redis+cluster://127.0.0.1")  # no port: 6379


class TestSingleNodeURLToACluster:
    async def test_a_single_node_url_to_a_cluster_node_says_use_the_cluster_scheme(
        self, cluster: Cluster
    ) -> None:
        """redis:// to a cluster node fails at once (not with MOVED later), naming redis+cluster://."""
        port = cluster.primaries()[0]
        with pytest.raises(ConfigurationError, match=r"REDIS_URL.*use redis\+cluster://"):
            await redis_from_env(f"redis://127.0.0.1:{port}/0")

    async def test_a_database_index_on_a_cluster_node_is_a_configuration_error(
        self, cluster: Cluster
    ) -> None:
        """redis://node/2 (SELECT on a cluster node) is a ConfigurationError, no ResponseError."""
        port = cluster.primaries()[0]
        with pytest.raises(ConfigurationError, match=r"REDIS_URL.*only database 0"):
            await redis_from_env(f"redis://127.0.0.1:{port}/2")
