# SPDX-License-Identifier: MIT
"""The fault server speaks OpenAI: completions, streams, models, limits and their headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llm_rate_limiter import RetryErrorType, classify_error, parse_rate_limit_headers
from llm_rate_limiter.exceptions import ConfigurationError
from llm_rate_limiter.testing import FaultConfig, FaultServer, format_duration

pytestmark = pytest.mark.anyio

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "hi"}
]  # 3 + ceil(2/4) + 4 = 8 prompt tokens


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., openai.AsyncOpenAI]]:
    """Build AsyncOpenAI clients for a server; close them all at the end."""
    clients: list[openai.AsyncOpenAI] = []

    def make(server: FaultServer, api_key: str = "sk-test") -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key=api_key, max_retries=0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def create(client: openai.AsyncOpenAI, **kwargs: Any) -> Any:
    """One raw chat completion call (headers and parsed body)."""
    return await client.chat.completions.with_raw_response.create(
        model="mock-gpt", messages=MESSAGES, **kwargs
    )


class TestCompletions:
    async def test_completion_parses(self, make_client):
        """A plain request gets a ChatCompletion with usage counted from the prompt."""
        async with FaultServer() as server:
            reply = await make_client(server).chat.completions.create(model="m1", messages=MESSAGES)
        assert "chat.completion" == reply.object
        assert "m1" == reply.model
        assert "stop" == reply.choices[0].finish_reason
        assert "assistant" == reply.choices[0].message.role
        assert 16 == len(reply.choices[0].message.content.split())
        assert (8, 16, 24) == (
            reply.usage.prompt_tokens,
            reply.usage.completion_tokens,
            reply.usage.total_tokens,
        )

    async def test_max_tokens_bounds_completion(self, make_client):
        """max_tokens below the configured completion size shortens the reply."""
        async with FaultServer(FaultConfig(completion_tokens=50)) as server:
            reply = await make_client(server).chat.completions.create(
                model="m", messages=MESSAGES, max_tokens=5
            )
        assert 5 == reply.usage.completion_tokens
        assert 5 == len(reply.choices[0].message.content.split())

    async def test_stream_parses_with_usage(self, make_client):
        """A stream yields a role delta, content deltas, a finish chunk and a usage chunk."""
        async with FaultServer(FaultConfig(completion_tokens=4)) as server:
            stream = await make_client(server).chat.completions.create(
                model="m",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
        assert 7 == len(chunks)
        assert "assistant" == chunks[0].choices[0].delta.role
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert 4 == len(text.split())
        assert "stop" == chunks[5].choices[0].finish_reason
        assert [] == chunks[6].choices
        assert (8, 4) == (chunks[6].usage.prompt_tokens, chunks[6].usage.completion_tokens)

    async def test_stream_without_usage(self, make_client):
        """Without include_usage no chunk carries usage."""
        async with FaultServer(FaultConfig(completion_tokens=2)) as server:
            stream = await make_client(server).chat.completions.create(
                model="m", messages=MESSAGES, stream=True
            )
            chunks = [chunk async for chunk in stream]
        assert 4 == len(chunks)
        assert [None] * 4 == [c.usage for c in chunks]

    async def test_models(self, make_client):
        """GET /v1/models lists the configured model."""
        async with FaultServer(FaultConfig(model="kimi-mock")) as server:
            page = await make_client(server).models.list()
        assert ["kimi-mock"] == [m.id for m in page.data]

    async def test_base_url(self):
        """base_url is the loopback root URL plus /v1 on the real port."""
        async with FaultServer() as server:
            assert f"http://127.0.0.1:{server.port}/v1" == server.base_url
            assert server.port > 0


class TestRequestLimit:
    async def test_past_the_requests_bucket(self, make_client, clock):
        """rpm=120 admits a burst of 2, then 429s with type requests and exact retry headers."""
        async with FaultServer(FaultConfig(rpm=120), clock=clock) as server:
            client = make_client(server)
            first = await create(client)
            second = await create(client)
            with pytest.raises(openai.RateLimitError) as caught:
                await create(client)
            clock.advance(0.5)
            fourth = await create(client)
        assert ("120", "1", "500ms") == (
            first.headers["x-ratelimit-limit-requests"],
            first.headers["x-ratelimit-remaining-requests"],
            first.headers["x-ratelimit-reset-requests"],
        )
        assert ("0", "1s") == (
            second.headers["x-ratelimit-remaining-requests"],
            second.headers["x-ratelimit-reset-requests"],
        )
        error = caught.value
        expected_body = {
            "message": "Rate limit reached for requests. Please try again later.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        assert expected_body == error.body
        assert ("1", "500") == (
            error.response.headers["retry-after"],
            error.response.headers["retry-after-ms"],
        )
        assert "0" == error.response.headers["x-ratelimit-remaining-requests"]
        assert RetryErrorType.RATE_LIMIT == classify_error(error)
        assert "0" == fourth.headers["x-ratelimit-remaining-requests"]
        assert {"requests": 1} == server.stats().rate_limited_by_type

    async def test_keys_have_their_own_buckets(self, make_client, clock):
        """Another API key still has its whole burst when the first is exhausted."""
        async with FaultServer(FaultConfig(rps=1), clock=clock) as server:
            await create(make_client(server, "sk-a"))
            with pytest.raises(openai.RateLimitError):
                await create(make_client(server, "sk-a"))
            other = await create(make_client(server, "sk-b"))
        assert "0" == other.headers["x-ratelimit-remaining-requests"]

    async def test_headers_parse_with_the_library(self, make_client, clock):
        """The library's own header parser reads every limit header the server sends."""
        async with FaultServer(FaultConfig(rpm=600, tpm=60_000), clock=clock) as server:
            raw = await create(make_client(server), max_tokens=32)
        parsed = parse_rate_limit_headers(raw.headers)
        assert (600.0, 9.0, 0.1) == (
            parsed.limit_requests,
            parsed.remaining_requests,
            parsed.reset_requests,
        )
        assert (60_000.0, 960.0, 0.04) == (
            parsed.limit_tokens,
            parsed.remaining_tokens,
            parsed.reset_tokens,
        )


class TestTokenLimit:
    async def test_past_the_tokens_bucket(self, make_client, clock):
        """Prompt estimate plus max_tokens is charged; a refused request consumes nothing."""
        async with FaultServer(FaultConfig(tpm=6000), clock=clock) as server:
            client = make_client(server)
            first = await create(client, max_tokens=40)
            await create(client, max_tokens=40)
            with pytest.raises(openai.RateLimitError) as caught:
                await create(client, max_tokens=40)
            stats = server.stats()
        assert ("6000", "52", "480ms") == (
            first.headers["x-ratelimit-limit-tokens"],
            first.headers["x-ratelimit-remaining-tokens"],
            first.headers["x-ratelimit-reset-tokens"],
        )
        error = caught.value
        assert ("tokens", "rate_limit_exceeded") == (error.type, error.code)
        assert ("1", "440") == (
            error.response.headers["retry-after"],
            error.response.headers["retry-after-ms"],
        )
        assert "4" == error.response.headers["x-ratelimit-remaining-tokens"]
        assert (2, 96, {"tokens": 1}) == (
            stats.accepted,
            stats.tokens_accepted,
            stats.rate_limited_by_type,
        )

    async def test_no_limit_still_announces_limits(self, make_client):
        """Without configured limits all six x-ratelimit headers announce the unlimited defaults."""
        async with FaultServer() as server:
            raw = await create(make_client(server))
        expected = {
            "x-ratelimit-limit-requests": "1000000",
            "x-ratelimit-remaining-requests": "1000000",
            "x-ratelimit-reset-requests": "0s",
            "x-ratelimit-limit-tokens": "1000000000",
            "x-ratelimit-remaining-tokens": "1000000000",
            "x-ratelimit-reset-tokens": "0s",
        }
        assert expected == {h: v for h, v in raw.headers.items() if h.startswith("x-ratelimit")}


class TestConcurrencyLimit:
    async def test_past_the_concurrency_limit(self, make_client):
        """A second request while one is in flight gets a 429 of type requests."""
        import asyncio

        async with FaultServer(FaultConfig(max_concurrency=1, hang_rate=1.0)) as server:
            client = make_client(server)
            hanging = asyncio.ensure_future(create(client))
            await server.wait_until(lambda s: s.hangs == 1)
            with pytest.raises(openai.RateLimitError) as caught:
                await create(client)
            hanging.cancel()
            with pytest.raises(asyncio.CancelledError):
                await hanging
            stats = server.stats()
        assert ("requests", "rate_limit_exceeded") == (caught.value.type, caught.value.code)
        assert "Too many concurrent requests" in str(caught.value.body)
        assert ("1", "1000") == (
            caught.value.response.headers["retry-after"],
            caught.value.response.headers["retry-after-ms"],
        )
        assert {"concurrency": 1} == stats.rate_limited_by_type


class TestFormatDuration:
    @pytest.mark.parametrize(
        ("seconds", "text"),
        [
            (0.0, "0s"),
            (0.02, "20ms"),
            (0.0004, "1ms"),
            (1.0, "1s"),
            (1.5, "1.5s"),
            (360.0, "6m0s"),
            (3725.25, "1h2m5.25s"),
        ],
    )
    def test_openai_format(self, seconds, text):
        """Durations read like OpenAI's reset headers."""
        assert text == format_duration(seconds)


class TestConfig:
    @pytest.mark.parametrize(
        ("settings", "setting"),
        [
            ({"rpm": 0}, "rpm"),
            ({"rpm": 60, "rps": 1}, "rpm"),
            ({"tps": -1}, "tps"),
            ({"max_concurrency": 0}, "max_concurrency"),
            ({"completion_tokens": 1.5}, "completion_tokens"),
            ({"error_500_rate": 1.5}, "error_500_rate"),
            ({"error_500_rate": 0.6, "drop_rate": 0.6}, "error_rates"),
            ({"latency": float("nan")}, "latency"),
            ({"dialect": "klingon"}, "dialect"),
            ({"outages": ((1.0,),)}, "outages"),
            ({"outages": ((1.0, 0.0),)}, "outages"),
            ({"unauthorized": 1}, "unauthorized"),
            ({"model": ""}, "model"),
        ],
    )
    def test_bad_settings_name_the_field(self, settings, setting):
        """An impossible setting raises ConfigurationError naming it."""
        with pytest.raises(ConfigurationError) as caught:
            FaultConfig(**settings)
        assert setting == caught.value.setting

    @pytest.mark.parametrize("port", [-1, 70_000, 1.5])
    def test_bad_port(self, port):
        """A port outside 0..65535 is refused at construction."""
        with pytest.raises(ConfigurationError) as caught:
            FaultServer(port=port)
        assert "port" == caught.value.setting

    def test_rates(self):
        """Per-minute and per-second settings give the same refill rate."""
        assert (2.0, 100.0) == (
            FaultConfig(rpm=120, tps=100).request_rate,
            FaultConfig(rpm=120, tps=100).token_rate,
        )
        assert (None, None) == (FaultConfig().request_rate, FaultConfig().token_rate)
