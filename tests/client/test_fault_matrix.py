# SPDX-License-Identifier: MIT
"""
The fault matrix: each fault of the server, through AsyncLLMClient and the real SDK.

`Books.check`: (a) calls end by their deadline + `MARGIN`, classified; (b) at most
``max_retries + 1`` attempts; (c) the collector balances and agrees with our tally;
(d) no client task pending, limiter empty, and no task at all once the server closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import pytest

from llm_rate_limiter import (
    AsyncLLMClient,
    BreakerPolicy,
    CallInfo,
    RateLimits,
    RetryErrorType,
    RetryPolicy,
    classify_error,
)
from llm_rate_limiter.testing import FaultConfig, FaultServer, FaultServerStatistics
from tests.client.helpers import MESSAGES, provider

pytestmark = pytest.mark.anyio

SEED = 11
CALLS = 40
#: Generous: a call that succeeds ends long before it; the hang test sets a tight one.
DEADLINE = 6.0
#: How late a call may end after its deadline: loop scheduling on a loaded 2-core CI machine.
MARGIN = 0.5
#: A retryable failure with attempts left must come at least this close to its deadline.
GIVE_UP_SLACK = 1.0
#: Far above what the server allows in the 429 storm (100 rps against its 20).
LIMITS = RateLimits(requests_per_minute=6000, max_concurrency=32)
#: Where client code lives; the fault server's code lives in uvicorn, starlette and testing/.
_CLIENT_CODE = ("/llm_rate_limiter/", "/openai/", "/httpx2/", "/httpcore")

Outcome = Literal["success", "failure", "cancelled"]


@dataclass(frozen=True, slots=True)
class Call:
    outcome: Outcome
    elapsed: float
    attempts: int
    kind: RetryErrorType | None


def _frames(task: asyncio.Task[Any]) -> list[str]:
    """The source files of the coroutines *task* is suspended in, outermost first."""
    files: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None:
        code = getattr(coro, "cr_code", None) or getattr(coro, "ag_code", None)
        files.append(repr(coro) if code is None else code.co_filename)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return files


def _runs_client_code(task: asyncio.Task[Any]) -> bool:
    files = [f for f in _frames(task) if "/llm_rate_limiter/testing/" not in f]
    return any(part in f for f in files for part in _CLIENT_CODE)


def pending_since(baseline: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """
    Tasks started since *baseline*, not done, not ours, nor asyncio's one-step aclose()
    of an async generator the GC found (the SDK leaves its SSE generators to it).
    """
    me = asyncio.current_task()
    return [
        t
        for t in asyncio.all_tasks() - baseline
        if t is not me and not t.done() and type(t.get_coro()).__name__ != "async_generator_athrow"
    ]


@contextlib.asynccontextmanager
async def fault_server(**faults: Any) -> AsyncIterator[FaultServer]:
    """A fresh fault server; once it has closed, no task started since it opened remains."""
    before = asyncio.all_tasks()
    async with FaultServer(FaultConfig(seed=SEED, **faults)) as server:
        yield server
    assert [] == [_frames(t) for t in pending_since(before)]


class Books:
    """One run's own tally of its calls, checked against the policy and the collector."""

    def __init__(self, client: AsyncLLMClient, retry: RetryPolicy) -> None:
        assert retry.deadline is not None
        self.client = client
        self.retry = retry
        self.deadline = retry.deadline
        self.calls: list[Call] = []
        self.baseline = asyncio.all_tasks()  # after the server started: its tasks are allowed

    async def chat(self) -> None:
        """One `chat` call, recorded."""
        await self._record(lambda info: self.client.chat(MESSAGES, call_info=info))

    async def stream(self) -> None:
        """One `chat_stream` call read to its end, recorded."""

        async def read(info: CallInfo) -> None:
            async for _ in self.client.chat_stream(MESSAGES, call_info=info):
                pass

        await self._record(read)

    async def _record(self, run: Callable[[CallInfo], Any]) -> None:
        info = CallInfo()
        started = time.monotonic()
        try:
            await run(info)
        except Exception as exc:
            self._add("failure", started, info, classify_error(exc))
        except asyncio.CancelledError:
            self._add("cancelled", started, info, None)
            raise
        else:
            self._add("success", started, info, None)

    def _add(self, outcome: Outcome, started: float, info: CallInfo, kind: Any) -> None:
        self.calls.append(Call(outcome, time.monotonic() - started, info.attempts, kind))

    def count(self, outcome: Outcome) -> int:
        return sum(c.outcome == outcome for c in self.calls)

    def kinds(self) -> set[RetryErrorType | None]:
        return {c.kind for c in self.calls if c.outcome == "failure"}

    def early_give_ups(self) -> list[Call]:
        """Retryable failures that ended with attempts and time to spare."""
        return [
            c
            for c in self.calls
            if c.outcome == "failure"
            and c.kind in self.retry.retry_on
            and c.attempts <= self.retry.max_retries
            and c.elapsed < self.deadline - GIVE_UP_SLACK
        ]

    def check(self, *, outcomes_agree: bool = True) -> dict[str, Any]:
        """Checks (a)-(d), once the client is closed; returns the collector's metrics."""
        assert self.client.closed
        assert [] == [c for c in self.calls if c.elapsed > self.deadline + MARGIN]
        assert [] == [c for c in self.calls if c.kind is RetryErrorType.UNKNOWN]
        assert [] == [c for c in self.calls if c.attempts > self.retry.max_retries + 1]
        m = self.client.metrics.service_metrics("primary")
        finished = m["successful_requests"] + m["failed_requests"] + m["cancelled_requests"]
        assert (m["total_requests"], 0) == (finished, m["in_flight"])
        assert len(self.calls) == m["total_requests"]
        if outcomes_agree:
            mine = (self.count("success"), self.count("failure"), self.count("cancelled"))
            theirs = (m["successful_requests"], m["failed_requests"], m["cancelled_requests"])
            assert mine == theirs
            # An attempt that ends before sending (deadline passed in a queue) reports none.
            assert sum(c.attempts for c in self.calls) >= m["total_attempts"]
        limiter = self.client.policy("primary").limiter
        if limiter is not None:
            stats = limiter.statistics()
            assert (0, 0) == (stats.in_flight, stats.queued)
        leaked = [t for t in pending_since(self.baseline) if _runs_client_code(t)]
        assert [] == [_frames(t) for t in leaked]
        return m


@dataclass(frozen=True)
class Case:
    faults: dict[str, Any]
    retry: RetryPolicy
    min_success: float
    counter: str  # the server's count of the fault injected


def retry_policy(**changes: Any) -> RetryPolicy:
    settings = {"max_retries": 4, "base_delay": 0.01, "max_delay": 0.05, "deadline": DEADLINE}
    return RetryPolicy(**(settings | changes))


def case(name: str, faults: dict[str, Any], least: float, counter: str, **retry: Any) -> Any:
    marks = retry.pop("marks", ())
    return pytest.param(Case(faults, retry_policy(**retry), least, counter), id=name, marks=marks)


_STORM = {"max_retries": 10, "base_delay": 0.05, "max_delay": 0.5, "deadline": 8.0}
RETRYABLE = [
    case("429-storm", {"rps": 20, "request_burst": 5}, 0.8, "rate_limited", **_STORM),
    case("5xx-storm", {"error_503_rate": 0.5}, 0.85, "server_errors"),
    case("hangs", {"hang_rate": 0.3}, 0.9, "hangs", attempt_timeout=0.2),
    case("drops", {"drop_rate": 0.3}, 0.9, "drops"),
    case("malformed", {"malformed_rate": 0.3}, 0.9, "malformed"),
]


@pytest.mark.parametrize("case", RETRYABLE)
async def test_retryable_fault_is_survived(case: Case) -> None:
    """Under a retryable fault calls are retried to success mostly, in time, books balanced."""
    async with fault_server(**case.faults) as server:
        client = AsyncLLMClient([provider(server, retry=case.retry, limits=LIMITS)])
        books = Books(client, case.retry)
        async with client:
            with anyio.fail_after(30):
                await asyncio.gather(*(books.chat() for _ in range(CALLS)))
        metrics = books.check()
        stats = server.stats()
    assert getattr(stats, case.counter) > 0
    assert books.count("success") >= case.min_success * CALLS
    assert [] == books.early_give_ups()
    assert max(c.attempts for c in books.calls) > 1
    # Every attempt reached the server, but an attempt its timeout ended before the server
    # read it (a loaded machine, 0.2 s): each attempt the server never saw is a timeout.
    unseen = metrics["total_attempts"] - stats.requests
    assert 0 <= unseen <= metrics["error_patterns"].get("timeout", 0)
    if case.retry.attempt_timeout is None:  # no attempt ends before it is answered
        assert 0 == unseen


@pytest.mark.parametrize("attempt_timeout", [0.3, None], ids=["attempt-timeout", "deadline-only"])
async def test_hangs_past_every_attempt_end_by_the_deadline(attempt_timeout: float | None) -> None:
    """When every attempt hangs, each call ends by its deadline with a TIMEOUT."""
    retry = retry_policy(max_retries=10, attempt_timeout=attempt_timeout, deadline=1.0)
    async with fault_server(hang_rate=1.0) as server:
        client = AsyncLLMClient([provider(server, retry=retry, limits=LIMITS)])
        books = Books(client, retry)
        async with client:
            with anyio.fail_after(30):
                await asyncio.gather(*(books.chat() for _ in range(20)))
        books.check()
    assert (20, {RetryErrorType.TIMEOUT}) == (books.count("failure"), books.kinds())


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ({"unauthorized": True}, RetryErrorType.AUTHENTICATION),
        ({"insufficient_quota": True}, RetryErrorType.PERMANENT),
    ],
    ids=["401", "insufficient_quota"],
)
async def test_refusal_is_sent_once(fault: dict[str, bool], kind: RetryErrorType) -> None:
    """A 401 or insufficient_quota fails each call after exactly one request, breaker closed."""
    retry = retry_policy(max_retries=5)
    breaker = BreakerPolicy(fail_max=1)
    async with fault_server(**fault) as server:
        client = AsyncLLMClient([provider(server, retry=retry, limits=LIMITS, breaker=breaker)])
        books = Books(client, retry)
        async with client:
            with anyio.fail_after(30):
                await asyncio.gather(*(books.chat() for _ in range(CALLS)))
            state = client.policy("primary").breaker.state  # type: ignore[union-attr]
        books.check()
        requests = server.stats().requests
    assert (CALLS, "closed") == (requests, state)
    assert [1] * CALLS == [c.attempts for c in books.calls]
    assert (CALLS, {kind}) == (books.count("failure"), books.kinds())


async def test_outage_opens_the_breaker_and_calls_wait_it_out() -> None:
    """A 1 s outage mid-run opens the breaker; calls wait it out, in time, books balanced."""
    retry = retry_policy(max_retries=3, base_delay=0.05, max_delay=0.2)
    breaker = BreakerPolicy(fail_max=3, reset_timeout=0.3)
    limits = RateLimits(requests_per_minute=1800, max_concurrency=32)  # 30 per second
    async with fault_server() as server:
        client = AsyncLLMClient([provider(server, retry=retry, limits=limits, breaker=breaker)])
        books = Books(client, retry)
        async with client:
            with anyio.fail_after(30):
                calls = [asyncio.create_task(books.chat()) for _ in range(60)]
                await server.wait_until(lambda s: s.succeeded >= 30)  # past the burst
                server.outage(1.0)
                await asyncio.gather(*calls)
            opened = client.policy("primary").breaker.statistics()  # type: ignore[union-attr]
        books.check()
        stats = server.stats()
    assert stats.outage_rejections > 0
    assert opened.times_opened >= 1
    assert "closed" == opened.state
    assert books.count("success") >= 0.75 * 60
    # Measured: about 10 requests meet the outage with the breaker, 33 without it.
    assert stats.outage_rejections <= 20


#: Server arrivals before each wave of cancellations; tasks of the last wave are never cancelled.
WAVES = (0, 10, 25, 40, 55)


def arrived(n: int) -> Callable[[FaultServerStatistics], bool]:
    return lambda s: s.requests >= n


async def test_mass_cancellation_leaves_nothing_behind() -> None:
    """200 calls cancelled at seeded moments leak nothing; booked cancelled (unstarted: not)."""
    rng = random.Random(SEED)
    waves = [rng.randrange(len(WAVES) + 1) for _ in range(200)]
    for index, arrivals in enumerate(WAVES):  # every wave's moment comes: its callers are alive
        assert arrivals <= sum(w >= index for w in waves)
    retry = retry_policy(max_retries=3, deadline=10.0)
    limits = RateLimits(requests_per_minute=60_000, max_concurrency=50)
    breaker = BreakerPolicy(fail_max=1)
    async with fault_server(latency=0.2, latency_jitter=0.3) as server:
        client = AsyncLLMClient([provider(server, retry=retry, limits=limits, breaker=breaker)])
        books = Books(client, retry)
        async with client:
            tasks = [asyncio.create_task(books.chat()) for _ in waves]
            with anyio.fail_after(20):
                for index, arrivals in enumerate(WAVES):
                    await server.wait_until(arrived(arrivals))
                    for task in (t for t, w in zip(tasks, waves, strict=True) if w == index):
                        task.cancel()
                results = await asyncio.gather(*tasks, return_exceptions=True)
                state = client.policy("primary").breaker.state  # type: ignore[union-attr]
                await books.chat()  # nothing is held: the next call goes through
        books.check()
    cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
    unstarted = cancelled - books.count("cancelled")
    assert (201, 0) == (len(books.calls) + unstarted, books.count("failure"))
    assert sum(w == 0 for w in waves) == unstarted
    assert books.count("cancelled") > 0
    assert books.count("success") >= sum(w == len(WAVES) for w in waves) + 1
    assert "closed" == state
