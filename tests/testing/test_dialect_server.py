# SPDX-License-Identifier: MIT
"""The fault server in each provider's dialect, read back by the library through the real SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llm_rate_limiter import (
    AsyncLLMClient,
    RateLimitHeaders,
    RateLimits,
    RetryErrorType,
    RetryPolicy,
    classify_error,
    parse_rate_limit_headers,
)
from llm_rate_limiter.cli import build_parser
from llm_rate_limiter.cli._serve import _config
from llm_rate_limiter.retry._backoff import server_retry_after
from llm_rate_limiter.testing import FakeClock, FaultConfig, FaultServer
from llm_rate_limiter.testing._server_config import DIALECTS
from tests.client.helpers import MESSAGES as CLIENT_MESSAGES
from tests.client.helpers import provider

pytestmark = pytest.mark.anyio

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "hi"}
]  # 3 + ceil(2/4) + 4 = 8 prompt tokens, + 16 completion: 24 tokens a call

# rpm=120 (2 a second, a burst of 2) and tpm=6000 (100 a second) after one call:
# 1 request left, full in 0.5 s; 76 tokens left, full in 0.24 s.
AFTER_ONE_CALL = {
    "openai": RateLimitHeaders(120.0, 1.0, 0.5, 6000.0, 76.0, 0.24, 60.0, 60.0, "openai"),
    "moonshot": RateLimitHeaders(120.0, 1.0, 0.5, request_window=60.0, dialect="plain"),
    "plain": RateLimitHeaders(120.0, 1.0, 0.5, request_window=60.0, dialect="plain"),
    "groq": RateLimitHeaders(172_800.0, 1.0, 0.5, 6000.0, 76.0, 0.24, 86_400.0, 60.0, "groq"),
    "together": RateLimitHeaders(2.0, 1.0, 0.5, 100.0, 76.0, None, 1.0, 1.0, "together"),
    "azure": RateLimitHeaders(
        remaining_requests=1.0,
        remaining_tokens=76.0,
        request_window=60.0,
        token_window=60.0,
        dialect="azure",
    ),
    "ietf": RateLimitHeaders(120.0, 1.0, 1.0, request_window=60.0, dialect="ietf"),
    "gemini": RateLimitHeaders(),
}
# The wait each dialect asks for when the request bucket is empty (0.5 s to the next one):
# to the millisecond, in whole seconds (retry-after only), or in Gemini's body.
WAIT = {
    "openai": 0.5,
    "moonshot": 0.5,
    "plain": 1.0,
    "groq": 1.0,
    "together": 1.0,
    "azure": 0.5,
    "ietf": 1.0,
    "gemini": 0.5,
}


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[[FaultServer], openai.AsyncOpenAI]]:
    """Build AsyncOpenAI clients for a server; close them all at the end."""
    clients: list[openai.AsyncOpenAI] = []

    def make(server: FaultServer) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def create(client: openai.AsyncOpenAI) -> Any:
    """One raw chat completion call (headers and parsed body)."""
    return await client.chat.completions.with_raw_response.create(
        model="mock-gpt", messages=MESSAGES
    )


def test_every_dialect_is_covered() -> None:
    """The tables below cover every dialect the server speaks."""
    assert sorted(DIALECTS) == sorted(AFTER_ONE_CALL) == sorted(WAIT)


class TestHeaders:
    @pytest.mark.parametrize("dialect", DIALECTS)
    async def test_each_dialect_is_read_back(self, dialect, make_client, clock):
        """What the server announces in each dialect is what the library reads, window included."""
        config = FaultConfig(dialect=dialect, rpm=120, tpm=6000)
        async with FaultServer(config, clock=clock) as server:
            raw = await create(make_client(server))
        assert AFTER_ONE_CALL[dialect] == parse_rate_limit_headers(raw.headers)

    async def test_ietf_per_second_policy(self, make_client, clock):
        """A per-second limit is announced as RateLimit-Policy: 20;w=1 and read as 1200 a minute."""
        async with FaultServer(FaultConfig(dialect="ietf", rps=20), clock=clock) as server:
            raw = await create(make_client(server))
        parsed = parse_rate_limit_headers(raw.headers)
        assert ("20;w=1", 20.0, 1.0, 1200.0) == (
            raw.headers["ratelimit-policy"],
            parsed.limit_requests,
            parsed.request_window,
            parsed.requests_per_minute,
        )

    async def test_groq_announces_requests_per_day(self, make_client, clock):
        """rpm=10 is Groq's 14400 requests a day, never read as 14400 a minute."""
        async with FaultServer(FaultConfig(dialect="groq", rpm=10), clock=clock) as server:
            raw = await create(make_client(server))
        parsed = parse_rate_limit_headers(raw.headers)
        assert ("14400", 86_400.0, 10.0) == (
            raw.headers["x-ratelimit-limit-requests"],
            parsed.request_window,
            parsed.requests_per_minute,
        )

    async def test_serve_mock_rpm_sends_token_headers_too(self, make_client, clock):
        """serve-mock --rpm 120 sends all six headers, the unlimited tokens at 1e9 a minute."""
        config = _config(build_parser().parse_args(["serve-mock", "--rpm", "120"]))
        async with FaultServer(config, clock=clock) as server:
            raw = await create(make_client(server))
        expected = {
            "x-ratelimit-limit-requests": "120",
            "x-ratelimit-remaining-requests": "1",
            "x-ratelimit-reset-requests": "500ms",
            "x-ratelimit-limit-tokens": "1000000000",
            "x-ratelimit-remaining-tokens": "1000000000",
            "x-ratelimit-reset-tokens": "0s",
        }
        assert expected == {h: v for h, v in raw.headers.items() if h.startswith("x-ratelimit")}

    @pytest.mark.parametrize("dialect", DIALECTS)
    def test_serve_mock_speaks_every_dialect(self, dialect: str) -> None:
        """Every dialect of the server is a --dialect choice of serve-mock."""
        args = build_parser().parse_args(["serve-mock", "--dialect", dialect])
        assert dialect == _config(args).dialect


class TestRateLimited:
    @pytest.mark.parametrize("dialect", DIALECTS)
    async def test_each_dialect_says_how_long_to_wait(self, dialect, make_client, clock):
        """Past the burst, every dialect's 429 tells the library how long to wait."""
        async with FaultServer(FaultConfig(dialect=dialect, rpm=120), clock=clock) as server:
            client = make_client(server)
            await create(client)
            await create(client)
            with pytest.raises(openai.RateLimitError) as caught:
                await create(client)
        assert (RetryErrorType.RATE_LIMIT, WAIT[dialect]) == (
            classify_error(caught.value),
            server_retry_after(caught.value),
        )

    async def test_azure_retry_headers(self, make_client, clock):
        """Azure's 429 asks for the wait in retry-after-ms and x-ms-retry-after-ms alike."""
        async with FaultServer(FaultConfig(dialect="azure", rps=1), clock=clock) as server:
            client = make_client(server)
            await create(client)
            with pytest.raises(openai.RateLimitError) as caught:
                await create(client)
        headers = caught.value.response.headers
        assert ("1", "1000", "1000") == (
            headers["retry-after"],
            headers["retry-after-ms"],
            headers["x-ms-retry-after-ms"],
        )

    async def test_gemini_says_it_in_the_body_only(self, make_client, clock):
        """Gemini's 429 has no rate-limit or retry header: a RESOURCE_EXHAUSTED list body."""
        async with FaultServer(FaultConfig(dialect="gemini", rps=1), clock=clock) as server:
            client = make_client(server)
            await create(client)
            with pytest.raises(openai.RateLimitError) as caught:
                await create(client)
        error = caught.value
        names = [h for h in error.response.headers if "limit" in h or h.startswith("retry")]
        assert isinstance(error.body, list)
        details = {d["@type"].rsplit(".", 1)[1]: d for d in error.body[0]["error"]["details"]}
        assert ([], "RESOURCE_EXHAUSTED", "1s") == (
            names,
            error.body[0]["error"]["status"],
            details["RetryInfo"]["retryDelay"],
        )

    async def test_the_client_waits_gemini_s_retry_delay(self):
        """AsyncLLMClient's retry waits exactly the retryDelay of Gemini's 429 body."""
        clock = FakeClock()
        async with FaultServer(FaultConfig(dialect="gemini", rps=1), clock=clock) as server:
            retry = RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.05, jitter=False)
            async with AsyncLLMClient([provider(server, retry=retry)], clock=clock) as client:
                with anyio.fail_after(10):
                    await client.chat(CLIENT_MESSAGES)
                    await client.chat(CLIENT_MESSAGES)
            stats = server.stats()
        assert ([1.0], 3, 1) == (clock.sleeps, stats.requests, stats.rate_limited)


PER_MINUTE = 120.0  # rps=2 in every dialect


class TestClientMetrics:
    @pytest.mark.parametrize(
        ("dialect", "expected"),
        [
            ("openai", PER_MINUTE),
            ("moonshot", PER_MINUTE),
            ("plain", PER_MINUTE),
            ("azure", None),
            ("gemini", None),
            ("groq", PER_MINUTE),
            ("together", PER_MINUTE),
            ("ietf", PER_MINUTE),
        ],
    )
    async def test_announced_limit_in_the_metrics(self, dialect, expected, clock):
        """Through AsyncLLMClient the announced limit reaches the metrics, per minute."""
        config = FaultConfig(dialect=dialect, rps=2)
        async with FaultServer(config, clock=clock) as server:
            limits = RateLimits(requests_per_minute=6_000)
            async with AsyncLLMClient([provider(server, limits=limits)]) as client:
                with anyio.fail_after(10):
                    await client.chat(CLIENT_MESSAGES)
                metrics = client.metrics.service_metrics("primary")
        assert expected == metrics["server_limit_requests"]

    @pytest.mark.parametrize(("configured", "expected"), [(None, PER_MINUTE), ("openai", None)])
    async def test_the_configured_dialect_is_the_one_read(self, configured, expected, clock):
        """ProviderConfig.rate_limit_dialect reaches the limiter: told openai, it ignores IETF."""
        import dataclasses

        async with FaultServer(FaultConfig(dialect="ietf", rps=2), clock=clock) as server:
            limits = RateLimits(requests_per_minute=6_000)
            config = dataclasses.replace(
                provider(server, limits=limits), rate_limit_dialect=configured
            )
            async with AsyncLLMClient([config]) as client:
                with anyio.fail_after(10):
                    await client.chat(CLIENT_MESSAGES)
                metrics = client.metrics.service_metrics("primary")
        assert expected == metrics["server_limit_requests"]
