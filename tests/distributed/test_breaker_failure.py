# SPDX-License-Identifier: MIT
"""
`SharedCircuitBreaker` when Redis dies, stalls or comes back.

Each test starts a `redis-server` of its own on a free port
(``redis_server.RedisServer``: killed, stopped with SIGSTOP and restarted on
the same port by the test); the breakers run on real time. Without a
``redis-server`` binary these tests fail.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from llm_rate_limiter import BreakerPolicy, ResiliencePolicy, RetryPolicy
from llm_rate_limiter._hooks import NullHook
from llm_rate_limiter.distributed import SharedCircuitBreaker, redis_from_env
from llm_rate_limiter.exceptions import (
    CircuitOpenError,
    ConfigurationError,
    SharedStateUnavailableError,
)
from tests.distributed.redis_server import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

POLICY = BreakerPolicy(fail_max=1, reset_timeout=0.5)
TIMEOUT = 0.25


class SharedHook(NullHook):
    """Records ``shared_state_changed`` events and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bool]] = []
        self.changed = asyncio.Event()

    def shared_state_changed(self, service: str, available: bool) -> None:
        self.events.append((service, available))
        self.changed.set()

    async def wait_for(self, available: bool, seconds: float = 10.0) -> None:
        """Wait until the last event says *available*."""
        with anyio.fail_after(seconds):
            while not self.events or self.events[-1][1] != available:
                self.changed.clear()
                await self.changed.wait()


class Setup:
    """Two breakers ("processes") for one service on one own server, each on its connection."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.prefix = f"llmrl-test-{uuid.uuid4().hex[:12]}"
        self.clients: list[aioredis.Redis] = []
        self.breakers: list[SharedCircuitBreaker] = []
        self.hooks: dict[SharedCircuitBreaker, SharedHook] = {}

    async def pair(
        self, policy: BreakerPolicy = POLICY, **kwargs: Any
    ) -> tuple[SharedCircuitBreaker, SharedCircuitBreaker]:
        """Two breakers with hooks (in `hooks`), each synced once."""
        made = []
        for _ in range(2):
            client = await redis_from_env(self.server.url)
            self.clients.append(client)
            hook = SharedHook()
            breaker = SharedCircuitBreaker(
                policy, redis=client, service="svc", key_prefix=self.prefix, hook=hook, **kwargs
            )
            self.hooks[breaker] = hook
            await breaker.sync()
            made.append(breaker)
        self.breakers += made
        return made[0], made[1]


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    server = RedisServer()
    await server.astart()
    made = Setup(server)
    try:
        yield made
    finally:
        server.kill()
        for breaker in made.breakers:
            await breaker.aclose()
        for client in made.clients:
            await client.aclose()


async def ok() -> str:
    return "ok"


async def down() -> str:
    raise ConnectionError("the provider is down")


async def restart_and_propagate(
    setup: Setup, a: SharedCircuitBreaker, b: SharedCircuitBreaker
) -> None:
    """Restart the server; both breakers reconnect and an opening in A reaches B."""
    await setup.server.astart()
    await setup.hooks[a].wait_for(True)
    await setup.hooks[b].wait_for(True)
    a.reset()
    await a.flush()
    await b.sync()
    a.on_failure(a.admit(), ConnectionError("down"), 0.01)
    await a.flush()
    assert 0.4 < await b.sync() <= 0.5
    assert ("open", "open") == (a.state, b.state)


class TestRedisKilled:
    async def test_failing_open_runs_locally_and_recovers(self, setup: Setup) -> None:
        """Redis dead: calls see only the breaker's own errors; after a restart openings spread."""
        a, b = await setup.pair(redis_failure="open", redis_timeout=TIMEOUT)
        setup.server.kill()
        assert "ok" == await a.call(ok)
        await a.sync()  # what admit starts in the background when its view is stale
        await b.sync()
        assert [("svc", False)] == setup.hooks[a].events
        assert [("svc", False)] == setup.hooks[b].events
        with pytest.raises(ConnectionError):
            await a.call(down)  # opens A locally
        with pytest.raises(CircuitOpenError):
            await a.call(ok)
        assert "ok" == await b.call(ok)  # B never heard of it
        with anyio.fail_after(10):
            ticket = await a.wait_for_admission()  # a local trial, at A's trial instant
        a.on_success(ticket, 0.01)
        assert ("closed", False) == (a.state, a.shared_state_available)
        await restart_and_propagate(setup, a, b)
        assert [("svc", False), ("svc", True)] == setup.hooks[a].events

    async def test_an_opening_made_meanwhile_is_published_on_return(self, setup: Setup) -> None:
        """A breaker that opened while Redis was dead publishes the opening once Redis is back."""
        policy = BreakerPolicy(fail_max=1, reset_timeout=10.0)
        a, b = await setup.pair(policy, redis_failure="open", redis_timeout=TIMEOUT)
        setup.server.kill()
        await a.sync()
        with pytest.raises(ConnectionError):
            await a.call(down)
        await a.sync()  # a probe that fails keeps the opening for the next one
        await setup.server.astart()
        await setup.hooks[a].wait_for(True)  # its probe carried the opening
        assert 5.0 < await b.sync() <= 10.0
        assert "open" == b.state

    async def test_a_recovery_after_a_restart_reaches_the_others(self, setup: Setup) -> None:
        """After a restart (epoch lost, pooled connections dead) B sees the next recovery."""
        a, b = await setup.pair(BreakerPolicy(fail_max=1, reset_timeout=30.0))
        for step in (a.force_open, a.reset, a.force_open):  # B sees a recovery, then opens
            step()
            await a.flush()
            await b.sync()
            assert a.state == b.state
        await asyncio.gather(*(setup.clients[1].ping() for _ in range(4)))  # 4 pooled connections
        setup.server.kill()
        await setup.server.astart()
        a.reset()  # after the restart, before B looked again
        await a.flush()
        assert 0.0 == await b.sync()
        assert ("closed", "closed") == (a.state, b.state)

    async def test_failing_closed_refuses_and_recovers(self, setup: Setup) -> None:
        """Redis dead: admit and a waiting call raise SharedStateUnavailableError; both recover."""
        a, b = await setup.pair(redis_failure="closed", redis_timeout=TIMEOUT)
        b.force_open()
        await b.flush()
        waiting = asyncio.create_task(b.wait_for_admission())
        setup.server.kill()
        await a.sync()
        with pytest.raises(SharedStateUnavailableError, match="svc"):
            a.admit()
        with pytest.raises(SharedStateUnavailableError):
            await a.call(ok)
        with anyio.fail_after(10), pytest.raises(SharedStateUnavailableError):
            await waiting  # its breaker's own syncs fail, which wakes it
        assert [("svc", False)] == setup.hooks[b].events
        await restart_and_propagate(setup, a, b)

    async def test_one_warning_per_outage_with_host_not_password(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An outage of 5 failed exchanges and its end log 2 warnings (host:port, no password)."""
        server = RedisServer(password="s3cret-pw")
        await server.astart()
        client = await redis_from_env(server.url)
        hook = SharedHook()
        breaker = SharedCircuitBreaker(
            POLICY, redis=client, service="svc", hook=hook, redis_timeout=TIMEOUT
        )
        try:
            with caplog.at_level(logging.WARNING, logger="llm_rate_limiter"):
                server.kill()
                for _ in range(5):
                    await breaker.sync()
                await server.astart()
                await breaker.sync()
                server.kill()  # a second outage within a minute: counted, not logged
                await breaker.sync()
                await server.astart()
                await breaker.sync()
        finally:
            server.kill()
            await breaker.aclose()
            await client.aclose()
        records = [r for r in caplog.records if r.name.startswith("llm_rate_limiter")]
        assert [("svc", False), ("svc", True)] * 2 == hook.events
        assert 2 == len(records)
        assert all(f"127.0.0.1:{server.port}" in r.getMessage() for r in records)
        assert "s3cret-pw" not in caplog.text


async def timed(durations: list[float], step: Callable[[], Awaitable[object]]) -> None:
    start = time.monotonic()
    try:
        await step()
    finally:
        durations.append(time.monotonic() - start)


class TestRedisStalled:
    async def test_calls_are_never_delayed(self, setup: Setup) -> None:
        """With Redis stopped (SIGSTOP) for 2 s no call through the breaker takes timeout + 0.2s."""
        a, _ = await setup.pair(redis_failure="open", redis_timeout=TIMEOUT)
        policy = ResiliencePolicy("svc", retry=RetryPolicy(max_retries=0), circuit_breaker=a)
        setup.server.stall()  # until the fixture kills it
        durations: list[float] = []
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            await timed(durations, lambda: policy.call(asyncio.sleep, 0.01))
        await setup.hooks[a].wait_for(False)
        assert len(durations) > 20
        assert max(durations) <= TIMEOUT + 0.2

    async def test_a_trial_waits_at_most_the_timeout(self, setup: Setup) -> None:
        """At the trial instant with Redis stopped, the trial goes out locally by timeout + 0.2s."""
        a, b = await setup.pair(redis_failure="open", redis_timeout=TIMEOUT)
        a.force_open()
        await a.flush()
        await b.sync()
        setup.server.stall()  # until the fixture kills it
        trial_at = time.monotonic() + b.seconds_until_trial()
        with anyio.fail_after(10):
            ticket = await b.wait_for_admission()
        waited = time.monotonic() - trial_at
        b.on_success(ticket, 0.01)
        assert waited <= TIMEOUT + 0.2
        assert "closed" == b.state

    async def test_failing_closed_refuses_at_once(self, setup: Setup) -> None:
        """With Redis stopped, calls failing closed are refused, none later than timeout + 0.2 s."""
        a, _ = await setup.pair(redis_failure="closed", redis_timeout=TIMEOUT)
        policy = ResiliencePolicy("svc", retry=RetryPolicy(max_retries=0), circuit_breaker=a)
        setup.server.stall()
        durations: list[float] = []
        refused = 0
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            try:
                await timed(durations, lambda: policy.call(asyncio.sleep, 0.01))
            except SharedStateUnavailableError:
                refused += 1
        setup.server.stall(False)
        assert refused > 0
        assert max(durations) <= TIMEOUT + 0.2
        await setup.hooks[a].wait_for(True)
        assert "ok" == await a.call(ok)


class TestSettings:
    @pytest.mark.parametrize(
        ("setting", "value"), [("redis_failure", "maybe"), ("redis_timeout", 0.0)]
    )
    def test_bad_setting(self, setting: str, value: Any) -> None:
        """An unknown failure mode or a timeout of 0 is refused at construction, by name."""
        with pytest.raises(ConfigurationError, match=setting):
            SharedCircuitBreaker(POLICY, redis=aioredis.Redis(), **{setting: value})
