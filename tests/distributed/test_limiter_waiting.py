# SPDX-License-Identifier: MIT
"""
`RedisRateLimiter` waiting, leases and keys against the shared Redis (``REDIS_URL``).

Each test uses a key prefix of its own. Limiters on separate connections
stand in for separate processes; the multi-process runs are in
``test_limiter_processes``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
import redis.crc

from llm_rate_limiter import RateLimits
from llm_rate_limiter.distributed import RedisRateLimiter, redis_from_env
from llm_rate_limiter.distributed._keys import key_fingerprint
from llm_rate_limiter.exceptions import ConfigurationError, RateLimitTimeoutError
from llm_rate_limiter.limiter import WaitInterrupted

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


class Env:
    """Connections of this test, limiters to close, and a key prefix of its own."""

    def __init__(self) -> None:
        self.prefix = f"llmrl-test-{uuid.uuid4().hex[:12]}"
        self.clients: list[aioredis.Redis] = []
        self.limiters: list[RedisRateLimiter] = []

    async def limiter(self, limits: RateLimits, **kwargs: Any) -> RedisRateLimiter:
        """A limiter on a connection of its own ("a process")."""
        client = await redis_from_env()
        self.clients.append(client)
        made = RedisRateLimiter(client, limits, service="svc", key_prefix=self.prefix, **kwargs)
        self.limiters.append(made)
        return made

    @property
    def raw(self) -> aioredis.Redis:
        return self.clients[0]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    made = Env()
    made.clients.append(await redis_from_env())
    try:
        yield made
    finally:
        for limiter in made.limiters:
            await limiter.aclose()
        keys = await made.raw.keys(f"{made.prefix}:*")
        if keys:
            await made.raw.delete(*keys)
        for client in made.clients:
            await client.aclose()


class Scripts:
    """Wraps a limiter's admission script: the status of each reply, and a way to wait for them."""

    def __init__(self, limiter: RedisRateLimiter) -> None:
        self.statuses: list[int] = []
        self._replied = asyncio.Event()
        script = limiter._acquire_script

        async def counted(**kwargs: Any) -> Any:
            reply = await script(**kwargs)
            self.statuses.append(int(reply[0]))
            self._replied.set()
            return reply

        limiter._acquire_script = counted  # type: ignore[assignment]

    async def wait_for(self, count: int) -> None:
        """Until *count* replies came in."""
        while len(self.statuses) < count:
            self._replied.clear()
            await self._replied.wait()


async def take(
    limiter: RedisRateLimiter, count: int, log: list[tuple[int, float]], me: int
) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(count):
        async with limiter.acquire():
            log.append((me, loop.time()))


class TestQueue:
    async def test_25_waiters_cost_at_most_2_scripts_per_admission(self, env: Env) -> None:
        """Two limiters with 25 waiters each pay about one script call per admission, not 25."""
        limits = RateLimits(requests_per_minute=40 * 60, burst=0.25)
        a, b = await env.limiter(limits), await env.limiter(limits)
        calls = [Scripts(a), Scripts(b)]
        log: list[tuple[int, float]] = []
        with anyio.fail_after(30):
            await asyncio.gather(
                *(take(limiter, 3, log, i) for i in range(25) for limiter in (a, b))
            )
        assert 150 == len(log)
        per_admission = sum(len(c.statuses) for c in calls) / len(log)
        assert per_admission <= 2.0, per_admission  # one script per waiter per look: ~25
        assert per_admission <= 1.2, per_admission  # reservations: about one

    async def test_waiters_are_admitted_in_arrival_order(self, env: Env) -> None:
        """Ten calls queued behind a full bucket are admitted in the order they arrived."""
        a = await env.limiter(RateLimits(requests_per_minute=50 * 60, burst=0.02))
        log: list[tuple[int, float]] = []
        tasks = []
        for i in range(10):
            tasks.append(asyncio.ensure_future(take(a, 1, log, i)))
            await asyncio.sleep(0)  # each one queued before the next is created
        with anyio.fail_after(10):
            await asyncio.gather(*tasks)
        assert list(range(10)) == [i for i, _ in log]

    async def test_a_queued_call_past_max_wait_fails_at_once(self, env: Env) -> None:
        """With 4 calls queued at 10/s and max_wait 0.25 s, the later arrivals fail at once."""
        a = await env.limiter(RateLimits(requests_per_minute=600, burst=0.1, max_wait=0.25))
        loop = asyncio.get_running_loop()
        outcomes: list[tuple[str, float]] = []

        async def one() -> None:
            start = loop.time()
            try:
                async with a.acquire():
                    outcomes.append(("admitted", loop.time() - start))
            except RateLimitTimeoutError:
                outcomes.append(("refused", loop.time() - start))

        with anyio.fail_after(10):
            await asyncio.gather(*(one() for _ in range(8)))
        admitted = [t for what, t in outcomes if what == "admitted"]
        refused = [t for what, t in outcomes if what == "refused"]
        assert 3 <= len(admitted) <= 4
        assert max(admitted) <= 0.25 + 0.05
        assert max(refused) < 0.05  # predicted from the queue, not waited for

    async def test_interrupted_waiters_leave_their_reservations_behind(self, env: Env) -> None:
        """interrupt_waiters sends the queued calls and a head sleeping on a reservation away."""
        a = await env.limiter(RateLimits(requests_per_minute=60, burst=1.0))
        scripts = Scripts(a)
        async with a.acquire():
            pass
        tasks = [asyncio.ensure_future(a.acquire().__aenter__()) for _ in range(5)]
        with anyio.fail_after(5):
            await scripts.wait_for(2)  # the head's reservation is in
        assert 5 == a.statistics().queued
        assert 5 == a.interrupt_waiters()
        for task in tasks:
            with pytest.raises(WaitInterrupted):
                await task
        level = float(await env.raw.hget(a.keys["req"], "l") or 0.0)
        assert [0, 0] == scripts.statuses  # an admission, a reservation (then given back)
        assert level <= 1.0  # reserved: 2

    async def test_a_cancelled_head_gives_its_reservation_back(self, env: Env) -> None:
        """A head cancelled while it sleeps on its reservation has it undone before it ends."""
        a = await env.limiter(RateLimits(requests_per_minute=60, tokens_per_minute=6000))
        scripts = Scripts(a)
        async with a.acquire(10):
            pass
        task = asyncio.ensure_future(a.acquire(50).__aenter__())
        with anyio.fail_after(5):
            await scripts.wait_for(2)
        assert [0, 0] == scripts.statuses
        assert 50.0 < float(await env.raw.hget(a.keys["tok"], "l") or 0.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert 10.0 >= float(await env.raw.hget(a.keys["tok"], "l") or 0.0)
        assert (1, 0) == (a.statistics().admitted, a.statistics().queued)


class TestSlots:
    async def test_a_release_wakes_the_waiter_without_polling(self, env: Env) -> None:
        """With a 5 s poll, a waiter for the only slot goes well within 1 s of its release."""
        limits = RateLimits(max_concurrency=1)
        a = await env.limiter(limits, lease=30.0)
        b = await env.limiter(limits, lease=30.0, poll_interval=5.0)
        scripts = Scripts(b)
        blocking = asyncio.Event()
        blpop = b._redis.blpop

        async def spy(*args: Any, **kwargs: Any) -> Any:
            blocking.set()
            return await blpop(*args, **kwargs)

        b._redis.blpop = spy  # type: ignore[method-assign]
        loop = asyncio.get_running_loop()
        held = a.acquire()
        await held.__aenter__()
        waiter = asyncio.ensure_future(b.acquire().__aenter__())
        with anyio.fail_after(5):
            await blocking.wait()  # b waits on the notification list
        released = loop.time()
        await held.__aexit__(None, None, None)
        with anyio.fail_after(3):
            permit = await waiter
        assert loop.time() - released < 1.0
        assert [2, 0] == scripts.statuses  # one look, one wake-up: no polling in between
        await permit.__aexit__(None, None, None)

    async def test_waiting_for_a_slot_costs_one_look_per_poll_not_per_waiter(
        self, env: Env
    ) -> None:
        """25 calls waiting for a held slot look at Redis once per poll in all, not 25 times."""
        limits = RateLimits(max_concurrency=1)
        a = await env.limiter(limits, lease=30.0)
        b = await env.limiter(limits, lease=30.0, poll_interval=0.1)
        scripts = Scripts(b)
        polled = asyncio.Event()
        polls = 0
        blpop = b._redis.blpop

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal polls
            reply = await blpop(*args, **kwargs)
            polls += 1
            polled.set()
            return reply

        b._redis.blpop = counted  # type: ignore[method-assign]

        async def one() -> None:
            async with b.acquire():
                pass

        held = a.acquire()
        await held.__aenter__()
        waiters = [asyncio.ensure_future(one()) for _ in range(25)]
        with anyio.fail_after(10):
            while polls < 5:  # five poll intervals went by without a release
                polled.clear()
                await polled.wait()
        looks = len(scripts.statuses)
        await held.__aexit__(None, None, None)
        with anyio.fail_after(10):
            await asyncio.gather(*waiters)
        assert looks <= 5 + 2, looks  # one waiter per look: 25 and more
        assert 25 == b.statistics().admitted

    async def test_a_lost_notification_costs_one_poll(self, env: Env) -> None:
        """A slot freed without a notification is found within about one poll interval."""
        limits = RateLimits(max_concurrency=1)
        a = await env.limiter(limits, lease=30.0)
        b = await env.limiter(limits, lease=30.0, poll_interval=0.3)
        loop = asyncio.get_running_loop()
        await a.acquire().__aenter__()
        waiter = asyncio.ensure_future(b.acquire().__aenter__())
        done, _ = await asyncio.wait([waiter], timeout=0.1)
        assert set() == done
        freed = loop.time()
        await env.raw.delete(a.keys["conc"])  # the holder vanishes, nobody is told
        with anyio.fail_after(3):
            permit = await waiter
        assert loop.time() - freed < 0.3 + 0.5
        await permit.__aexit__(None, None, None)

    async def test_the_lease_key_expiry_only_grows(self, env: Env) -> None:
        """A 0.5 s lease taken after a 30 s one leaves the key's expiry at ~30 s, not ~1.5 s."""
        limits = RateLimits(max_concurrency=2)
        long_ = await env.limiter(limits, lease=30.0)
        short = await env.limiter(limits, lease=0.5)
        async with long_.acquire(), short.acquire():
            ttl = await env.raw.pttl(long_.keys["conc"])
        assert 29_000 <= ttl <= 31_000

    async def test_a_renewal_re_adds_an_expired_holder(self, env: Env) -> None:
        """A holder that vanished from the lease set (expiry, a restart) is re-added by renewal."""
        a = await env.limiter(RateLimits(max_concurrency=1), lease=0.6)
        renewed = asyncio.Event()
        deleted = False
        script = a._renew_script

        async def spy(**kwargs: Any) -> Any:
            after = deleted
            reply = await script(**kwargs)
            if after:  # a renewal sent once the holder was gone
                renewed.set()
            return reply

        a._renew_script = spy  # type: ignore[assignment]
        async with a.acquire():
            [(holder, old)] = await env.raw.zrange(a.keys["conc"], 0, -1, withscores=True)
            await env.raw.delete(a.keys["conc"])
            deleted = True
            with anyio.fail_after(5):
                await renewed.wait()
            seconds, micros = await env.raw.time()
            [(again, expiry)] = await env.raw.zrange(a.keys["conc"], 0, -1, withscores=True)
        assert holder == again
        assert old < expiry <= seconds + micros / 1e6 + 0.6  # a new lease, from the renewal


class TestKeys:
    async def test_fingerprints_split_budgets_and_share_one(self, env: Env) -> None:
        """Two API keys of one service get two budgets; one key in two limiters gets one."""
        limits = RateLimits(requests_per_minute=60, burst=1.0, max_wait=0.0)
        one, two = key_fingerprint("sk-one"), key_fingerprint("sk-two")
        a = await env.limiter(limits, fingerprint=one)
        b = await env.limiter(limits, fingerprint=two)
        c = await env.limiter(limits, fingerprint=one)
        async with a.acquire(), b.acquire():
            pass  # each budget's only request
        with pytest.raises(RateLimitTimeoutError):
            async with c.acquire():
                pass
        assert a.keys == c.keys
        assert a.keys["req"] != b.keys["req"]

    async def test_every_key_of_a_limiter_is_in_one_hash_slot(self, env: Env) -> None:
        """Every key a limiter uses carries the {service:fingerprint} tag: one cluster slot."""
        a = await env.limiter(RateLimits(), fingerprint=key_fingerprint("sk-x"))
        tag = "{svc:" + (key_fingerprint("sk-x") or "") + "}"
        assert all(tag in key for key in a.keys.values())
        assert 1 == len({redis.crc.key_slot(key.encode()) for key in a.keys.values()})
        assert "sk-x" not in " ".join(a.keys.values())

    def test_bad_failure_settings(self) -> None:
        """An unknown redis_failure or a redis_timeout of 0 is refused at construction."""
        client = aioredis.Redis()
        with pytest.raises(ConfigurationError, match="redis_failure"):
            RedisRateLimiter(client, RateLimits(), service="s", redis_failure="sideways")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="redis_timeout"):
            RedisRateLimiter(client, RateLimits(), service="s", redis_timeout=0)
