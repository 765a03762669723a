# SPDX-License-Identifier: MIT
"""
`ProviderLimiter` in front of the real openai SDK and the fault server.

A load well above the server's limits must end with every call successful and
at most 1% of the requests answered 429: the limiter keeps to the rate, obeys
the headers and cools down on the rare 429.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llm_rate_limiter._headers import parse_retry_after
from llm_rate_limiter.limiter import ProviderLimiter, RateLimits, estimate_request_tokens
from llm_rate_limiter.testing import FaultConfig, FaultServer

pytestmark = pytest.mark.anyio

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi there"}]


async def _drive(
    server: FaultServer, limiter: ProviderLimiter, calls: int, concurrency: int, **kwargs: Any
) -> list[int]:
    """Make *calls* completions through *limiter*, *concurrency* at a time; retry 429s."""
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    attempts: list[int] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        tries = 0
        tokens = estimate_request_tokens(MESSAGES, max_tokens=kwargs.get("max_tokens"))
        async with gate:
            while True:
                tries += 1
                async with limiter.acquire(tokens) as permit:
                    try:
                        raw = await client.chat.completions.with_raw_response.create(
                            model="mock-gpt", messages=MESSAGES, **kwargs
                        )
                    except openai.RateLimitError as exc:
                        headers = exc.response.headers
                        limiter.on_rate_limited(parse_retry_after(headers), headers)
                        continue
                    usage = raw.parse().usage
                    permit.settle(used_tokens=usage.total_tokens, headers=raw.headers)
                    attempts.append(tries)
                    return

    try:
        await asyncio.gather(*(one() for _ in range(calls)))
    finally:
        await client.close()
    return attempts


class TestAgainstFaultServer:
    async def test_requests_limit(self):
        """150 calls at concurrency 30 against 40 requests/s: all succeed, at most 1% 429s."""
        # The server shares this event loop with the client: its bucket holds 1.25 s
        # so the loop's scheduling jitter does not read as a burst.
        config = FaultConfig(rps=40, request_burst=50, latency=0.005)
        limiter = ProviderLimiter(RateLimits(requests_per_minute=40 * 60))
        async with FaultServer(config) as server:
            attempts = await _drive(server, limiter, calls=150, concurrency=30)
            stats = server.stats()
        assert 150 == len(attempts) == stats.succeeded
        assert stats.rate_limited <= 0.01 * stats.requests, stats
        assert stats.rate_limited == limiter.statistics().violations

    async def test_tokens_limit(self):
        """100 calls against 1200 tokens/s (about 40 calls/s): all succeed, at most 1% 429s."""
        config = FaultConfig(tps=1_200, token_burst=1_500, completion_tokens=16, latency=0.005)
        limiter = ProviderLimiter(RateLimits(tokens_per_minute=1_200 * 60))
        async with FaultServer(config) as server:
            attempts = await _drive(server, limiter, calls=100, concurrency=30, max_tokens=16)
            stats = server.stats()
        assert 100 == len(attempts) == stats.succeeded
        assert stats.rate_limited <= 0.01 * stats.requests, stats
        assert stats.tokens_accepted == limiter.statistics().tokens_used
