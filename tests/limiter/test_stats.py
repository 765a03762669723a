# SPDX-License-Identifier: MIT
"""`ProviderLimiter.statistics()`: exact numbers, windows and health."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from llm_rate_limiter.exceptions import RequestTooLargeError
from llm_rate_limiter.limiter import ProviderLimiter, RateLimits
from tests.limiter.helpers import START, Recorder, RecordingHook, VirtualTime, vt_fixture  # noqa: F401

pytestmark = pytest.mark.anyio


async def _three_calls_and_a_denial(vt: VirtualTime) -> ProviderLimiter:
    """60 RPM: three 10-token calls at once (waits 0, 1, 2 s) and one too-large call."""
    limiter = ProviderLimiter(
        RateLimits(requests_per_minute=60, tokens_per_minute=6_000, burst=1.0), service="p"
    )
    rec = Recorder(limiter, vt)
    await vt.run(asyncio.gather(*(rec.start(n, 10) for n in "abc")))
    with pytest.raises(RequestTooLargeError):
        limiter.acquire(6_001)
    return limiter


class TestNumbers:
    async def test_counts_and_rates(self, vt):
        """Admitted 3, denied 1 (too large): denial rate 0.25, success rate 0.75, degraded."""
        stats = (await _three_calls_and_a_denial(vt)).statistics()
        assert (3, 1, 1, 0) == (
            stats.admitted,
            stats.denied,
            stats.denied_too_large,
            stats.denied_max_wait,
        )
        assert (0.25, 0.75, "degraded") == (
            stats.denial_rate,
            stats.success_rate,
            stats.health_status,
        )

    async def test_waits(self, vt):
        """Waits of 0, 1 and 2 s give mean 1, p95 2 and max 2."""
        stats = (await _three_calls_and_a_denial(vt)).statistics()
        assert (1.0, 2.0, 2.0) == (stats.average_wait, stats.p95_wait, stats.max_wait_seen)
        assert ((START + 1, 10, 1.0), (START + 2, 10, 2.0)) == stats.recent_waits
        assert ((START + 2, 6_001, "too_large"),) == stats.recent_denials

    async def test_window_and_utilization(self, vt):
        """3 requests and 30 tokens this minute: peak usage 3/60; the request bucket is full."""
        stats = (await _three_calls_and_a_denial(vt)).statistics()
        assert (3, 30.0, 3, 30.0) == (
            stats.requests_this_minute,
            stats.tokens_this_minute,
            stats.peak_requests_per_minute,
            stats.peak_tokens_per_minute,
        )
        assert 0.05 == stats.peak_usage_rate
        assert 1.0 == stats.request_utilization
        assert pytest.approx(0.1) == stats.token_utilization

    async def test_window_rolls(self, vt):
        """A minute later the window is empty, the peak kept and the old window in the history."""
        limiter = await _three_calls_and_a_denial(vt)
        await vt.advance(60.0)
        stats = limiter.statistics()
        assert (0, 0.0, 3, 0.0) == (
            stats.requests_this_minute,
            stats.tokens_this_minute,
            stats.peak_requests_per_minute,
            stats.request_utilization,
        )
        assert ((960.0, 3, 30.0, 1),) == stats.request_history
        assert 0.25 == stats.denial_rate  # the previous minute still counts

    async def test_denials_age_out(self, vt):
        """Two minutes later the old denial no longer counts: healthy again."""
        limiter = await _three_calls_and_a_denial(vt)
        await vt.advance(120.0)
        stats = limiter.statistics()
        assert (0.0, "healthy", 3) == (stats.denial_rate, stats.health_status, stats.admitted)

    async def test_fresh(self, vt):
        """A new limiter reports zeros, no utilization without limits and healthy."""
        stats = ProviderLimiter(RateLimits()).statistics()
        assert (0, 0, 0.0, 0.0, None, None, "healthy") == (
            stats.admitted,
            stats.denied,
            stats.average_wait,
            stats.p95_wait,
            stats.request_utilization,
            stats.token_utilization,
            stats.health_status,
        )

    async def test_violations_make_critical(self, vt):
        """One server 429 per admitted call (over 10%) is critical."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=600, burst=1.0))
        async with limiter.acquire():
            pass
        limiter.on_rate_limited(0.5)
        stats = limiter.statistics()
        assert (1, 1, "critical") == (stats.violations, stats.cooldowns, stats.health_status)

    async def test_snapshot_is_frozen(self, vt):
        """The snapshot cannot be changed."""
        stats = ProviderLimiter(RateLimits()).statistics()
        with pytest.raises(dataclasses.FrozenInstanceError):
            stats.admitted = 5  # type: ignore[misc]

    def test_outside_a_loop(self):
        """statistics() works with no running loop."""
        assert 0 == ProviderLimiter(RateLimits()).statistics().queued


class TestHookEvents:
    async def test_every_admission_reported(self, vt):
        """Each admission calls limiter_waited with its wait and tokens."""
        hook = RecordingHook()
        limiter = ProviderLimiter(
            RateLimits(requests_per_minute=60, burst=1.0), service="p", hook=hook
        )
        rec = Recorder(limiter, vt)
        await vt.run(asyncio.gather(rec.start("a", 3), rec.start("b", 4)))
        assert [("waited", "p", 0.0, 3), ("waited", "p", 1.0, 4)] == hook.events
