# SPDX-License-Identifier: MIT
"""Admission by `ProviderLimiter`: rates, arrival order, reconciliation, cancellation."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_rate_limiter.exceptions import RateLimitTimeoutError, RequestTooLargeError
from llm_rate_limiter.limiter import ProviderLimiter, RateLimits
from tests.limiter.helpers import START, Recorder, RecordingHook, VirtualTime, install, vt_fixture  # noqa: F401

pytestmark = pytest.mark.anyio


class TestBucketSize:
    async def test_requests_burst_one_second(self, vt):
        """600 RPM admits 10 requests at once, then one every 0.1 s."""
        rec = Recorder(ProviderLimiter(RateLimits(requests_per_minute=600, burst=1.0)), vt)
        tasks = [rec.start(str(i)) for i in range(12)]
        await vt.run(asyncio.gather(*tasks))
        expected = {str(i): 0.0 for i in range(10)} | {"10": 0.1, "11": 0.2}
        assert expected == rec.times()

    async def test_default_burst_leaves_a_margin(self, vt):
        """600 RPM with the default burst (0.95 s) admits 9 at once, the 10th 0.05 s later."""
        rec = Recorder(ProviderLimiter(RateLimits(requests_per_minute=600)), vt)
        await vt.run(asyncio.gather(*(rec.start(str(i)) for i in range(10))))
        assert {str(i): 0.0 for i in range(9)} | {"9": pytest.approx(0.05)} == rec.times()

    async def test_request_bucket_holds_at_least_one(self, vt):
        """30 RPM (half a request per second) still admits one request at once, then one per 2 s."""
        rec = Recorder(ProviderLimiter(RateLimits(requests_per_minute=30, burst=1.0)), vt)
        await vt.run(asyncio.gather(rec.start("a"), rec.start("b")))
        assert {"a": 0.0, "b": 2.0} == rec.times()

    async def test_burst_setting(self, vt):
        """burst=2 lets two seconds' worth of requests through at once."""
        rec = Recorder(ProviderLimiter(RateLimits(requests_per_minute=60, burst=2.0)), vt)
        await vt.run(asyncio.gather(*(rec.start(n) for n in "abc")))
        assert {"a": 0.0, "b": 0.0, "c": 1.0} == rec.times()

    async def test_tokens_per_day(self, vt):
        """A day's quota may go in one burst; it refills at tokens_per_day / 86400 per second."""
        rec = Recorder(ProviderLimiter(RateLimits(tokens_per_day=8_640, burst=1.0)), vt)
        await vt.run(asyncio.gather(rec.start("a", 8_640), rec.start("b", 1)))
        assert {"a": 0.0, "b": 10.0} == rec.times()


class TestOrder:
    async def test_large_request_not_starved(self, vt):
        """A large request queued first is admitted before the small ones that arrive after it."""
        limiter = ProviderLimiter(
            RateLimits(tokens_per_minute=600, burst=1.0)
        )  # 10 tokens/s, holds 10
        rec = Recorder(limiter, vt)
        await vt.run(rec.start("fill", 10))
        tasks = [rec.start("large", 10)]
        await vt.settle()
        tasks += [rec.start(f"small{i}", 1) for i in range(3)]
        await vt.run(asyncio.gather(*tasks))
        expected = ["fill", "large", "small0", "small1", "small2"]
        assert expected == [name for name, _ in rec.admitted]
        assert {"fill": 0.0, "large": 1.0, "small0": 1.1, "small1": 1.2, "small2": 1.3} == (
            rec.times()
        )

    async def test_newcomer_queues_behind_waiters(self, vt):
        """A call that would fit right now still queues while others wait."""
        limiter = ProviderLimiter(RateLimits(tokens_per_minute=600, burst=1.0))
        rec = Recorder(limiter, vt)
        await vt.run(rec.start("fill", 10))
        first = rec.start("large", 10)
        await vt.advance(0.5)  # 5 tokens free now: a 1-token call would fit
        second = rec.start("small", 1)
        await vt.run(asyncio.gather(first, second))
        assert {"fill": 0.0, "large": 1.0, "small": 1.1} == rec.times()


@st.composite
def _arrivals(draw: st.DrawFn) -> list[tuple[float, int]]:
    gaps = st.sampled_from([0.0, 0.0, 0.01, 0.05, 0.1, 0.3, 1.0, 2.5])
    return draw(st.lists(st.tuples(gaps, st.integers(0, 25)), min_size=1, max_size=25))


class TestNeverAboveRate:
    @settings(max_examples=60, deadline=None)
    @given(arrivals=_arrivals(), burst=st.sampled_from([0.5, 1.0, 2.0]))
    def test_any_window(self, arrivals, burst):
        """Over any window the admissions stay within capacity + rate x window, in arrival order."""
        limits = RateLimits(requests_per_minute=120, tokens_per_minute=600, burst=burst)
        admitted = asyncio.run(self._scenario(limits, arrivals))
        assert list(range(len(arrivals))) == [i for _, i, _ in admitted]
        req_cap, req_rate = max(1.0, 2.0 * burst), 2.0
        tok_cap, tok_rate = 10.0 * burst, 10.0
        for i in range(len(admitted)):
            for j in range(i, len(admitted)):
                window = admitted[j][0] - admitted[i][0]
                costs = [tokens for _, _, tokens in admitted[i : j + 1]]
                assert j - i + 1 <= req_cap + req_rate * window + 1e-6
                oversize = max(0.0, max(costs) - tok_cap)
                assert sum(costs) <= tok_cap + oversize + tok_rate * window + 1e-6

    @staticmethod
    async def _scenario(
        limits: RateLimits, arrivals: list[tuple[float, int]]
    ) -> list[tuple[float, int, int]]:
        vt = install(asyncio.get_running_loop())
        limiter = ProviderLimiter(limits)
        admitted: list[tuple[float, int, int]] = []

        async def call(index: int, tokens: int) -> None:
            async with limiter.acquire(tokens):
                admitted.append((vt.now, index, tokens))

        tasks = []
        for index, (gap, tokens) in enumerate(arrivals):
            await vt.advance(gap)
            tasks.append(asyncio.ensure_future(call(index, tokens)))
        await vt.run(asyncio.gather(*tasks))
        return admitted


class TestReconcile:
    async def test_debt_paid_before_next(self, vt):
        """Using 10 tokens more than estimated delays the next call by 10 tokens' worth (1 s)."""
        limiter = ProviderLimiter(RateLimits(tokens_per_minute=600, burst=1.0))  # 10/s, holds 10
        rec = Recorder(limiter, vt)
        async with limiter.acquire(5) as permit:
            permit.settle(used_tokens=15)
        await vt.run(rec.start("next", 5))
        assert {"next": 1.0} == rec.times()

    async def test_credit_shortens_next(self, vt):
        """Using 8 tokens fewer than estimated lets an 8-token call through at once."""
        limiter = ProviderLimiter(RateLimits(tokens_per_minute=600, burst=1.0))
        rec = Recorder(limiter, vt)
        async with limiter.acquire(10) as permit:
            permit.settle(used_tokens=2)
        await vt.run(rec.start("next", 8))
        assert {"next": 0.0} == rec.times()

    async def test_credit_wakes_the_waiting_head(self, vt):
        """A credit lets the waiting head go before its timer."""
        limiter = ProviderLimiter(RateLimits(tokens_per_minute=600, burst=1.0))
        rec = Recorder(limiter, vt)
        async with limiter.acquire(10) as permit:
            waiter = rec.start("waiter", 10)
            await vt.advance(0.2)
            permit.settle(used_tokens=0)
            await vt.settle()
        await vt.run(waiter)
        assert {"waiter": 0.2} == rec.times()

    async def test_settle_again_uses_last_usage(self, vt):
        """A second settle corrects the first: the last usage is what is charged."""
        hook = RecordingHook()
        limiter = ProviderLimiter(
            RateLimits(tokens_per_minute=600, burst=1.0), service="p", hook=hook
        )
        async with limiter.acquire(5) as permit:
            permit.settle(used_tokens=9)
            permit.settle(used_tokens=7)
        stats = limiter.statistics()
        assert (5.0, 7.0, 7.0) == (
            stats.tokens_estimated,
            stats.tokens_used,
            stats.tokens_this_minute,
        )
        assert [("tokens", "p", 5, 9), ("tokens", "p", 5, 7)] == [
            e for e in hook.events if e[0] == "tokens"
        ]

    async def test_unsettled_estimate_stands(self, vt):
        """Without settle the estimate stays charged: the next 10-token call waits 0.5 s."""
        limiter = ProviderLimiter(RateLimits(tokens_per_minute=600, burst=1.0))
        rec = Recorder(limiter, vt)
        async with limiter.acquire(5):
            pass
        await vt.run(rec.start("next", 10))
        assert {"next": 0.5} == rec.times()


class TestRefusals:
    async def test_too_large_fails_at_once(self, vt):
        """A request above tokens_per_minute raises RequestTooLargeError at once and is a denial."""
        hook = RecordingHook()
        limiter = ProviderLimiter(
            RateLimits(tokens_per_minute=1_000, burst=1.0), service="p", hook=hook
        )
        with pytest.raises(RequestTooLargeError) as info:
            limiter.acquire(1_001)
        assert (1_001, 1_000.0, "p") == (info.value.tokens, info.value.capacity, info.value.service)
        assert [("denied", "p", "too_large")] == hook.events
        stats = limiter.statistics()
        assert (1, 1, 0) == (stats.denied, stats.denied_too_large, stats.admitted)
        assert START == vt.now

    async def test_above_bucket_but_within_minute_is_admitted_with_debt(self, vt):
        """A 600-token call (bucket 16.7, 1000/min) goes at once; the next waits for the excess."""
        limiter = ProviderLimiter(RateLimits(tokens_per_minute=1_000, burst=1.0))
        rec = Recorder(limiter, vt)
        await vt.run(asyncio.gather(rec.start("big", 600), rec.start("next", 1)))
        rate = 1_000 / 60
        expected = round((600 - (rate - 1)) / rate, 6)
        assert {"big": 0.0, "next": expected} == rec.times()

    async def test_max_wait_fails_fast(self, vt):
        """A call predicted to wait 1 s with max_wait=0.5 raises RateLimitTimeoutError at once."""
        hook = RecordingHook()
        limiter = ProviderLimiter(
            RateLimits(requests_per_minute=60, max_wait=0.5, burst=1.0), service="p", hook=hook
        )
        async with limiter.acquire():
            pass
        with pytest.raises(RateLimitTimeoutError) as info:
            async with limiter.acquire():
                pass
        assert pytest.approx(1.0) == info.value.predicted_wait
        assert 0.5 == info.value.max_wait
        assert ("denied", "p", "max_wait") == hook.events[-1]
        stats = limiter.statistics()
        assert (1, 1, 1, 0) == (stats.admitted, stats.denied, stats.denied_max_wait, stats.queued)
        assert START == vt.now

    async def test_max_wait_counts_the_queue(self, vt):
        """The predicted wait includes the calls queued ahead."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=60, max_wait=1.5, burst=1.0))
        rec = Recorder(limiter, vt)
        first, second = rec.start("a"), rec.start("b")
        await vt.settle()
        assert 2.0 == pytest.approx(limiter.predicted_wait())
        with pytest.raises(RateLimitTimeoutError):
            await rec.call("c")
        await vt.run(asyncio.gather(first, second))
        assert {"a": 0.0, "b": 1.0} == rec.times()

    async def test_negative_tokens(self, vt):
        """Negative or NaN token counts are a ValueError."""
        limiter = ProviderLimiter(RateLimits())
        with pytest.raises(ValueError, match="tokens"):
            limiter.acquire(-1)
        with pytest.raises(ValueError, match="tokens"):
            limiter.acquire(float("nan"))


class TestCancellation:
    async def test_cancelled_head_hands_on(self, vt):
        """A cancelled head consumes nothing: the next waiter goes when the head would have."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=60, burst=1.0))
        rec = Recorder(limiter, vt)
        await vt.run(rec.start("a"))
        head, behind = rec.start("head"), rec.start("behind")
        await vt.advance(0.5)
        head.cancel()
        await vt.run(behind)
        assert {"a": 0.0, "behind": 1.0} == rec.times()
        assert head.cancelled()
        stats = limiter.statistics()
        assert (2, 0, 0) == (stats.admitted, stats.queued, stats.in_flight)

    async def test_cancelled_middle_leaves_queue(self, vt):
        """Cancelling a waiter in the middle of the queue skips it; the ones behind move up."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=60, burst=1.0))
        rec = Recorder(limiter, vt)
        await vt.run(rec.start("a"))
        tasks = [rec.start(n) for n in ("b", "c", "d")]
        await vt.settle()
        tasks[1].cancel()
        await vt.run(asyncio.gather(tasks[0], tasks[2]))
        assert {"a": 0.0, "b": 1.0, "d": 2.0} == rec.times()
        assert 0 == limiter.statistics().queued

    async def test_cancel_while_woken(self, vt):
        """A waiter cancelled right after being made head still hands the head on."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=60, burst=1.0))
        rec = Recorder(limiter, vt)
        await vt.run(rec.start("a"))
        b, c, d = rec.start("b"), rec.start("c"), rec.start("d")
        await vt.settle()
        await vt.advance(1.0)  # b admitted; c was just woken
        c.cancel()
        await vt.run(asyncio.gather(b, d))
        assert {"a": 0.0, "b": 1.0, "d": 2.0} == rec.times()


class TestConcurrency:
    async def test_max_concurrency(self, vt):
        """With max_concurrency=2 a third call waits until one of the two leaves."""
        limiter = ProviderLimiter(RateLimits(max_concurrency=2))
        release = asyncio.Event()
        peak = 0

        async def call(name: str) -> None:
            nonlocal peak
            async with limiter.acquire():
                peak = max(peak, limiter.statistics().in_flight)
                if name != "c":
                    await release.wait()

        tasks = [asyncio.ensure_future(call(n)) for n in "abc"]
        await vt.settle()
        assert (2, 1) == (limiter.statistics().in_flight, limiter.statistics().queued)
        release.set()
        await vt.run(asyncio.gather(*tasks))
        assert (2, 0, 3) == (peak, limiter.statistics().in_flight, limiter.statistics().admitted)

    async def test_slot_freed_on_error(self, vt):
        """A call that raises inside the permit frees its slot."""
        limiter = ProviderLimiter(RateLimits(max_concurrency=1))
        with pytest.raises(KeyError):
            async with limiter.acquire():
                raise KeyError("boom")
        async with limiter.acquire():
            assert 1 == limiter.statistics().in_flight
