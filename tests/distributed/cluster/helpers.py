# SPDX-License-Identifier: MIT
"""
`Cluster`: a real Redis Cluster on free loopback ports, started and stopped by the test suite.

Each node is a ``redis-server --cluster-enabled yes`` of its own (no
persistence, its ``nodes.conf`` in a temporary directory), joined by
``redis-cli --cluster create``; every wait is polled with a bound, and every
node is stopped by its PID. Without ``redis-server`` or ``redis-cli`` the
tests that use it fail (they never skip).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable

import redis
from redis.crc import key_slot

from llm_rate_limiter.distributed._keys import key_fingerprint, service_key
from tests.distributed.redis_server import RedisServer

#: Longest wait for anything the cluster does (start, join, failover), seconds.
WAIT = 30.0


def _free_port() -> int:
    """A free loopback port whose cluster-bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port + 10_000 >= 65_536:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port
    msg = "no free port pair for a cluster node"
    raise RuntimeError(msg)


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll *check* every 50 ms until it is true; fail after *timeout* seconds."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            msg = f"timed out after {timeout:g} s waiting for {what}"
            raise TimeoutError(msg)
        time.sleep(0.05)


class Node(RedisServer):
    """One ``redis-server`` of the cluster, its ``nodes.conf`` in *directory*."""

    def __init__(self, port: int, directory: str, args: list[str]) -> None:
        cluster = ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
        super().__init__(port, args=cluster + args, directory=directory, timeout=WAIT)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5.0, decode_responses=True)


class Cluster:
    """
    *masters* primaries (and *replicas* replicas of each) on free ports.

    Args:
        masters: Number of primaries (shards).
        replicas: Replicas per primary.
        node_timeout: ``cluster-node-timeout``, milliseconds.
        full_coverage: ``cluster-require-full-coverage``.
    """

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 0,
        *,
        node_timeout: int = 1000,
        full_coverage: bool = False,
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="llmrl-cluster-")
        args = ["--cluster-node-timeout", str(node_timeout)]
        args += ["--cluster-require-full-coverage", "yes" if full_coverage else "no"]
        self.nodes: list[Node] = []
        try:
            for _ in range(masters * (1 + replicas)):
                node = Node(_free_port(), self._dir.name, args)
                self.nodes.append(node)
                node.start()
            if len(self.nodes) == 1:  # redis-cli creates 3 primaries or more: by hand
                with self.nodes[0].client() as client:
                    client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            else:
                addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
                create = ["redis-cli", "--cluster", "create", *addresses]
                create += ["--cluster-replicas", str(replicas), "--cluster-yes"]
                subprocess.run(create, check=True, capture_output=True, timeout=WAIT)
            wait_until(self.ok, "cluster_state:ok on every node")
            if replicas:
                wait_until(
                    lambda: self._replicas_synced(replicas), "every replica known and in sync"
                )
        except BaseException:
            self.stop()
            raise
        #: Every node a start-up node: a client can start while any one of them is down.
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    # -- state ------------------------------------------------------------------------

    def ok(self) -> bool:
        """Every live node says cluster_state:ok and knows every node."""
        for node in self.nodes:
            if not node.alive:
                continue
            try:
                with node.client() as client:
                    info = client.cluster("info")
                    known = int(info.get("cluster_known_nodes", 0))
                    if info.get("cluster_state") != "ok" or known != len(self.nodes):
                        return False
            except redis.RedisError:
                return False
        return True

    def _replicas_synced(self, replicas: int) -> bool:
        if any(len(r) != replicas for node in self.nodes for r in self._replicas_seen(node)):
            return False
        for node in self.nodes:
            with node.client() as client:
                info = client.info("replication")
            if info["role"] == "slave" and info.get("master_link_status") != "up":
                return False
        return True

    @staticmethod
    def _replicas_seen(node: Node) -> list[list[int]]:
        with node.client() as client:
            reply = client.execute_command("CLUSTER", "SLOTS")
        return [[int(x[1]) for x in r[3:]] for r in reply]

    def slots(self) -> list[tuple[int, int, int, list[int]]]:
        """``(first slot, last slot, primary port, replica ports)`` as a live node sees them."""
        node = next(n for n in self.nodes if n.alive)
        with node.client() as client:
            reply = client.execute_command("CLUSTER", "SLOTS")
        return [(int(r[0]), int(r[1]), int(r[2][1]), [int(x[1]) for x in r[3:]]) for r in reply]

    def primaries(self) -> list[int]:
        """The primaries' ports, in slot order."""
        return [port for _, _, port, _ in sorted(self.slots())]

    def primary_of(self, key: str) -> int:
        """The port of the primary that holds *key*'s slot."""
        slot = key_slot(key.encode())
        return next(port for lo, hi, port, _ in self.slots() if lo <= slot <= hi)

    def node(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

    def services(
        self, prefix: str, per_shard: int = 1, api_key: str | None = None
    ) -> dict[int, list[str]]:
        """Service names whose keys (under *prefix*, for *api_key*) land on each primary."""
        ranges = self.slots()
        found: dict[int, list[str]] = {port: [] for _, _, port, _ in ranges}
        fingerprint = key_fingerprint(api_key)
        for i in range(10_000):
            name = f"svc{i}"
            slot = key_slot(service_key(prefix, name, "req", fingerprint).encode())
            port = next(p for lo, hi, p, _ in ranges if lo <= slot <= hi)
            if len(found[port]) < per_shard:
                found[port].append(name)
            if all(len(names) == per_shard for names in found.values()):
                return found
        msg = "could not spread service names over the shards"
        raise RuntimeError(msg)

    def evalsha_calls(self, port: int) -> int:
        """How many ``EVALSHA`` the node at *port* has run."""
        with self.node(port).client() as client:
            stats = client.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

    def reset_stats(self) -> None:
        for node in self.nodes:
            if node.alive:
                with node.client() as client:
                    client.config_resetstat()

    def failed_over(self, old: int) -> bool:
        """The slots of the primary at *old* are served by another node now."""
        with contextlib.suppress(redis.RedisError):
            return old not in self.primaries() and self.ok_but(old)
        return False

    def ok_but(self, dead: int) -> bool:
        """Every live node but *dead* says cluster_state:ok."""
        for node in self.nodes:
            if node.alive and node.port != dead:
                with node.client() as client:
                    if client.cluster("info").get("cluster_state") != "ok":
                        return False
        return True

    def marked_failed(self, dead: int) -> bool:
        """Every live node flags the node at *dead* as ``fail`` (past cluster-node-timeout)."""
        for node in self.nodes:
            if node.alive and node.port != dead:
                with node.client() as client:
                    lines = client.execute_command("CLUSTER", "NODES").splitlines()
                mine = [line.split() for line in lines if f":{dead}@" in line]
                if not mine or "fail" not in mine[0][2].split(","):
                    return False
        return True

    def stop(self) -> None:
        """Kill every node (by PID) and remove the directory."""
        for node in self.nodes:
            node.kill()
        self._dir.cleanup()
