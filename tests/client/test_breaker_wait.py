# SPDX-License-Identifier: MIT
"""
End to end: calls around an open breaker, through AsyncLLMClient and the real SDK.

A call with no fallback left waits on the breaker's state (no retry spent),
the trial's end releases or re-arms the waiters, one deadline holds for the
whole call and chain, and a breaker opening sends the calls queued in the
limiter away at once.
"""

from __future__ import annotations

import asyncio
import time

import anyio
import openai
import pytest

from llm_rate_limiter import (
    AsyncCircuitBreaker,
    AsyncLLMClient,
    BreakerPolicy,
    CallInfo,
    CircuitOpenError,
    RateLimits,
    RetryErrorType,
    RetryPolicy,
    classify_error,
)
from llm_rate_limiter.breaker._wait import RAMP_STEP
from llm_rate_limiter.exceptions import AttemptTimeoutError
from llm_rate_limiter.testing import FakeClock, FaultServer
from tests.client.helpers import MESSAGES, provider

pytestmark = pytest.mark.anyio


def breaker_of(client: AsyncLLMClient, name: str = "primary") -> AsyncCircuitBreaker:
    breaker = client.policy(name).breaker
    assert breaker is not None
    return breaker


async def gather(calls: int, client: AsyncLLMClient) -> list[BaseException | object]:
    with anyio.fail_after(30):
        return await asyncio.gather(
            *(client.chat(MESSAGES) for _ in range(calls)), return_exceptions=True
        )


class TestWaitOnTheBreaker:
    async def test_waiting_spends_no_retry(self, server: FaultServer) -> None:
        """With max_retries=0 a call still waits out the open breaker and its trial succeeds."""
        clock = FakeClock()
        config = provider(
            server,
            retry=RetryPolicy(max_retries=0),
            breaker=BreakerPolicy(fail_max=1, reset_timeout=30.0),
        )
        async with AsyncLLMClient([config], clock=clock) as client:
            breaker_of(client).force_open()
            info = CallInfo()
            await client.chat(MESSAGES, call_info=info)
            state = breaker_of(client).state
            rejections = client.metrics.service_metrics("primary")["breaker_rejections"]
        assert (1, "closed", 1) == (info.attempts, state, server.stats().requests)
        assert [30.0] == clock.sleeps  # one timer to the trial instant, no backoff
        assert 1 == rejections  # counted once, not once per look at the breaker

    async def test_trial_success_releases_every_waiter_in_a_ramp(self, server: FaultServer) -> None:
        """Ten waiters: one trial, then the other nine go in batches of 1, 2, 4, 2 (no limiter)."""
        clock = FakeClock()
        config = provider(
            server,
            retry=RetryPolicy(max_retries=0),
            breaker=BreakerPolicy(fail_max=1, reset_timeout=30.0),
        )
        async with AsyncLLMClient([config], clock=clock) as client:
            breaker_of(client).force_open()
            results = await gather(10, client)
            state = breaker_of(client).state
        assert [] == [r for r in results if isinstance(r, BaseException)]
        assert (10, "closed") == (server.stats().requests, state)
        assert [30.0, RAMP_STEP, RAMP_STEP, RAMP_STEP] == clock.sleeps

    async def test_a_limiter_paces_the_release_instead(self, server: FaultServer) -> None:
        """With a rate limiter the released waiters queue there: no ramp of the breaker's own."""
        clock = FakeClock()
        config = provider(
            server,
            retry=RetryPolicy(max_retries=0),
            limits=RateLimits(requests_per_minute=60_000),
            breaker=BreakerPolicy(fail_max=1, reset_timeout=30.0),
        )
        async with AsyncLLMClient([config], clock=clock) as client:
            breaker_of(client).force_open()
            results = await gather(6, client)
        assert [] == [r for r in results if isinstance(r, BaseException)]
        assert [30.0] == clock.sleeps

    async def test_a_failed_trial_rearms_the_wait(self, server: FaultServer) -> None:
        """Trials that fail cost only their own call; every other waiter waits on and succeeds."""
        clock = FakeClock()
        server.set_faults(error_503_rate=1.0)
        config = provider(
            server,
            retry=RetryPolicy(max_retries=0),
            breaker=BreakerPolicy(fail_max=1, reset_timeout=30.0),
        )
        async with AsyncLLMClient([config], clock=clock) as client:
            breaker_of(client).force_open()
            calls = [asyncio.ensure_future(client.chat(MESSAGES)) for _ in range(5)]
            with anyio.fail_after(10):
                await server.wait_until(lambda s: s.requests >= 1)
            server.set_faults(error_503_rate=0.0)
            with anyio.fail_after(30):
                results = await asyncio.gather(*calls, return_exceptions=True)
            state = breaker_of(client).state
        failed = [r for r in results if isinstance(r, BaseException)]
        stats = server.stats()
        assert all(isinstance(r, openai.InternalServerError) for r in failed), failed
        assert 1 <= len(failed) < 5
        assert (5, "closed") == (stats.requests, state)  # one request per call, no more
        assert 30.0 * (1 + len(failed)) == pytest.approx(
            sum(s for s in clock.sleeps if s != RAMP_STEP)
        )

    async def test_a_trial_after_the_deadline_fails_at_once(self, server: FaultServer) -> None:
        """reset_timeout 30 s, deadline 5 s: CircuitOpenError at once, saying what to change."""
        clock = FakeClock()
        config = provider(
            server,
            retry=RetryPolicy(max_retries=3, deadline=5.0),
            breaker=BreakerPolicy(fail_max=1, reset_timeout=30.0),
        )
        async with AsyncLLMClient([config], clock=clock) as client:
            breaker_of(client).force_open()
            with pytest.raises(CircuitOpenError) as caught:
                await client.chat(MESSAGES)
        notes = "\n".join(caught.value.__notes__)
        assert "after this call's deadline" in notes
        assert "reset_timeout" in notes
        assert (0, []) == (server.stats().requests, clock.sleeps)

    async def test_a_wait_for_a_busy_trial_ends_at_the_deadline(self, server: FaultServer) -> None:
        """A trial that never ends holds the only slot: the waiter gives up by its deadline."""
        clock = FakeClock()
        config = provider(
            server,
            retry=RetryPolicy(max_retries=0, deadline=0.5),
            breaker=BreakerPolicy(fail_max=1, reset_timeout=30.0),
        )
        async with AsyncLLMClient([config], clock=clock) as client:
            breaker = breaker_of(client)
            breaker.force_open()
            clock.advance(30.0)  # half-open: the next call takes the only trial slot
            hung = asyncio.Event()

            async def never() -> None:
                hung.set()
                await asyncio.Event().wait()

            policy = client.policy("primary")
            trial = asyncio.ensure_future(policy.run(never, retry=RetryPolicy(max_retries=0)))
            with anyio.fail_after(10):
                await hung.wait()
            started = time.monotonic()
            with pytest.raises(CircuitOpenError) as caught, anyio.fail_after(10):
                await client.chat(MESSAGES)
            waited = time.monotonic() - started
            trial.cancel()
            with pytest.raises(asyncio.CancelledError):
                await trial
            await client.chat(MESSAGES)  # the cancelled trial freed its slot
            state = breaker.state
        assert any("deadline passed while waiting" in n for n in caught.value.__notes__)
        assert 0.4 < waited < 5.0
        assert (1, "closed") == (server.stats().requests, state)

    async def test_with_a_fallback_the_call_moves_on_at_once(
        self, server: FaultServer, backup: FaultServer
    ) -> None:
        """An open primary with a backup left: served by the backup, nothing waited."""
        clock = FakeClock()
        primary = provider(server, breaker=BreakerPolicy(fail_max=1, reset_timeout=30.0))
        async with AsyncLLMClient(
            [primary, provider(backup, "backup")], fallbacks={"primary": ["backup"]}, clock=clock
        ) as client:
            breaker_of(client).force_open()
            info = CallInfo()
            await client.chat(MESSAGES, call_info=info)
        assert ("backup", [], 0) == (info.provider, clock.sleeps, server.stats().requests)


class TestOpeningWakesTheLimiterQueue:
    async def test_queued_calls_fall_back_at_once(
        self, server: FaultServer, backup: FaultServer
    ) -> None:
        """Eight calls queued at 1 request/s: the opening sends seven to the backup, unsent."""
        server.set_faults(error_503_rate=1.0)
        primary = provider(
            server,
            retry=RetryPolicy(max_retries=0),
            limits=RateLimits(requests_per_minute=60),
            breaker=BreakerPolicy(fail_max=1, reset_timeout=30.0),
        )
        async with AsyncLLMClient(
            [primary, provider(backup, "backup")], fallbacks={"primary": ["backup"]}
        ) as client:
            infos = [CallInfo() for _ in range(8)]
            started = time.monotonic()
            with anyio.fail_after(30):
                await asyncio.gather(*(client.chat(MESSAGES, call_info=i) for i in infos))
            elapsed = time.monotonic() - started
            limiter = client.policy("primary").limiter
            assert limiter is not None
            admitted = limiter.statistics().admitted
        assert {"backup"} == {i.provider for i in infos}
        assert (1, 1, 8) == (admitted, server.stats().requests, backup.stats().requests)
        assert elapsed < 3.0  # before: one fallback per second, 7 s in all


class TestOneDeadline:
    async def test_a_hang_cut_by_the_deadline_is_a_failed_attempt(
        self, server: FaultServer
    ) -> None:
        """Only a deadline set: the hang is an AttemptTimeoutError the breaker and metrics count."""
        server.set_faults(hang_rate=1.0)
        config = provider(
            server,
            retry=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05, deadline=0.5),
            breaker=BreakerPolicy(fail_max=1, reset_timeout=30.0),
        )
        async with AsyncLLMClient([config]) as client:
            with pytest.raises(AttemptTimeoutError) as caught:
                await client.chat(MESSAGES)
            state = breaker_of(client).state
            metrics = client.metrics.service_metrics("primary")
        assert RetryErrorType.TIMEOUT is classify_error(caught.value)
        assert "open" == state
        assert (1, {"timeout": 1}) == (metrics["failed_attempts"], metrics["error_patterns"])
        assert 0 == metrics["cancelled_requests"]

    async def test_the_deadline_holds_across_the_chain(
        self, server: FaultServer, backup: FaultServer
    ) -> None:
        """Primary cut by attempt_timeout, backup by what is left: 1 s for the call, not 2."""
        server.set_faults(hang_rate=1.0)
        backup.set_faults(hang_rate=1.0)
        retry = RetryPolicy(max_retries=0, deadline=1.0, attempt_timeout=0.3)
        own = RetryPolicy(max_retries=0, deadline=1.0)  # its own 1 s would end at 1.3 s
        async with AsyncLLMClient(
            [provider(server, retry=retry), provider(backup, "backup", retry=own)],
            fallbacks={"primary": ["backup"]},
        ) as client:
            info = CallInfo()
            started = time.monotonic()
            with pytest.raises(AttemptTimeoutError) as caught:
                await client.chat(MESSAGES, call_info=info)
            elapsed = time.monotonic() - started
        assert ["primary", "backup"] == info.providers_tried
        assert caught.value.timeout == pytest.approx(0.7, abs=0.2)  # what was left of 1 s
        assert elapsed < 1.8  # before: a fresh 1 s deadline per provider, 2.0 s

    async def test_no_fallback_once_the_deadline_passed(
        self, server: FaultServer, backup: FaultServer
    ) -> None:
        """The primary used the whole deadline: the backup is not tried, the note says why."""
        server.set_faults(hang_rate=1.0)
        retry = RetryPolicy(max_retries=0, deadline=0.5)
        async with AsyncLLMClient(
            [provider(server, retry=retry), provider(backup, "backup")],
            fallbacks={"primary": ["backup"]},
        ) as client:
            info = CallInfo()
            with pytest.raises(AttemptTimeoutError) as caught:
                await client.chat(MESSAGES, call_info=info)
        assert (["primary"], 0) == (info.providers_tried, backup.stats().requests)
        assert any("deadline passed" in note for note in caught.value.__notes__)


class TestRecoveryUnderLoad:
    async def test_no_call_fails_after_the_provider_recovered(self, server: FaultServer) -> None:
        """30 callers through a 1 s outage with reset_timeout 0.2 s: every call succeeds."""
        config = provider(
            server,
            retry=RetryPolicy(max_retries=8, base_delay=0.05, max_delay=0.5, deadline=20.0),
            breaker=BreakerPolicy(fail_max=5, reset_timeout=0.2),
        )
        server.set_faults(latency=0.05)
        async with AsyncLLMClient([config]) as client:
            server.outage(1.0)
            results = await gather(30, client)
            stats = breaker_of(client).statistics()
        assert [] == [r for r in results if isinstance(r, BaseException)]
        assert "closed" == stats.state
