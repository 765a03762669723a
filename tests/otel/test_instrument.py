# SPDX-License-Identifier: MIT
"""`instrument` end to end: the real openai SDK to the fault server, the real OTel SDK."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llm_rate_limiter import BreakerPolicy, CallInfo, CircuitOpenError, RateLimits, RetryPolicy
from llm_rate_limiter.otel import uninstrument
from llm_rate_limiter.testing import FaultConfig, FaultServer

from .helpers import MESSAGES, Telemetry, attrs, client, events, provider

pytestmark = pytest.mark.anyio

#: The GenAI conventions' advice, written out (not taken from the code under test).
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)
DURATION_BUCKETS += (5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS: tuple[int, ...] = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
TOKEN_BUCKETS += (4194304, 16777216, 67108864)


def _genai(server: FaultServer) -> dict[str, object]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "mock-gpt",
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }


class TestMetrics:
    async def test_names_units_buckets_and_attributes(
        self, server: FaultServer, telemetry: Telemetry
    ) -> None:
        """A served call records the GenAI duration and token usage with the conventions' names."""
        async with client(provider(server)) as llm:
            telemetry.instrument(llm)
            reply = await llm.chat(MESSAGES)
        assert reply.usage is not None
        metrics = telemetry.metrics()
        duration = metrics["gen_ai.client.operation.duration"]
        assert "s" == duration.unit
        point: Any
        [point] = duration.data.data_points
        assert {**_genai(server), "gen_ai.response.model": "mock-gpt"} == dict(point.attributes)
        assert DURATION_BUCKETS == tuple(point.explicit_bounds)
        assert 1 == point.count
        usage = metrics["gen_ai.client.token.usage"]
        assert "{token}" == usage.unit
        by_type: dict[str, Any] = {attrs(p)["gen_ai.token.type"]: p for p in usage.data.data_points}
        assert {"input", "output"} == set(by_type)
        assert reply.usage.prompt_tokens == by_type["input"].sum
        assert reply.usage.completion_tokens == by_type["output"].sum
        assert TOKEN_BUCKETS == tuple(by_type["input"].explicit_bounds)
        assert {
            **_genai(server),
            "gen_ai.response.model": "mock-gpt",
            "gen_ai.token.type": "input",
        } == dict(by_type["input"].attributes)

    async def test_span_carries_the_conventions_attributes(
        self, server: FaultServer, telemetry: Telemetry
    ) -> None:
        """One CLIENT span ``chat {model}`` per call, with usage, finish reasons and response id."""
        async with client(provider(server)) as llm:
            telemetry.instrument(llm)
            reply = await llm.chat(MESSAGES)
        [span] = telemetry.chat_spans()
        assert "chat mock-gpt" == span.name
        assert SpanKind.CLIENT == span.kind
        assert reply.usage is not None
        found = attrs(span)
        for key, value in _genai(server).items():
            assert value == found[key]
        assert reply.usage.prompt_tokens == found["gen_ai.usage.input_tokens"]
        assert reply.usage.completion_tokens == found["gen_ai.usage.output_tokens"]
        assert ("stop",) == found["gen_ai.response.finish_reasons"]
        assert reply.id == found["gen_ai.response.id"]
        assert StatusCode.UNSET == span.status.status_code

    async def test_collector_still_gets_every_event(
        self, server: FaultServer, telemetry: Telemetry
    ) -> None:
        """Instrumented, the client's MetricsCollector counts the same calls as before."""
        async with client(provider(server)) as llm:
            telemetry.instrument(llm)
            for _ in range(3):
                await llm.chat(MESSAGES)
            status = llm.service_status("openai")
        assert 3 == status["metrics"]["total_requests"]
        assert 3 == telemetry.points("gen_ai.client.operation.duration")[0].count


class TestTraces:
    async def test_retried_call_has_one_span_per_attempt(self, telemetry: Telemetry) -> None:
        """Two 503s then a reply: three attempt spans under the call's, failures classified."""
        async with (
            FaultServer(FaultConfig(seed=3, error_503_rate=0.5)) as server,
            client(provider(server)) as llm,
        ):
            telemetry.instrument(llm)
            info = CallInfo()
            await llm.chat(MESSAGES, call_info=info)
        assert 3 == info.attempts  # the seed's first draws: 503, 503, served
        [call] = telemetry.chat_spans()
        attempts = telemetry.attempts(call)
        assert [1, 2, 3] == [attrs(a)["llm_rate_limiter.attempt"] for a in attempts]
        for failed in attempts[:2]:
            assert StatusCode.ERROR == failed.status.status_code
            assert "InternalServerError" == attrs(failed)["error.type"]
            assert "server_error" == attrs(failed)["llm_rate_limiter.error.kind"]
            [exception] = events(failed, "exception")
            assert "openai.InternalServerError" == exception["exception.type"]
        assert StatusCode.UNSET == attempts[2].status.status_code
        retries = events(call, "llm_rate_limiter.retry")
        assert [1, 2] == [r["llm_rate_limiter.attempt"] for r in retries]
        assert {"server_error"} == {r["llm_rate_limiter.retry.kind"] for r in retries}
        assert all(r["llm_rate_limiter.retry.delay"] >= 0 for r in retries)
        [counted] = telemetry.points("llm_rate_limiter.retries")
        assert 2 == counted.value
        assert "server_error" == attrs(counted)["llm_rate_limiter.retry.kind"]

    async def test_limiter_wait_is_an_event_with_its_seconds(
        self, server: FaultServer, telemetry: Telemetry
    ) -> None:
        """A call that queued in the limiter shows the wait, in seconds, on its attempt span."""
        limits = RateLimits(requests_per_minute=600, burst=0.1, adaptive=False)  # one at a time
        async with client(provider(server, limits=limits)) as llm:
            telemetry.instrument(llm)
            await llm.chat(MESSAGES)
            await llm.chat(MESSAGES)
        first, second = telemetry.chat_spans()
        assert [] == events(telemetry.attempts(first)[0], "llm_rate_limiter.limiter.wait")
        [wait] = events(telemetry.attempts(second)[0], "llm_rate_limiter.limiter.wait")
        assert wait["llm_rate_limiter.limiter.wait"] > 0
        [point] = telemetry.points("llm_rate_limiter.limiter.wait")
        assert 2 == point.count
        assert wait["llm_rate_limiter.limiter.wait"] == pytest.approx(point.sum)

    async def test_fallback_is_an_event_and_the_span_names_who_served(
        self, server: FaultServer, backup: FaultServer, telemetry: Telemetry
    ) -> None:
        """A 401 moves the call on: the event says from, to and why; the span, who answered."""
        server.set_faults(unauthorized=True)
        configs = (provider(server, "openai"), provider(backup, "moonshot"))
        async with client(*configs, fallbacks={"openai": ["moonshot"]}) as llm:
            telemetry.instrument(llm)
            await llm.chat(MESSAGES)
        [call] = telemetry.chat_spans()
        [fallback] = events(call, "llm_rate_limiter.fallback")
        assert {
            "llm_rate_limiter.fallback.from": "openai",
            "llm_rate_limiter.fallback.to": "moonshot",
            "llm_rate_limiter.fallback.reason": "authentication",
        } == fallback
        assert "moonshot" == attrs(call)["gen_ai.provider.name"]
        assert backup.port == attrs(call)["server.port"]
        tried = telemetry.attempts(call)
        assert ["openai", "moonshot"] == [attrs(a)["llm_rate_limiter.provider"] for a in tried]
        assert "AuthenticationError" == attrs(tried[0])["error.type"]
        [counted] = telemetry.points("llm_rate_limiter.fallbacks")
        assert 1 == counted.value
        assert "moonshot" == attrs(counted)["llm_rate_limiter.fallback.to"]

    async def test_401_sets_error_type_on_span_and_metric(
        self, server: FaultServer, telemetry: Telemetry
    ) -> None:
        """A call refused with 401 ends its span in error and its duration with ``error.type``."""
        server.set_faults(unauthorized=True)
        async with client(provider(server)) as llm:
            telemetry.instrument(llm)
            with pytest.raises(openai.AuthenticationError):
                await llm.chat(MESSAGES)
        [call] = telemetry.chat_spans()
        assert StatusCode.ERROR == call.status.status_code
        assert "AuthenticationError" == attrs(call)["error.type"]
        assert "authentication" == attrs(call)["llm_rate_limiter.error.kind"]
        [point] = telemetry.points("gen_ai.client.operation.duration")
        assert {**_genai(server), "error.type": "AuthenticationError"} == dict(point.attributes)

    async def test_breaker_opening_and_refusal(
        self, server: FaultServer, telemetry: Telemetry
    ) -> None:
        """The breaker's opening is an event and a gauge; a refused call shows the refusal."""
        server.set_faults(error_503_rate=1.0)
        retry = RetryPolicy(max_retries=0, wait_for_breaker=False)
        breaker = BreakerPolicy(fail_max=1, reset_timeout=60)
        async with client(provider(server, retry=retry, breaker=breaker)) as llm:
            telemetry.instrument(llm)
            [state] = telemetry.points("llm_rate_limiter.breaker.state")
            assert 0 == state.value  # closed, set when instrumented
            with pytest.raises(openai.InternalServerError):
                await llm.chat(MESSAGES)
            with pytest.raises(CircuitOpenError):
                await llm.chat(MESSAGES)
        opened, refused = telemetry.chat_spans()
        [transition] = events(telemetry.attempts(opened)[0], "llm_rate_limiter.breaker.transition")
        assert {
            "llm_rate_limiter.breaker.from": "closed",
            "llm_rate_limiter.breaker.to": "open",
        } == (transition)
        [attempt] = telemetry.attempts(refused)
        assert 1 == len(events(attempt, "llm_rate_limiter.breaker.rejected"))
        assert "CircuitOpenError" == attrs(refused)["error.type"]
        [state] = telemetry.points("llm_rate_limiter.breaker.state")
        assert 2 == state.value  # open
        assert 1 == telemetry.points("llm_rate_limiter.breaker.rejections")[0].value
        assert 1 == telemetry.points("llm_rate_limiter.breaker.transitions")[0].value


class TestStreams:
    async def test_stream_span_ends_with_the_stream(
        self, server: FaultServer, telemetry: Telemetry
    ) -> None:
        """A stream's span is open while it is read, then has usage and time to first chunk."""
        async with client(provider(server)) as llm:
            telemetry.instrument(llm)
            stream = llm.chat_stream(MESSAGES, stream_options={"include_usage": True})
            chunks = [await anext(stream)]
            assert [] == telemetry.chat_spans()  # the first chunk is here, the span still open
            chunks += [c async for c in stream]
        [call] = telemetry.chat_spans()
        found = attrs(call)
        assert "chat mock-gpt" == call.name
        assert found["gen_ai.request.stream"] is True
        usage = chunks[-1].usage
        assert usage is not None
        assert usage.completion_tokens == found["gen_ai.usage.output_tokens"]
        assert ("stop",) == found["gen_ai.response.finish_reasons"]
        [first] = telemetry.points("gen_ai.client.operation.time_to_first_chunk")
        assert 1 == first.count
        assert found["gen_ai.response.time_to_first_chunk"] == pytest.approx(first.sum)
        [duration] = telemetry.points("gen_ai.client.operation.duration")
        assert duration.sum >= first.sum

    async def test_broken_stream_ends_span_in_error(
        self, server: FaultServer, telemetry: Telemetry
    ) -> None:
        """A stream cut after its first chunk ends its span with the error's type."""
        server.set_faults(stream_failure_rate=1.0)
        async with client(provider(server)) as llm:
            telemetry.instrument(llm)
            with pytest.raises(Exception, match="stream"):
                async for _ in llm.chat_stream(MESSAGES):
                    pass
        [call] = telemetry.chat_spans()
        assert StatusCode.ERROR == call.status.status_code
        [point] = telemetry.points("gen_ai.client.operation.duration")
        assert attrs(call)["error.type"] == attrs(point)["error.type"]

    async def test_stream_closed_early(self, server: FaultServer, telemetry: Telemetry) -> None:
        """A stream closed before its end ends its span, not in error."""
        async with client(provider(server)) as llm:
            telemetry.instrument(llm)
            stream = llm.chat_stream(MESSAGES)
            await anext(stream)
            await stream.aclose()
        [call] = telemetry.chat_spans()
        assert StatusCode.UNSET == call.status.status_code
        assert attrs(call)["llm_rate_limiter.closed_early"] is True


class TestSecrets:
    async def test_no_key_and_no_content_anywhere(
        self, server: FaultServer, backup: FaultServer, telemetry: Telemetry
    ) -> None:
        """Success, 401, fallback, stream: no key and no message in any span or metric."""
        key, content = "sk-SECRET-MARKER-1234567890", "CONTENT-MARKER-42"
        messages = [{"role": "user", "content": content}]
        configs = (provider(server, "openai", key=key), provider(backup, "moonshot", key=key))
        async with client(*configs, fallbacks={"openai": ["moonshot"]}) as llm:
            telemetry.instrument(llm)
            await llm.chat(messages)
            async for _ in llm.chat_stream(messages):
                pass
            server.set_faults(unauthorized=True)
            await llm.chat(messages, provider="openai")  # 401, then the backup
            backup.set_faults(unauthorized=True)
            with pytest.raises(openai.AuthenticationError):
                await llm.chat(messages)
        everything = _dump(telemetry)
        assert "Bearer" not in everything
        for needle in (key, key.removeprefix("sk-"), content):
            assert needle not in everything
        assert "AuthenticationError" in everything  # the dump does hold the failures

    async def test_content_only_when_asked(self, server: FaultServer, telemetry: Telemetry) -> None:
        """With capture_message_content the messages are on the span; the key still is not."""
        key, content = "sk-SECRET-MARKER-1234567890", "CONTENT-MARKER-42"
        async with client(provider(server, key=key)) as llm:
            telemetry.instrument(llm, capture_message_content=True)
            await llm.chat([{"role": "user", "content": content}])
        [call] = telemetry.chat_spans()
        sent = json.loads(attrs(call)["gen_ai.input.messages"])
        assert [{"role": "user", "content": content}] == sent
        received = json.loads(attrs(call)["gen_ai.output.messages"])
        assert "assistant" == received[0]["role"]
        assert key not in _dump(telemetry)


def _dump(telemetry: Telemetry) -> str:
    spans = "\n".join(s.to_json() for s in telemetry.spans())
    data = telemetry.reader.get_metrics_data()
    assert data is not None
    return spans + data.to_json()


class TestUninstrument:
    async def test_uninstrument_restores_the_collector(
        self, server: FaultServer, telemetry: Telemetry
    ) -> None:
        """After uninstrument no span is made and every part reports to the collector alone."""
        async with client(provider(server, limits=RateLimits(requests_per_minute=6000))) as llm:
            telemetry.instrument(llm)
            telemetry.instrument(llm)  # again: replaces, does not stack
            policy = llm.policy("openai")
            assert policy.hook.inner is llm.metrics  # type: ignore[attr-defined]
            await llm.chat(MESSAGES)
            uninstrument(llm)
            uninstrument(llm)  # idempotent
            await llm.chat(MESSAGES)
            assert policy.hook is llm.metrics
            assert policy.tracer is None
            assert 2 == llm.service_status("openai")["metrics"]["total_requests"]
        assert 1 == len(telemetry.chat_spans())
        assert 1 == telemetry.points("gen_ai.client.operation.duration")[0].count
        assert 1 == telemetry.points("llm_rate_limiter.limiter.wait")[0].count


@pytest.mark.redis
async def test_redis_shared_parts_feed_opentelemetry(
    server: FaultServer, telemetry: Telemetry
) -> None:
    """With limits and breaker shared through Redis, their events reach the OTel instruments."""
    import uuid

    from llm_rate_limiter.distributed import redis_from_env

    redis = await redis_from_env()
    limits = RateLimits(requests_per_minute=600, burst=0.1, adaptive=False)
    prefix = f"llmrl-test-{uuid.uuid4().hex[:12]}"
    try:
        async with client(
            provider(server, limits=limits), redis=redis, redis_key_prefix=prefix
        ) as llm:
            telemetry.instrument(llm)
            await llm.chat(MESSAGES)
            await llm.chat(MESSAGES)
    finally:
        keys = [k async for k in redis.scan_iter(f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    [wait] = telemetry.points("llm_rate_limiter.limiter.wait")
    assert 2 == wait.count
    second = telemetry.chat_spans()[1]
    [event] = events(telemetry.attempts(second)[0], "llm_rate_limiter.limiter.wait")
    assert event["llm_rate_limiter.limiter.wait"] == pytest.approx(wait.sum)
