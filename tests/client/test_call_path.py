# SPDX-License-Identifier: MIT
"""End to end, the path of one call: what each kind of ending does to breaker, limiter, retries."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import anyio
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from llm_rate_limiter import (
    AsyncCircuitBreaker,
    AsyncLLMClient,
    BreakerPolicy,
    CallInfo,
    ConfigurationError,
    ProviderLimiter,
    RateLimits,
    RateLimitTimeoutError,
    RequestTooLargeError,
    RetryBudget,
    RetryErrorType,
    RetryPolicy,
    StreamInterruptedError,
    classify_error,
    estimate_request_tokens,
)
from llm_rate_limiter.exceptions import AttemptTimeoutError
from llm_rate_limiter.testing import FakeClock, FaultServer
from tests.client.helpers import MESSAGES, provider

pytestmark = pytest.mark.anyio

#: A completion allowance no bucket of ``tokens_per_minute=600`` can ever admit.
HUGE = 10_000
#: What the SDK raises for a body that does not parse (both are SERVER_ERROR).
UNPARSABLE = (json.JSONDecodeError, openai.APIResponseValidationError)


def breaker_of(client: AsyncLLMClient) -> AsyncCircuitBreaker:
    breaker = client.policy("primary").breaker
    assert breaker is not None
    return breaker


def limiter_of(client: AsyncLLMClient) -> ProviderLimiter:
    limiter = client.policy("primary").limiter
    assert isinstance(limiter, ProviderLimiter)
    return limiter


async def drain_stream(client: AsyncLLMClient, **kwargs: Any) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in client.chat_stream(MESSAGES, **kwargs)]


class TestTooLargeInHalfOpen:
    @pytest.mark.parametrize("stream", [True, False], ids=["chat_stream", "chat"])
    async def test_refusal_frees_the_trial_slot(self, server: FaultServer, stream: bool) -> None:
        """A half-open call refused as too large frees its trial slot: the next call closes it."""
        clock = FakeClock()
        config = provider(
            server,
            limits=RateLimits(tokens_per_minute=600),
            retry=RetryPolicy(max_retries=0, wait_for_breaker=False),
            breaker=BreakerPolicy(fail_max=1, reset_timeout=30.0),
        )
        async with AsyncLLMClient([config], clock=clock) as client:
            breaker = breaker_of(client)
            breaker.force_open()
            clock.advance(30.0)
            assert "half_open" == breaker.state
            too_large = (
                drain_stream(client, max_tokens=HUGE)
                if stream
                else client.chat(MESSAGES, max_tokens=HUGE)
            )
            with pytest.raises(RequestTooLargeError):
                await too_large
            info = CallInfo()
            with anyio.fail_after(5):
                await client.chat(MESSAGES, call_info=info)
            state = breaker.state
        assert ("primary", "closed") == (info.provider, state)
        assert 1 == server.stats().requests


class TestStreamBrokenMidway:
    async def test_counted_as_a_breaker_failure(self, server: FaultServer) -> None:
        """A stream that breaks after its first chunk is a breaker failure, not a success."""
        server.set_faults(stream_failure_rate=1.0)
        config = provider(server, breaker=BreakerPolicy(fail_max=1))
        async with AsyncLLMClient([config]) as client:
            with pytest.raises(StreamInterruptedError):
                await drain_stream(client)
            stats = breaker_of(client).statistics()
        assert ("open", 1, 0, 0) == (stats.state, stats.failures, stats.successes, stats.cancelled)
        assert {RetryErrorType.TRANSIENT_NETWORK.value: 1} == dict(stats.error_patterns)
        assert 1 == server.stats().requests

    async def test_classified_by_the_kind_it_carries(self, server: FaultServer) -> None:
        """classify_error of a StreamInterruptedError is the kind it carries, not UNKNOWN."""
        server.set_faults(stream_failure_rate=1.0)
        async with AsyncLLMClient([provider(server)]) as client:
            with pytest.raises(StreamInterruptedError) as caught:
                await drain_stream(client)
        assert RetryErrorType.TRANSIENT_NETWORK == caught.value.kind
        assert RetryErrorType.TRANSIENT_NETWORK == classify_error(caught.value)


class TestMalformedReply:
    async def test_retried_and_classified(self, server: FaultServer) -> None:
        """A 200 whose body does not parse fails the attempt: retried, then a SERVER_ERROR."""
        server.set_faults(malformed_rate=1.0)
        retry = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02)
        async with AsyncLLMClient([provider(server, retry=retry)], clock=FakeClock()) as client:
            info = CallInfo()
            with pytest.raises(UNPARSABLE) as caught:
                await client.chat(MESSAGES, call_info=info)
            metrics = client.metrics.service_metrics("primary")
        assert RetryErrorType.SERVER_ERROR == classify_error(caught.value)
        assert 3 == info.attempts
        assert 3 == server.stats().requests
        assert (3, {RetryErrorType.SERVER_ERROR.value: 3}) == (
            metrics["failed_attempts"],
            metrics["error_patterns"],
        )

    async def test_counted_as_a_breaker_failure(self, server: FaultServer) -> None:
        """A 200 whose body does not parse is a breaker failure: fail_max=1 opens it."""
        server.set_faults(malformed_rate=1.0)
        config = provider(
            server, retry=RetryPolicy(max_retries=0), breaker=BreakerPolicy(fail_max=1)
        )
        async with AsyncLLMClient([config]) as client:
            with pytest.raises(UNPARSABLE):
                await client.chat(MESSAGES)
            stats = breaker_of(client).statistics()
        assert ("open", 1, 0) == (stats.state, stats.failures, stats.successes)
        assert {RetryErrorType.SERVER_ERROR.value: 1} == dict(stats.error_patterns)


class TestPerCallMaxRetries:
    async def test_stays_inside_the_retry_budget(self, server: FaultServer) -> None:
        """chat(max_retries=5) spends the provider's shared budget: one retry in all, 3 requests."""
        server.set_faults(error_503_rate=1.0)
        # ratio 0: calls earn no retries; the floor allows 0.1/s * 10 s = 1 retry per window.
        budget = RetryBudget(ratio=0.0, min_retries_per_second=0.1, window=10.0)
        retry = RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.02, budget=budget)
        clock = FakeClock()  # time moves only by the backoff sleeps: one window throughout
        async with AsyncLLMClient([provider(server, retry=retry)], clock=clock) as client:
            infos = [CallInfo(), CallInfo()]
            for info in infos:
                with pytest.raises(openai.InternalServerError):
                    await client.chat(MESSAGES, max_retries=5, call_info=info)
            retries = client.policy("primary").retrier.statistics()
        assert [2, 1] == [info.attempts for info in infos]
        assert 3 == server.stats().requests
        assert (1, 2) == (retries.retries, retries.budget_refusals)

    async def test_negative_is_refused_before_any_request(
        self, server: FaultServer, backup: FaultServer
    ) -> None:
        """chat(max_retries=-1) raises ConfigurationError naming max_retries; nothing is sent."""
        server.set_faults(error_503_rate=1.0)  # were it sent, a 503 would fall back
        providers = [provider(server), provider(backup, "backup")]
        async with AsyncLLMClient(providers, fallbacks={"primary": ["backup"]}) as client:
            with pytest.raises(ConfigurationError) as caught:
                await client.chat(MESSAGES, max_retries=-1)
        assert "max_retries" == caught.value.setting
        assert (0, 0) == (server.stats().requests, backup.stats().requests)


class TestTokenCharge:
    LIMITS = RateLimits(tokens_per_minute=1000)
    MAX_TOKENS = 500  # ~30 s of the bucket's refill

    def estimate(self) -> float:
        return float(
            estimate_request_tokens(MESSAGES, model="mock-gpt", max_tokens=self.MAX_TOKENS)
        )

    async def test_refused_attempt_gives_its_estimate_back(self, server: FaultServer) -> None:
        """After a 503 the estimate is given back: a call of the same size would not wait."""
        server.set_faults(error_503_rate=1.0)
        config = provider(server, limits=self.LIMITS, retry=RetryPolicy(max_retries=0))
        async with AsyncLLMClient([config]) as client:
            with pytest.raises(openai.InternalServerError):
                await client.chat(MESSAGES, max_tokens=self.MAX_TOKENS)
            wait = limiter_of(client).predicted_wait(self.estimate())
        assert 0.0 == wait
        assert 1 == server.stats().requests

    async def test_timed_out_attempt_keeps_its_charge(self, server: FaultServer) -> None:
        """An attempt cut by its timeout may have been served: its estimate stays charged."""
        server.set_faults(hang_rate=1.0)
        retry = RetryPolicy(max_retries=0, attempt_timeout=0.2)
        config = provider(server, limits=self.LIMITS, retry=retry)
        async with AsyncLLMClient([config]) as client:
            with pytest.raises(AttemptTimeoutError):
                await client.chat(MESSAGES, max_tokens=self.MAX_TOKENS)
            wait = limiter_of(client).predicted_wait(self.estimate())
        # The charge takes ~30 s to drain; only a real-time stall of 10 s would bring it below 20.
        assert wait > 20.0


class TestLimiterRefusalIsNotACancellation:
    async def test_request_too_large(self, server: FaultServer) -> None:
        """A RequestTooLargeError refusal counts as no breaker cancellation (nor anything else)."""
        limits = RateLimits(tokens_per_minute=600)
        async with AsyncLLMClient([provider(server, limits=limits, breaker=BreakerPolicy())]) as c:
            with pytest.raises(RequestTooLargeError):
                await c.chat(MESSAGES, max_tokens=HUGE)
            stats = breaker_of(c).statistics()
        assert (0, 0, 0, 0) == (stats.cancelled, stats.failures, stats.successes, stats.ignored)
        assert 0 == server.stats().requests

    async def test_rate_limit_timeout(self, server: FaultServer) -> None:
        """A RateLimitTimeoutError refusal (max_wait) counts as no breaker cancellation."""
        limits = RateLimits(requests_per_minute=1, max_wait=0.5)  # the 2nd call would wait ~60 s
        async with AsyncLLMClient([provider(server, limits=limits, breaker=BreakerPolicy())]) as c:
            await c.chat(MESSAGES)
            with pytest.raises(RateLimitTimeoutError):
                await c.chat(MESSAGES)
            stats = breaker_of(c).statistics()
        assert (0, 0, 1) == (stats.cancelled, stats.failures, stats.successes)
        assert 1 == server.stats().requests


class TestAbandonedStream:
    LIMITS = RateLimits(max_concurrency=1)

    async def test_dropped_generator_gives_its_slot_back(self, server: FaultServer) -> None:
        """A stream generator left after one chunk and dropped frees its concurrency slot."""
        async with AsyncLLMClient([provider(server, limits=self.LIMITS)]) as client:
            stream = client.chat_stream(MESSAGES)
            async for _ in stream:
                break
            assert 1 == limiter_of(client).statistics().in_flight
            del stream  # garbage: the loop's finalizer closes the generator
            with anyio.fail_after(5):
                await client.chat(MESSAGES)
            in_flight = limiter_of(client).statistics().in_flight
        assert 0 == in_flight
        assert 2 == server.stats().requests

    async def test_aclosing_gives_its_slot_back_at_once(self, server: FaultServer) -> None:
        """A stream closed with contextlib.aclosing frees its slot as the block exits."""
        async with AsyncLLMClient([provider(server, limits=self.LIMITS)]) as client:
            stream = client.chat_stream(MESSAGES)  # an async generator, typed AsyncIterator
            async with contextlib.aclosing(stream):
                async for _ in stream:
                    break
                held = limiter_of(client).statistics().in_flight
            released = limiter_of(client).statistics().in_flight
        assert (1, 0) == (held, released)


class TestAttemptTimeout:
    async def test_a_failed_attempt_of_kind_timeout(self, server: FaultServer) -> None:
        """An attempt cut by attempt_timeout raises AttemptTimeoutError: a counted TIMEOUT."""
        server.set_faults(hang_rate=1.0)
        retry = RetryPolicy(max_retries=0, attempt_timeout=0.2)
        config = provider(server, retry=retry, breaker=BreakerPolicy(fail_max=1))
        async with AsyncLLMClient([config]) as client:
            with anyio.fail_after(10), pytest.raises(AttemptTimeoutError) as caught:
                await client.chat(MESSAGES)
            stats = breaker_of(client).statistics()
            metrics = client.metrics.service_metrics("primary")
        assert isinstance(caught.value, TimeoutError)
        assert RetryErrorType.TIMEOUT == classify_error(caught.value)
        assert ("open", 1, 0) == (stats.state, stats.failures, stats.cancelled)
        assert {RetryErrorType.TIMEOUT.value: 1} == dict(stats.error_patterns)
        assert (1, 1, {RetryErrorType.TIMEOUT.value: 1}) == (
            metrics["total_attempts"],
            metrics["failed_attempts"],
            metrics["error_patterns"],
        )
        assert 1 == server.stats().requests


class TestMessagesMustBeAList:
    @pytest.mark.parametrize("messages", ["hello", b"hello", {"role": "user", "content": "hi"}])
    async def test_a_string_or_a_single_message_is_refused(
        self, server: FaultServer, messages: object
    ) -> None:
        """chat("hello") raises TypeError naming messages, and nothing is sent."""
        async with AsyncLLMClient([provider(server)]) as client:
            with pytest.raises(TypeError, match="messages must be a list of messages"):
                await client.chat(messages)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="messages"):
                async for _ in client.chat_stream(messages):  # type: ignore[arg-type]
                    pass
        assert 0 == server.stats().requests
