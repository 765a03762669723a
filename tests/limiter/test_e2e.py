# SPDX-License-Identifier: MIT
"""
`ProviderLimiter` in front of the real openai SDK and the fault server.

A load well above the server's limits must end with every call successful and
at most 1% of the requests answered 429: the limiter keeps to the rate, obeys
the headers and cools down on the rare 429.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llm_rate_limiter._headers import parse_retry_after
from llm_rate_limiter.limiter import ProviderLimiter, RateLimits, estimate_request_tokens
from llm_rate_limiter.testing import FaultConfig, FaultServer

pytestmark = pytest.mark.anyio

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi there"}]


class Drive:
    """What `_drive` saw: the attempts of each call and how late requests may have arrived."""

    def __init__(self) -> None:
        self.attempts: list[int] = []
        #: The longest time from an admission to the end of its attempt: how late, at
        #: most, an admitted request reached the server on this loop.
        self.transit = 0.0


async def _drive(
    server: FaultServer, limiter: ProviderLimiter, calls: int, concurrency: int, **kwargs: Any
) -> Drive:
    """Make *calls* completions through *limiter*, *concurrency* at a time; retry 429s."""
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    drive = Drive()
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()

    async def one() -> None:
        tries = 0
        tokens = estimate_request_tokens(MESSAGES, max_tokens=kwargs.get("max_tokens"))
        async with gate:
            while True:
                tries += 1
                async with limiter.acquire(tokens) as permit:
                    admitted = loop.time()
                    try:
                        raw = await client.chat.completions.with_raw_response.create(
                            model="mock-gpt", messages=MESSAGES, **kwargs
                        )
                    except openai.RateLimitError as exc:
                        headers = exc.response.headers
                        limiter.on_rate_limited(parse_retry_after(headers), headers)
                        continue
                    finally:
                        drive.transit = max(drive.transit, loop.time() - admitted)
                    usage = raw.parse().usage
                    permit.settle(used_tokens=usage.total_tokens, headers=raw.headers)
                    drive.attempts.append(tries)
                    return

    try:
        await asyncio.gather(*(one() for _ in range(calls)))
    finally:
        await client.close()
    return drive


def bunching_allowance(rate: float, slack: float, transit: float, cost: float = 1.0) -> int:
    """
    The 429s that this loop's measured lateness can explain.

    Requests admitted at *rate* (per second, in units of *cost*) may reach the server up
    to *transit* seconds late, so bunched by up to ``rate * transit``; the server's bucket
    holds *slack* more than the limiter's and absorbs that much.
    """
    return max(0, math.ceil((rate * transit - slack) / cost))


class TestAgainstFaultServer:
    async def test_requests_limit(self):
        """150 calls at concurrency 30 against 40 requests/s: all succeed, at most 1% 429s."""
        # The server shares this event loop with the client: its bucket holds 1.25 s
        # so the loop's scheduling jitter does not read as a burst.
        config = FaultConfig(rps=40, request_burst=50, latency=0.005)
        limiter = ProviderLimiter(RateLimits(requests_per_minute=40 * 60))
        async with FaultServer(config) as server:
            drive = await _drive(server, limiter, calls=150, concurrency=30)
            stats = server.stats()
        assert 150 == len(drive.attempts) == stats.succeeded
        assert sum(drive.attempts) == stats.requests
        # 1%, and what bunching by this loop's measured lateness can explain (the server
        # holds 50, 12 more than the limiter's 0.95 s of 40/s).
        allowance = bunching_allowance(40, 50 - 40 * 0.95, drive.transit)
        assert stats.rate_limited <= 0.01 * stats.requests + allowance, (stats, drive.transit)
        assert stats.rate_limited == limiter.statistics().violations

    async def test_tokens_limit(self):
        """100 calls against 1200 tokens/s (about 40 calls/s): all succeed, at most 1% 429s."""
        config = FaultConfig(tps=1_200, token_burst=1_500, completion_tokens=16, latency=0.005)
        limiter = ProviderLimiter(RateLimits(tokens_per_minute=1_200 * 60))
        async with FaultServer(config) as server:
            drive = await _drive(server, limiter, calls=100, concurrency=30, max_tokens=16)
            stats = server.stats()
        assert 100 == len(drive.attempts) == stats.succeeded
        assert sum(drive.attempts) == stats.requests
        # 1%, and what bunching by this loop's measured lateness can explain (the server
        # holds 1500 tokens, 360 more than the limiter's 0.95 s of 1200/s).
        cost = estimate_request_tokens(MESSAGES, max_tokens=16)
        allowance = bunching_allowance(1_200, 1_500 - 1_200 * 0.95, drive.transit, cost)
        assert stats.rate_limited <= 0.01 * stats.requests + allowance, (stats, drive.transit)
        assert stats.tokens_accepted == limiter.statistics().tokens_used
