# SPDX-License-Identifier: MIT
"""
`SharedCircuitBreaker` against a real Redis (``REDIS_URL``).

Two breakers on two connections stand in for two processes. Each runs its
state machine on a `FakeClock`; the shared opening lives in Redis (real
time), and every read of it is awaited explicitly (``flush``/``sync``), so
nothing sleeps. Without Redis these tests fail.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from llm_rate_limiter import BreakerPolicy
from llm_rate_limiter.distributed import SharedCircuitBreaker, redis_from_env
from llm_rate_limiter.exceptions import CircuitOpenError, ConfigurationError
from llm_rate_limiter.testing import FakeClock
from tests.helpers import server_error

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

POLICY = BreakerPolicy(fail_max=1, reset_timeout=30.0)


class Pair:
    """Breakers A and B for one service, each on its own connection and fake clock."""

    def __init__(self, a: aioredis.Redis, b: aioredis.Redis) -> None:
        self.redis = a
        self.prefix = f"llmrl-test-{uuid.uuid4().hex[:12]}"
        self.clock_a, self.clock_b = FakeClock(), FakeClock()
        self.a = SharedCircuitBreaker(
            POLICY, redis=a, service="svc", key_prefix=self.prefix, clock=self.clock_a
        )
        self.b = SharedCircuitBreaker(
            POLICY, redis=b, service="svc", key_prefix=self.prefix, clock=self.clock_b
        )

    async def trial_a(self) -> int:
        """Admit A's half-open trial: the first admit asks Redis for a slot, the next takes it."""
        with pytest.raises(CircuitOpenError):
            self.a.admit()
        await self.a.flush()
        return self.a.admit()

    async def trip_a(self) -> None:
        """Open A with one counted failure and wait until it is published."""
        ticket = self.a.admit()
        self.a.on_failure(ticket, server_error(), 0.01)
        assert "open" == self.a.state
        await self.a.flush()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    a, b = await redis_from_env(), await redis_from_env()
    made = Pair(a, b)
    try:
        await made.b.sync()  # B's first look: closed, epoch known
        yield made
    finally:
        await made.a.flush()
        await made.b.flush()
        keys = await a.keys(f"{made.prefix}:*")
        if keys:
            await a.delete(*keys)
        await a.aclose()
        await b.aclose()


class TestOpening:
    async def test_one_opening_makes_the_other_refuse(self, pair: Pair) -> None:
        """Once A opens, B refuses within one refresh interval (plus the read it starts)."""
        await pair.trip_a()
        pair.b.on_cancel(pair.b.admit())  # B's view is fresh: it still admits
        pair.clock_b.advance(0.1)
        pair.b.on_cancel(pair.b.admit())  # stale: admits, and starts a read
        await pair.b.flush()
        with pytest.raises(CircuitOpenError) as info:
            pair.b.admit()
        assert 29.0 < info.value.retry_after <= 30.0
        assert "open" == pair.b.state
        assert 1 == pair.b.statistics().rejected

    async def test_open_key_expires_with_the_opening(self, pair: Pair) -> None:
        """The published opening expires after reset_timeout; the epoch key has a TTL too."""
        await pair.trip_a()
        pair.a.reset()
        await pair.a.flush()
        await pair.trip_a()
        open_key, epoch_key, _ = pair.a.keys
        assert 29_000 < await pair.redis.pttl(open_key) <= 30_000
        assert 0 < await pair.redis.pttl(epoch_key) <= 86_400_000

    async def test_trials_start_together(self, pair: Pair) -> None:
        """B, following A's opening, allows its trial call when A's opening ends."""
        await pair.trip_a()
        await pair.b.sync()
        start = pair.clock_b.monotonic()
        pair.clock_b.advance(pair.b.seconds_until_trial())
        assert "half_open" == pair.b.state
        assert 29.0 < pair.clock_b.monotonic() - start <= 30.0

    async def test_force_open_is_shared(self, pair: Pair) -> None:
        """force_open() on A opens B at its next read."""
        pair.a.force_open()
        await pair.a.flush()
        assert 29.0 < await pair.b.sync() <= 30.0
        assert "open" == pair.b.state

    async def test_in_flight_outcomes_in_b_are_ignored(self, pair: Pair) -> None:
        """A call B admitted before following A's opening cannot close B by succeeding."""
        ticket = pair.b.admit()
        await pair.trip_a()
        await pair.b.sync()
        pair.b.on_success(ticket, 0.01)
        assert "open" == pair.b.state


class TestRecovery:
    async def test_a_successful_trial_closes_both(self, pair: Pair) -> None:
        """A's successful half-open trial deletes the opening and B closes at its next read."""
        await pair.trip_a()
        await pair.b.sync()
        assert "open" == pair.b.state
        pair.clock_a.advance(30.0)
        await pair.redis.delete(pair.a.keys[0])  # the opening is alive in Redis (real time): end it
        ticket = await pair.trial_a()
        pair.a.on_success(ticket, 0.01)
        assert "closed" == pair.a.state
        await pair.a.flush()
        assert 0 == await pair.redis.exists(pair.a.keys[0])
        assert 0.0 == await pair.b.sync()
        assert "closed" == str(pair.b.state)
        pair.b.on_success(pair.b.admit(), 0.01)

    async def test_reset_is_shared(self, pair: Pair) -> None:
        """reset() on A closes B, which had followed A's opening."""
        await pair.trip_a()
        await pair.b.sync()
        pair.a.reset()
        await pair.a.flush()
        await pair.b.sync()
        assert ("closed", "closed") == (pair.a.state, pair.b.state)

    async def test_a_failed_trial_reopens_both(self, pair: Pair) -> None:
        """A failed trial in A publishes a new opening that B, half-open, follows."""
        await pair.trip_a()
        await pair.b.sync()
        pair.clock_a.advance(30.0)
        pair.clock_b.advance(30.0)
        assert "half_open" == pair.b.state
        # The first opening is still alive in Redis (real time): drop it, as if expired.
        await pair.redis.delete(pair.a.keys[0])
        ticket = await pair.trial_a()
        pair.a.on_failure(ticket, server_error(), 0.01)
        await pair.a.flush()
        await pair.b.sync()
        assert ("open", "open") == (pair.a.state, pair.b.state)


class TestWithoutRedis:
    async def test_local_breaker_keeps_working(self, caplog: pytest.LogCaptureFixture) -> None:
        """With Redis unreachable the breaker admits and opens locally and logs the failure."""
        client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        clock = FakeClock()
        breaker = SharedCircuitBreaker(POLICY, redis=client, service="svc", clock=clock)
        try:
            with caplog.at_level(logging.WARNING, logger="llm_rate_limiter.distributed"):
                ticket = breaker.admit()
                breaker.on_failure(ticket, server_error(), 0.01)
                await breaker.flush()
            assert "open" == breaker.state
            assert any("127.0.0.1:1 failed" in r.getMessage() for r in caplog.records)
        finally:
            await client.aclose()

    def test_bad_refresh_interval(self) -> None:
        """A refresh interval of 0 is refused at construction."""
        with pytest.raises(ConfigurationError, match="refresh_interval"):
            SharedCircuitBreaker(POLICY, redis=aioredis.Redis(), refresh_interval=0)
