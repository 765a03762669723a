# SPDX-License-Identifier: MIT
"""End to end: the real openai SDK over HTTP to the fault server, through AsyncLLMClient."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import openai
import pytest

from llm_rate_limiter import (
    AsyncLLMClient,
    BreakerPolicy,
    CallInfo,
    CircuitOpenError,
    ClientClosedError,
    ConfigurationError,
    ProviderConfig,
    RateLimits,
    RetryErrorType,
    RetryPolicy,
    StreamInterruptedError,
)
from llm_rate_limiter.testing import FakeClock, FaultServer
from tests.client.helpers import MESSAGES, provider

pytestmark = pytest.mark.anyio

pytestmark = pytest.mark.anyio


class TestChat:
    async def test_success(self, server: FaultServer) -> None:
        """A call returns the SDK's ChatCompletion and reports who served it."""
        async with AsyncLLMClient([provider(server)]) as client:
            info = CallInfo()
            reply = await client.chat(MESSAGES, call_info=info)
        assert isinstance(reply, openai.types.chat.ChatCompletion)
        assert reply.choices[0].message.content
        assert ("primary", 1, []) == (info.provider, info.attempts, info.fallbacks)
        assert 1 == server.stats().requests

    async def test_rate_limit_storm_survived(self, server: FaultServer) -> None:
        """Limits set at twice the server's draw 429s, yet all 60 calls succeed in time."""
        server.set_faults(rps=30, request_burst=5)
        retry = RetryPolicy(max_retries=10, base_delay=0.05, max_delay=1.0, deadline=20.0)
        limits = RateLimits(requests_per_minute=3600)
        async with AsyncLLMClient([provider(server, retry=retry, limits=limits)]) as client:
            with anyio.fail_after(30):
                replies = await asyncio.gather(*(client.chat(MESSAGES) for _ in range(60)))
            stats = client.performance_report()
        assert 60 == len(replies)
        assert 60 == server.stats().succeeded
        assert server.stats().rate_limited > 0
        assert 60 == stats["performance_metrics"]["successful_requests"]

    @pytest.mark.parametrize(
        ("fault", "error", "kind"),
        [
            ({"insufficient_quota": True}, openai.RateLimitError, RetryErrorType.PERMANENT),
            ({"unauthorized": True}, openai.AuthenticationError, RetryErrorType.AUTHENTICATION),
        ],
    )
    async def test_quota_and_auth_sent_once(
        self,
        server: FaultServer,
        fault: dict[str, bool],
        error: type[Exception],
        kind: RetryErrorType,
    ) -> None:
        """insufficient_quota and 401 are sent exactly once, not retried, and trip no breaker."""
        server.set_faults(**fault)
        breaker = BreakerPolicy(fail_max=1)
        async with AsyncLLMClient([provider(server, breaker=breaker)]) as client:
            with pytest.raises(error) as caught:
                await client.chat(MESSAGES)
            assert "closed" == client.policy("primary").breaker.state  # type: ignore[union-attr]
        assert 1 == server.stats().requests
        assert "sk-test-key" not in str(caught.value)
        metrics = client.metrics.service_metrics("primary")
        assert (kind.value, {kind.value: 1}) == (
            metrics["most_common_error"],
            metrics["error_patterns"],
        )

    async def test_two_providers_independent(self, server: FaultServer) -> None:
        """Saturating one provider's limiter does not delay the other's calls."""
        # One slow call per 10 s: the first goes at once, the other four wait.
        slow = provider(server, "slow", key="k1", limits=RateLimits(requests_per_minute=6))
        fast = provider(server, "fast", key="k2", limits=RateLimits(requests_per_minute=6000))
        async with AsyncLLMClient([slow, fast]) as client:
            queued = [asyncio.create_task(client.chat(MESSAGES, provider="slow")) for _ in range(5)]
            with anyio.fail_after(5):
                await asyncio.wait(queued, return_when=asyncio.FIRST_COMPLETED)
            with anyio.fail_after(2):
                await client.chat(MESSAGES, provider="fast")
            served_slow = sum(t.done() for t in queued)
            waiting = client.policy("slow").limiter.statistics().queued  # type: ignore[union-attr]
            for task in queued:
                task.cancel()
            await asyncio.gather(*queued, return_exceptions=True)
        assert (1, 4) == (served_slow, waiting)


class TestFallback:
    async def test_outage_falls_back_and_recovers(
        self, server: FaultServer, backup: FaultServer
    ) -> None:
        """An outage opens the primary's breaker, the backup serves, the primary returns."""
        clock = FakeClock()
        breaker = BreakerPolicy(fail_max=2, reset_timeout=5.0)
        retry = RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.02)
        providers = [
            provider(server, "primary", breaker=breaker, retry=retry),
            provider(backup, "backup", retry=retry),
        ]
        server.outage(3600)
        async with AsyncLLMClient(providers, fallbacks={"primary": ["backup"]}, clock=clock) as c:
            infos = [CallInfo() for _ in range(5)]
            for info in infos:
                await c.chat(MESSAGES, call_info=info)
            assert ["backup"] * 5 == [i.provider for i in infos]
            assert "open" == c.policy("primary").breaker.state  # type: ignore[union-attr]
            sent_to_dead = server.stats().requests
            assert sent_to_dead <= 2 * 2  # fail_max calls, 2 attempts each at most
            server.reset()  # the outage ends
            clock.advance(5.0)
            info = CallInfo()
            await c.chat(MESSAGES, call_info=info)
            assert "primary" == info.provider
            assert "closed" == c.policy("primary").breaker.state  # type: ignore[union-attr]
            report = c.analyze_issues()
        types = {issue["type"] for issue in report["issues"]}
        assert "circuit_breaker_activations" in types

    async def test_malformed_request_does_not_fall_back(
        self, server: FaultServer, backup: FaultServer
    ) -> None:
        """A 400 fails at once: another provider would refuse it too."""
        providers = [provider(server, "primary"), provider(backup, "backup")]
        async with AsyncLLMClient(providers, fallbacks={"primary": ["backup"]}) as client:
            with pytest.raises(openai.BadRequestError):
                await client.chat(MESSAGES, extra_body={"messages": "not a list"})
        assert 0 == backup.stats().requests

    async def test_open_breaker_fails_fast_when_told(self, server: FaultServer) -> None:
        """With wait_for_breaker off, an open breaker fails the call at once."""
        retry = RetryPolicy(max_retries=3, wait_for_breaker=False)
        async with AsyncLLMClient([provider(server, breaker=BreakerPolicy(), retry=retry)]) as c:
            c.policy("primary").breaker.force_open()  # type: ignore[union-attr]
            with pytest.raises(CircuitOpenError) as caught:
                await c.chat(MESSAGES)
            c.reset_all_breakers()
            await c.chat(MESSAGES)
        assert "primary" == caught.value.service
        assert 1 == server.stats().requests

    async def test_last_resort_waits_for_the_breaker(self, server: FaultServer) -> None:
        """With no fallback left, a call waits out the open breaker, spending no attempt."""
        clock = FakeClock()
        breaker = BreakerPolicy(fail_max=1, reset_timeout=30.0)
        config = provider(server, breaker=breaker, retry=RetryPolicy(max_retries=3))
        async with AsyncLLMClient([config], clock=clock) as client:
            client.policy("primary").breaker.force_open()  # type: ignore[union-attr]
            info = CallInfo()
            await client.chat(MESSAGES, call_info=info)
            state = client.policy("primary").breaker.state  # type: ignore[union-attr]
        assert ("primary", 1, "closed") == (info.provider, info.attempts, state)
        assert 1 == len(clock.sleeps)
        assert 30.0 <= clock.sleeps[0] <= 30.0 + 0.1 * (30.0 + config.retry.base_delay)
        assert 1 == server.stats().requests

    async def test_fallback_does_not_wait_for_the_breaker(
        self, server: FaultServer, backup: FaultServer
    ) -> None:
        """A call with a fallback left moves on at once instead of waiting."""
        clock = FakeClock()
        providers = [provider(server, breaker=BreakerPolicy()), provider(backup, "backup")]
        async with AsyncLLMClient(providers, fallbacks={"primary": ["backup"]}, clock=clock) as c:
            c.policy("primary").breaker.force_open()  # type: ignore[union-attr]
            info = CallInfo()
            await c.chat(MESSAGES, call_info=info)
        assert ("backup", []) == (info.provider, clock.sleeps)
        assert RetryErrorType.SERVER_ERROR == info.fallbacks[0].reason
        assert 0 == server.stats().requests


class TestStream:
    async def test_stream(self, server: FaultServer) -> None:
        """Chunks arrive in order and join into the reply."""
        async with AsyncLLMClient([provider(server)]) as client:
            chunks = [c async for c in client.chat_stream(MESSAGES)]
            metrics = client.metrics.service_metrics("primary")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text
        assert metrics["average_time_to_first_token"] is not None

    async def test_mid_stream_failure(self, server: FaultServer) -> None:
        """A failure after the first chunk raises StreamInterruptedError, classified."""
        server.set_faults(stream_failure_rate=1.0)
        async with AsyncLLMClient([provider(server)]) as client:
            received: list[object] = []

            async def consume() -> None:
                async for chunk in client.chat_stream(MESSAGES):
                    received.append(chunk)  # noqa: PERF401 -- keep chunks seen before the failure

            with pytest.raises(StreamInterruptedError) as caught:
                await consume()
        assert len(received) >= 1
        assert caught.value.chunks == len(received)
        assert RetryErrorType.TRANSIENT_NETWORK == caught.value.kind
        assert 1 == server.stats().requests


class TestStreamLimits:
    async def test_stream_holds_its_concurrency_slot(self, server: FaultServer) -> None:
        """An open stream keeps its concurrency slot: the next stream waits until it closes."""
        limits = RateLimits(requests_per_minute=6000, max_concurrency=1)
        async with AsyncLLMClient([provider(server, limits=limits)]) as client:
            limiter = client.policy("primary").limiter
            assert limiter is not None
            first = client.chat_stream(MESSAGES)
            await anext(first)
            second = asyncio.create_task(anext(client.chat_stream(MESSAGES)))
            with anyio.fail_after(5):
                while limiter.statistics().queued < 1:
                    await asyncio.sleep(0)
            assert (1, 1, False) == (
                limiter.statistics().in_flight,
                server.stats().requests,
                second.done(),
            )
            async for _ in first:
                pass
            with anyio.fail_after(5):
                await second
            assert 2 == server.stats().requests

    async def test_stream_usage_reconciles_tokens(self, server: FaultServer) -> None:
        """The usage chunk of a stream settles the token estimate with what was used."""
        limits = RateLimits(requests_per_minute=6000, tokens_per_minute=600_000)
        async with AsyncLLMClient([provider(server, limits=limits)]) as client:
            chunks = [
                c
                async for c in client.chat_stream(MESSAGES, stream_options={"include_usage": True})
            ]
            limiter = client.policy("primary").limiter
            assert limiter is not None
            stats = limiter.statistics()
        used = [c.usage.total_tokens for c in chunks if c.usage is not None]
        assert 1 == len(used)
        assert used[0] == stats.tokens_used
        assert stats.tokens_estimated > stats.tokens_used  # the estimate errs high


class TestLifecycle:
    async def test_cancelled_calls_leave_state_consistent(self, server: FaultServer) -> None:
        """200 in-flight calls cancelled leave limiter, breaker and metrics consistent."""
        server.set_faults(hang_rate=1.0)
        limits = RateLimits(requests_per_minute=60_000, max_concurrency=50)
        config = provider(server, limits=limits, breaker=BreakerPolicy(fail_max=1))
        async with AsyncLLMClient([config]) as client:
            tasks = [asyncio.create_task(client.chat(MESSAGES)) for _ in range(200)]
            with anyio.fail_after(10):
                await server.wait_until(lambda s: s.hangs >= 50)
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
            server.set_faults(hang_rate=0.0)
            with anyio.fail_after(5):
                await client.chat(MESSAGES)
            metrics = client.metrics.service_metrics("primary")
            assert "closed" == client.policy("primary").breaker.state  # type: ignore[union-attr]
        assert 201 == metrics["total_requests"]
        assert (1, 0, 200) == (
            metrics["successful_requests"],
            metrics["failed_requests"],
            metrics["cancelled_requests"],
        )

    async def test_closed_client(self, server: FaultServer) -> None:
        """Closing stops the monitor; a closed client refuses calls with ClientClosedError."""
        client = AsyncLLMClient([provider(server)])
        monitor = client.start_monitoring(interval=60)
        assert monitor.running
        await client.aclose()
        assert not monitor.running
        with pytest.raises(ClientClosedError):
            await client.chat(MESSAGES)
        with pytest.raises(ClientClosedError):
            await anext(client.chat_stream(MESSAGES))
        with pytest.raises(ClientClosedError):
            client.start_monitoring()
        await client.aclose()  # idempotent

    def test_bad_configuration(self) -> None:
        """Unknown fallbacks, duplicate names and missing keys are refused by name."""
        a = ProviderConfig(name="a", api_key="k")
        with pytest.raises(ConfigurationError, match="fallbacks"):
            AsyncLLMClient([a], fallbacks={"a": ["b"]})
        with pytest.raises(ConfigurationError, match="providers"):
            AsyncLLMClient([a, a])
        with pytest.raises(ConfigurationError, match="api_key"):
            AsyncLLMClient([ProviderConfig(name="x")])
        with pytest.raises(ConfigurationError, match="providers"):
            AsyncLLMClient([])

    def test_api_key_redacted(self) -> None:
        """The API key never appears in reprs."""
        config = ProviderConfig(name="a", api_key="sk-very-secret")
        assert "sk-very-secret" not in repr(config)
        assert "sk-very-secret" not in repr(AsyncLLMClient([config]))

    def test_from_env(self) -> None:
        """from_env builds the profiles and fallbacks from the environment."""
        env = {
            "OPENAI_API_KEY": "sk-a",
            "MOONSHOT_API_KEY": "sk-b",
            "LLMRL_FALLBACKS": "openai=moonshot",
            "LLMRL_OPENAI_MAX_RETRIES": "5",
        }
        client = AsyncLLMClient.from_env(env)
        assert ["openai", "moonshot"] == client.providers
        assert 5 == client.policy("openai").retry_policy.max_retries
        assert 3 == client.policy("moonshot").retry_policy.max_retries
        with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
            AsyncLLMClient.from_env({})


@pytest.mark.redis
class TestSharedThroughRedis:
    async def test_two_clients_share_one_budget(self, server: FaultServer) -> None:
        """Two clients (two processes' worth) sharing Redis keep together to the server's limit."""
        import dataclasses
        import uuid

        import httpx2

        from llm_rate_limiter.distributed import redis_from_env
        from tests.distributed.test_limiter import Transit, bunching_allowance

        server.set_faults(rps=20, request_burst=26)  # 1.3 s: room for this loop's jitter
        prefix = f"llmrl-test-{uuid.uuid4().hex[:12]}"
        limits = RateLimits(requests_per_minute=20 * 60)
        retry = RetryPolicy(max_retries=5, base_delay=0.05, max_delay=0.5)
        connections = [await redis_from_env(), await redis_from_env()]
        transit = Transit()

        async def attempt_ended(response: httpx2.Response) -> None:
            transit.ended()

        https = [httpx2.AsyncClient(event_hooks={"response": [attempt_ended]}) for _ in range(2)]
        clients = [
            AsyncLLMClient(
                [
                    dataclasses.replace(
                        provider(server, limits=limits, retry=retry, breaker=BreakerPolicy()),
                        http_client=http,
                    )
                ],
                redis=conn,
                redis_key_prefix=prefix,
            )
            for conn, http in zip(connections, https, strict=True)
        ]

        async def chat(client: AsyncLLMClient) -> object:
            transit.start()
            return await client.chat(MESSAGES)

        try:
            for client in clients:
                transit.watch(client.policy("primary").limiter)  # type: ignore[arg-type]
            with anyio.fail_after(20):
                await asyncio.gather(*(chat(c) for c in clients for _ in range(20)))
            first = clients[0].policy("primary").breaker
            assert first is not None
            first.force_open()
            await first.flush()  # type: ignore[attr-defined]
            second = clients[1].policy("primary").breaker
            assert second is not None
            await second.sync()  # type: ignore[attr-defined]
            assert "open" == second.state
        finally:
            for client in clients:
                await client.aclose()
            keys = await connections[0].keys(f"{prefix}:*")
            if keys:
                await connections[0].delete(*keys)
            for conn in connections:
                await conn.aclose()
            for http in https:
                await http.aclose()
        stats = server.stats()
        assert 40 == stats.succeeded
        assert stats.requests == transit.attempts
        # At most 1, and what bunching by this loop's measured lateness can explain (the
        # server holds 26, 7 more than the shared 0.95 s of 20/s).
        allowance = bunching_allowance(20, 26 - 20 * 0.95, transit.longest)
        assert stats.rate_limited <= 1 + allowance, (stats, transit.longest)


@pytest.mark.redis
async def test_redis_settings_reach_the_shared_parts(server: FaultServer) -> None:
    """redis_failure, redis_timeout and redis_lease given to the client reach the shared parts."""
    import uuid

    from llm_rate_limiter.distributed import redis_from_env

    redis = await redis_from_env()
    config = provider(server, limits=RateLimits(max_concurrency=2), breaker=BreakerPolicy())
    client = AsyncLLMClient(
        [config],
        redis=redis,
        redis_key_prefix=f"llmrl-test-{uuid.uuid4().hex[:12]}",
        redis_failure="closed",
        redis_timeout=0.5,
        redis_lease=3.0,
    )
    async with client:
        policy = client.policy("primary")
        limiter, breaker = policy.limiter, policy.breaker
        await client.chat(MESSAGES)
    await redis.aclose()
    lim: Any = limiter
    brk: Any = breaker
    assert (3.0, 0.5, "closed") == (lim._lease, lim._state.timeout, lim.redis_failure)
    assert (0.5, True) == (brk._link.timeout, brk._link.fails_closed)
