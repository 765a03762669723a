# SPDX-License-Identifier: MIT
"""How `ProviderLimiter` obeys the server: cooldowns, 429s and rate-limit headers."""

from __future__ import annotations

import asyncio

import pytest

from llm_rate_limiter.limiter import RateLimits
from llm_rate_limiter.limiter._limiter import DEFAULT_COOLDOWN, ProviderLimiter
from tests.limiter.helpers import Recorder, RecordingHook, VirtualTime, vt_fixture  # noqa: F401

pytestmark = pytest.mark.anyio


class TestCooldown:
    async def test_every_waiter_honours_it_then_resumes_at_rate(self, vt):
        """After cooldown(2) no call goes before 2 s; then one per 0.1 s, not all at once."""
        hook = RecordingHook()
        limiter = ProviderLimiter(
            RateLimits(requests_per_minute=600, burst=1.0), service="p", hook=hook
        )
        rec = Recorder(limiter, vt)
        limiter.cooldown(2.0)
        assert 2.0 == limiter.cooldown_remaining()
        tasks = [rec.start(str(i)) for i in range(4)]
        await vt.run(asyncio.gather(*tasks))
        assert {"0": 2.0, "1": 2.1, "2": 2.2, "3": 2.3} == rec.times()
        assert ("cooldown", "p", 2.0) in hook.events
        assert (1, 0.0) == (limiter.statistics().cooldowns, limiter.cooldown_remaining())

    async def test_fast_path_honours_it(self, vt):
        """A call arriving alone during a cooldown (concurrency limit only) waits for its end."""
        limiter = ProviderLimiter(RateLimits(max_concurrency=5))
        rec = Recorder(limiter, vt)
        limiter.cooldown(1.5)
        await vt.run(rec.start("a"))
        assert {"a": 1.5} == rec.times()

    async def test_shorter_never_cuts_longer(self, vt):
        """A 1 s cooldown during a 3 s one leaves the 3 s end in place."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=60, burst=1.0))
        limiter.cooldown(3.0)
        limiter.cooldown(1.0)
        assert 3.0 == limiter.cooldown_remaining()
        assert 1 == limiter.statistics().cooldowns

    async def test_token_bucket_resumes_at_rate(self, vt):
        """After a cooldown the token bucket is full: a 5-token call waits 0.5 s more (10/s)."""
        limiter = ProviderLimiter(RateLimits(tokens_per_minute=600, burst=1.0))
        rec = Recorder(limiter, vt)
        limiter.cooldown(1.0)
        await vt.run(asyncio.gather(rec.start("a", 5), rec.start("b", 5)))
        assert {"a": 1.5, "b": 2.0} == rec.times()

    async def test_bad_seconds(self, vt):
        """A negative or infinite cooldown is a ValueError."""
        limiter = ProviderLimiter(RateLimits())
        with pytest.raises(ValueError, match="cooldown"):
            limiter.cooldown(-1.0)
        with pytest.raises(ValueError, match="cooldown"):
            limiter.cooldown(float("inf"))


class TestRateLimited:
    async def test_retry_after(self, vt):
        """A 429 with retry_after=3 counts a violation and pauses every caller 3 s."""
        hook = RecordingHook()
        limiter = ProviderLimiter(
            RateLimits(requests_per_minute=60, burst=1.0), service="p", hook=hook
        )
        rec = Recorder(limiter, vt)
        limiter.on_rate_limited(3.0)
        await vt.run(asyncio.gather(rec.start("a"), rec.start("b")))
        assert {"a": 3.0, "b": 4.0} == rec.times()
        assert [("violation", "p", 3.0), ("cooldown", "p", 3.0)] == hook.events[:2]
        assert 1 == limiter.statistics().violations

    async def test_retry_after_ms_header(self, vt):
        """Without an explicit value the retry-after-ms header sets the pause."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=60, burst=1.0))
        limiter.on_rate_limited(None, {"retry-after-ms": "1500"})
        assert 1.5 == limiter.cooldown_remaining()

    async def test_reset_header(self, vt):
        """A 429 without retry-after whose headers say 0 requests remain until 2 s pauses 2 s."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=60, burst=1.0))
        headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}
        limiter.on_rate_limited(None, headers)
        assert 2.0 == limiter.cooldown_remaining()

    async def test_default_pause(self, vt):
        """A 429 that says nothing pauses DEFAULT_COOLDOWN (1 s)."""
        limiter = ProviderLimiter(RateLimits())
        limiter.on_rate_limited()
        assert DEFAULT_COOLDOWN == limiter.cooldown_remaining() == 1.0


class TestHeaders:
    async def test_remaining_corrects_down(self, vt):
        """remaining-requests 3 while the bucket believes 10 leaves 3 immediate admissions."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=600, burst=1.0))
        rec = Recorder(limiter, vt)
        limiter.observe_headers({"x-ratelimit-remaining-requests": "3"})
        await vt.run(asyncio.gather(*(rec.start(str(i)) for i in range(4))))
        assert {"0": 0.0, "1": 0.0, "2": 0.0, "3": 0.1} == rec.times()

    async def test_never_corrects_up(self, vt):
        """remaining-requests 9 after 8 local admissions (2 left) changes nothing."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=600, burst=1.0))
        rec = Recorder(limiter, vt)
        await vt.run(asyncio.gather(*(rec.start(f"x{i}") for i in range(8))))
        limiter.observe_headers({"x-ratelimit-remaining-requests": "9"})
        await vt.run(asyncio.gather(*(rec.start(str(i)) for i in range(3))))
        assert {"0": 0.0, "1": 0.0, "2": 0.1} == {
            k: v for k, v in rec.times().items() if k[0] != "x"
        }

    async def test_tokens_corrected(self, vt):
        """remaining-tokens 4 (bucket believes 10) makes a 6-token call wait 0.2 s."""
        limiter = ProviderLimiter(RateLimits(tokens_per_minute=600, burst=1.0))
        rec = Recorder(limiter, vt)
        limiter.observe_headers({"x-ratelimit-remaining-tokens": "4"})
        await vt.run(rec.start("a", 6))
        assert {"a": 0.2} == rec.times()

    async def test_exhausted_fills_the_bucket(self, vt):
        """remaining-tokens 0 fills the token bucket: a 5-token call waits 0.5 s; no pause."""
        hook = RecordingHook()
        limiter = ProviderLimiter(
            RateLimits(tokens_per_minute=600, burst=1.0), service="p", hook=hook
        )
        rec = Recorder(limiter, vt)
        headers = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}
        limiter.observe_headers(headers)
        assert (0.0, []) == (limiter.cooldown_remaining(), hook.events)
        await vt.run(rec.start("a", 5))
        assert {"a": 0.5} == rec.times()

    async def test_exhausted_without_bucket_pauses(self, vt):
        """remaining-tokens 0 with a 6m0s reset and no local token limit pauses 360 s."""
        hook = RecordingHook()
        limiter = ProviderLimiter(
            RateLimits(requests_per_minute=60, burst=1.0), service="p", hook=hook
        )
        headers = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}
        limiter.observe_headers(headers)
        assert 360.0 == limiter.cooldown_remaining()
        assert [("cooldown", "p", 360.0)] == hook.events

    async def test_limits_reported(self, vt):
        """Announced limits go to hook.server_limits_seen."""
        hook = RecordingHook()
        limiter = ProviderLimiter(RateLimits(), service="p", hook=hook)
        limiter.observe_headers(
            {"x-ratelimit-limit-requests": "500", "x-ratelimit-limit-tokens": "30000"}
        )
        assert [("limits", "p", 500.0, 30_000.0)] == hook.events

    async def test_settle_with_headers(self, vt):
        """Permit.settle passes headers on: remaining-requests 0 makes the next call wait 0.1 s."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=600, burst=1.0))
        rec = Recorder(limiter, vt)
        async with limiter.acquire() as permit:
            permit.settle(
                headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"}
            )
        await vt.run(rec.start("next"))
        assert {"next": 0.1} == rec.times()
