# SPDX-License-Identifier: MIT
"""Each fault of the fault server, as the real openai SDK sees it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llm_rate_limiter import RetryErrorType, classify_error
from llm_rate_limiter.testing import FaultConfig, FaultServer

pytestmark = pytest.mark.anyio

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., openai.AsyncOpenAI]]:
    """Build AsyncOpenAI clients for a server; close them all at the end."""
    clients: list[openai.AsyncOpenAI] = []

    def make(server: FaultServer, timeout: float = 30.0) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(
            base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=timeout
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def call(client: openai.AsyncOpenAI, **kwargs: Any) -> Any:
    """One chat completion."""
    return await client.chat.completions.create(model="m", messages=MESSAGES, **kwargs)


async def drain(stream: Any, received: list[Any]) -> None:
    """Read *stream* to its end (or its error), keeping every chunk in *received*."""
    async for chunk in stream:
        received.append(chunk)  # noqa: PERF401 -- keep the chunks read before an error


class TestServerErrors:
    @pytest.mark.parametrize("status", [500, 502, 503])
    async def test_status(self, make_client, status):
        """error_<status>_rate=1 gives InternalServerError with that status and a JSON body."""
        settings: dict[str, Any] = {f"error_{status}_rate": 1.0}
        config = FaultConfig(**settings)
        async with FaultServer(config) as server:
            with pytest.raises(openai.InternalServerError) as caught:
                await call(make_client(server))
            stats = server.stats()
        assert status == caught.value.status_code
        assert "server_error" == caught.value.type
        assert RetryErrorType.SERVER_ERROR == classify_error(caught.value)
        assert (1, {str(status): 1}) == (stats.server_errors, stats.server_errors_by_status)


class TestConnectionFaults:
    async def test_drop(self, make_client):
        """drop_rate=1 closes the connection: the SDK raises APIConnectionError."""
        async with FaultServer(FaultConfig(drop_rate=1.0)) as server:
            with pytest.raises(openai.APIConnectionError) as caught:
                await call(make_client(server))
            stats = server.stats()
        assert not isinstance(caught.value, openai.APITimeoutError)
        assert RetryErrorType.TRANSIENT_NETWORK == classify_error(caught.value)
        assert (1, 0) == (stats.drops, stats.succeeded)

    async def test_hang_times_out(self, make_client):
        """hang_rate=1 never answers: a short client timeout raises APITimeoutError."""
        async with FaultServer(FaultConfig(hang_rate=1.0)) as server:
            with pytest.raises(openai.APITimeoutError) as caught:
                await call(make_client(server, timeout=0.2))
            hangs = server.stats().hangs
        assert RetryErrorType.TIMEOUT == classify_error(caught.value)
        assert 1 == hangs

    async def test_shutdown_releases_hangs(self, make_client):
        """Closing the server drops hanging requests at once instead of waiting for them."""
        server = FaultServer(FaultConfig(hang_rate=1.0, hang_seconds=3600.0))
        await server.start()
        client = make_client(server)
        pending = [asyncio.ensure_future(call(client)) for _ in range(3)]
        await server.wait_until(lambda s: s.hangs == 3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.close()
        elapsed = loop.time() - started
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert elapsed < 1.0
        assert [openai.APIConnectionError] * 3 == [type(r) for r in results]

    async def test_mid_stream_failure(self, make_client):
        """stream_failure_rate=1 sends some chunks, then the stream breaks (APIConnectionError)."""
        config = FaultConfig(stream_failure_rate=1.0, completion_tokens=10)
        async with FaultServer(config) as server:
            stream = await call(make_client(server), stream=True)
            received: list[Any] = []
            with pytest.raises(openai.APIConnectionError) as caught:
                await drain(stream, received)
            stats = server.stats()
        assert 6 == len(received)  # half of the 13 events (role, 10 words, finish, [DONE])
        assert RetryErrorType.TRANSIENT_NETWORK == classify_error(caught.value)
        assert (1, 0) == (stats.stream_failures, stats.succeeded)

    async def test_stream_failure_spares_plain_requests(self, make_client):
        """A mid-stream failure cannot happen to a non-streaming request."""
        async with FaultServer(FaultConfig(stream_failure_rate=1.0)) as server:
            reply = await call(make_client(server))
        assert "stop" == reply.choices[0].finish_reason


class TestMalformed:
    async def test_malformed_body(self, make_client):
        """A 200 with a broken JSON body surfaces as json.JSONDecodeError from the SDK."""
        async with FaultServer(FaultConfig(malformed_rate=1.0)) as server:
            with pytest.raises(json.JSONDecodeError) as caught:
                await call(make_client(server))
            malformed = server.stats().malformed
        assert RetryErrorType.SERVER_ERROR == classify_error(caught.value)
        assert 1 == malformed

    async def test_malformed_stream(self, make_client):
        """A stream with a broken event raises json.JSONDecodeError after the first chunk."""
        async with FaultServer(FaultConfig(malformed_rate=1.0)) as server:
            stream = await call(make_client(server), stream=True)
            received: list[Any] = []
            with pytest.raises(json.JSONDecodeError):
                await drain(stream, received)
        assert 1 == len(received)


class TestModes:
    async def test_insufficient_quota(self, make_client):
        """insufficient_quota answers 429 with OpenAI's body, classified PERMANENT."""
        async with FaultServer(FaultConfig(insufficient_quota=True)) as server:
            with pytest.raises(openai.RateLimitError) as caught:
                await call(make_client(server))
            stats = server.stats()
        assert ("insufficient_quota", "insufficient_quota") == (
            caught.value.code,
            caught.value.type,
        )
        assert RetryErrorType.PERMANENT == classify_error(caught.value)
        assert (1, {"insufficient_quota": 1}) == (stats.rate_limited, stats.rate_limited_by_type)

    async def test_unauthorized(self, make_client):
        """unauthorized answers 401 invalid_api_key: AuthenticationError, never the key echoed."""
        async with FaultServer(FaultConfig(unauthorized=True)) as server:
            with pytest.raises(openai.AuthenticationError) as caught:
                await call(make_client(server))
            auth_errors = server.stats().auth_errors
        assert "invalid_api_key" == caught.value.code
        assert "sk-test" not in str(caught.value.body)
        assert RetryErrorType.AUTHENTICATION == classify_error(caught.value)
        assert 1 == auth_errors


class TestMoonshotDialect:
    async def test_quota_body(self, make_client):
        """Moonshot's quota body is exceeded_current_quota_error, classified PERMANENT."""
        config = FaultConfig(dialect="moonshot", insufficient_quota=True)
        async with FaultServer(config) as server:
            with pytest.raises(openai.RateLimitError) as caught:
                await call(make_client(server))
        body = caught.value.body
        assert isinstance(body, dict)
        assert ["message", "type"] == sorted(body)
        assert "exceeded_current_quota_error" == body["type"]
        assert body["message"].startswith("You exceeded your current quota")
        assert RetryErrorType.PERMANENT == classify_error(caught.value)

    async def test_rate_limit_body(self, make_client, clock):
        """Moonshot's rate limit body is rate_limit_reached_error, classified RATE_LIMIT."""
        config = FaultConfig(dialect="moonshot", rps=1)
        async with FaultServer(config, clock=clock) as server:
            client = make_client(server)
            await call(client)
            with pytest.raises(openai.RateLimitError) as caught:
                await call(client)
        assert "rate_limit_reached_error" == caught.value.type
        assert RetryErrorType.RATE_LIMIT == classify_error(caught.value)

    async def test_overloaded_body(self, make_client):
        """A Moonshot 503 says engine_overloaded_error."""
        config = FaultConfig(dialect="moonshot", error_503_rate=1.0)
        async with FaultServer(config) as server:
            with pytest.raises(openai.InternalServerError) as caught:
                await call(make_client(server))
        assert "engine_overloaded_error" == caught.value.type
        assert RetryErrorType.SERVER_ERROR == classify_error(caught.value)


class TestOutages:
    async def test_outage_now(self, make_client, clock):
        """outage(5) answers 503 for five seconds, then serves again."""
        async with FaultServer(clock=clock) as server:
            client = make_client(server)
            server.outage(5)
            with pytest.raises(openai.InternalServerError) as caught:
                await call(client)
            clock.advance(4.9)
            with pytest.raises(openai.InternalServerError):
                await call(client)
            clock.advance(0.1)
            reply = await call(client)
            stats = server.stats()
        assert 503 == caught.value.status_code
        assert "stop" == reply.choices[0].finish_reason
        assert (2, 2, 0, 1) == (
            stats.outage_rejections,
            stats.server_errors,
            stats.accepted - 1,
            stats.succeeded,
        )

    async def test_scheduled_outage(self, make_client, clock):
        """A window (10, 5) fails requests from 10 s to 15 s after start only."""
        async with FaultServer(FaultConfig(outages=((10.0, 5.0),)), clock=clock) as server:
            client = make_client(server)
            outcomes = []
            for step in (0.0, 9.9, 0.1, 4.9, 0.1):
                clock.advance(step)
                try:
                    await call(client)
                    outcomes.append(200)
                except openai.InternalServerError as exc:
                    outcomes.append(exc.status_code)
        assert [200, 200, 503, 503, 200] == outcomes

    async def test_outage_consumes_no_quota(self, make_client, clock):
        """Requests refused by an outage leave the request bucket full."""
        async with FaultServer(FaultConfig(rps=1), clock=clock) as server:
            client = make_client(server)
            server.outage(1)
            for _ in range(3):
                with pytest.raises(openai.InternalServerError):
                    await call(client)
            clock.advance(1)
            reply = await call(client)
        assert "stop" == reply.choices[0].finish_reason


class TestSeededFaults:
    async def run_sequence(self, make_client: Any, seed: int) -> list[str]:
        """Outcomes of 40 sequential requests against a seeded, half-failing server."""
        config = FaultConfig(error_500_rate=0.25, error_503_rate=0.25, seed=seed)
        outcomes = []
        async with FaultServer(config) as server:
            client = make_client(server)
            for _ in range(40):
                try:
                    await call(client)
                    outcomes.append("ok")
                except openai.InternalServerError as exc:
                    outcomes.append(str(exc.status_code))
        return outcomes

    async def test_same_seed_same_faults(self, make_client):
        """Two servers with the same seed fail the same requests the same way."""
        first = await self.run_sequence(make_client, 7)
        second = await self.run_sequence(make_client, 7)
        other = await self.run_sequence(make_client, 8)
        assert first == second
        assert first != other
        assert {"ok", "500", "503"} == set(first)
