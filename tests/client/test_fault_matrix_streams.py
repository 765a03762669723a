# SPDX-License-Identifier: MIT
"""The fault matrix, continued: `chat_stream` faults, and waiters of an open breaker cancelled."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from llm_rate_limiter import AsyncLLMClient, BreakerPolicy, RetryErrorType
from tests.client.helpers import provider
from tests.client.test_fault_matrix import CALLS, LIMITS, Books, fault_server, retry_policy

pytestmark = pytest.mark.anyio


async def _cut_streams() -> tuple[Books, int, int]:
    """40 streams, half of them cut mid-way: the books, the server's requests and cuts."""
    async with fault_server(stream_failure_rate=0.5) as server:
        client = AsyncLLMClient([provider(server, retry=retry_policy(), limits=LIMITS)])
        books = Books(client, retry_policy())
        async with client:
            with anyio.fail_after(30):
                await asyncio.gather(*(books.stream() for _ in range(CALLS)))
        stats = server.stats()
    return books, stats.requests, stats.stream_failures


async def test_mid_stream_cut_is_not_retried() -> None:
    """A stream cut after its first chunk fails classified, in time, sent once, nothing leaked."""
    books, requests, cuts = await _cut_streams()
    books.check(outcomes_agree=False)
    assert cuts > 0
    assert (cuts, {RetryErrorType.TRANSIENT_NETWORK}) == (books.count("failure"), books.kinds())
    assert (CALLS, [1] * CALLS) == (requests, [c.attempts for c in books.calls])


async def test_mid_stream_cut_is_booked_as_a_failure() -> None:
    """The collector books a cut stream as a failed call of one attempt, as the caller saw it."""
    books, _, _ = await _cut_streams()
    books.check(outcomes_agree=True)


async def test_stream_faults_before_the_first_chunk_are_retried() -> None:
    """503s and drops before the first chunk are retried to success mostly, books balanced."""
    retry = retry_policy()
    async with fault_server(error_503_rate=0.3, drop_rate=0.2) as server:
        client = AsyncLLMClient([provider(server, retry=retry, limits=LIMITS)])
        books = Books(client, retry)
        async with client:
            with anyio.fail_after(30):
                await asyncio.gather(*(books.stream() for _ in range(CALLS)))
        metrics = books.check()
        stats = server.stats()
    assert (True, True) == (stats.server_errors > 0, stats.drops > 0)
    assert books.count("success") >= 0.9 * CALLS
    assert [] == books.early_give_ups()
    assert stats.requests == metrics["total_attempts"] > CALLS


async def test_cancelled_breaker_waiters_leave_no_timer() -> None:
    """Calls cancelled while they wait out an open breaker leave no task once the client closed."""
    retry = retry_policy(max_retries=0, deadline=60.0)
    breaker = BreakerPolicy(fail_max=1, reset_timeout=30.0)
    async with fault_server() as server:
        server.outage(3600)
        client = AsyncLLMClient([provider(server, retry=retry, limits=LIMITS, breaker=breaker)])
        books = Books(client, retry)
        async with client:
            await books.chat()  # a 503: the breaker opens
            waiting = [asyncio.create_task(books.chat()) for _ in range(20)]
            with anyio.fail_after(10):
                while client.policy("primary").breaker.waiting < 20:  # type: ignore[union-attr]
                    await asyncio.sleep(0)
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
        books.check()
    assert (1, 20) == (books.count("failure"), books.count("cancelled"))
