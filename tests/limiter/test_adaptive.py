# SPDX-License-Identifier: MIT
"""`RateLimits(adaptive=True)`: working rates that adopt announced limits and back off on 429s."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import pytest

from llm_rate_limiter._headers import RateLimitHeaders
from llm_rate_limiter.exceptions import ConfigurationError
from llm_rate_limiter.limiter import ProviderLimiter, RateLimits
from llm_rate_limiter.limiter._adaptive import AdaptiveRate, RateState
from llm_rate_limiter.limiter._learning import Learner
from tests.limiter.helpers import START, Recorder, RecordingHook, VirtualTime, vt_fixture  # noqa: F401

pytestmark = pytest.mark.anyio

LIMIT_120 = {"x-ratelimit-limit-requests": "120"}


class RateHook(RecordingHook):
    """Also keeps the working-rate events."""

    def working_rate_changed(
        self, service: str, requests: float | None, tokens: float | None, reason: str
    ) -> None:
        self.events.append(("rate", reason, requests, tokens))


async def _load(limiter: ProviderLimiter, vt: VirtualTime, seconds: float, tokens: float = 0.0):
    """Four closed-loop callers for *seconds*, each call settled with its (empty) headers."""
    end = vt.now + seconds

    async def caller() -> None:
        while vt.now < end:
            async with limiter.acquire(tokens) as permit:
                permit.settle(headers={})

    await vt.run(asyncio.gather(*(caller() for _ in range(4))))


def _working(limiter: ProviderLimiter) -> tuple[Any, ...]:
    stats = limiter.statistics()
    return stats.working_requests_per_minute, stats.working_tokens_per_minute


class TestAnnounced:
    @pytest.mark.parametrize(
        ("adaptive", "expected"),
        [(True, {"0": 0.0, "1": 0.0, "2": 0.5, "3": 1.0}), (False, dict.fromkeys("0123", 0.0))],
    )
    async def test_lower_limit_adopted_at_once(self, vt, adaptive, expected):
        """Announced 120/min under 600/min configured paces at once; adaptive=False ignores it."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=600, burst=1.0, adaptive=adaptive))
        rec = Recorder(limiter, vt)
        limiter.observe_headers(LIMIT_120)
        await vt.run(asyncio.gather(*(rec.start(str(i)) for i in range(4))))
        assert expected == rec.times()
        assert (120.0 if adaptive else 600.0, None) == _working(limiter)

    async def test_full_bucket_stays_full_when_it_shrinks(self, vt):
        """10 admitted at 600/min, then 120/min announced: the next call waits 0.5 s, not 4.5 s."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=600, burst=1.0))
        rec = Recorder(limiter, vt)
        await vt.run(asyncio.gather(*(rec.start(str(i)) for i in range(10))))
        limiter.observe_headers(LIMIT_120)
        await vt.run(rec.start("next"))
        assert 0.5 == rec.times()["next"]

    async def test_token_debt_survives_the_shrink(self, vt):
        """A 20-token debt in a 10-token bucket cut to 5 tokens stays: a 5-token call waits 5 s."""
        limiter = ProviderLimiter(RateLimits(tokens_per_minute=600, burst=1.0))
        rec = Recorder(limiter, vt)
        async with limiter.acquire(10) as permit:
            permit.settle(used_tokens=30)
        limiter.observe_headers({"x-ratelimit-limit-tokens": "300"})
        await vt.run(rec.start("next", 5))
        assert 5.0 == rec.times()["next"]

    async def test_ceiling_never_exceeded(self, vt):
        """Announced 6000/min over 600/min configured leaves 600/min: 10 at once, then 0.1 s."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=600, burst=1.0))
        rec = Recorder(limiter, vt)
        limiter.observe_headers({"x-ratelimit-limit-requests": "6000"})
        await vt.run(asyncio.gather(*(rec.start(str(i)) for i in range(11))))
        assert 0.1 == rec.times()["10"]
        assert (600.0, None) == _working(limiter)

    async def test_window_of_the_dialect(self, vt):
        """A limit of 10 over a 1 s window is 10/s; without a window it is per minute."""

        @dataclass(frozen=True)
        class Windowed(RateLimitHeaders):
            request_window: float | None = None

        learner = Learner(RateLimits())
        learner.announce(Windowed(limit_requests=10.0, request_window=1.0), 0.0)
        per_minute = Learner(RateLimits())
        per_minute.announce(RateLimitHeaders(limit_requests=600.0), 0.0)
        assert (10.0, 10.0) == (learner.requests.rate, per_minute.requests.rate)

    async def test_token_limit_adopted(self, vt):
        """An announced token limit with none configured makes a token bucket of its rate."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=600, burst=1.0))
        rec = Recorder(limiter, vt)
        limiter.observe_headers({"x-ratelimit-limit-tokens": "600"})
        await vt.run(asyncio.gather(rec.start("a", 10), rec.start("b", 5)))
        assert ({"a": 0.0, "b": 0.5}, (600.0, 600.0)) == (rec.times(), _working(limiter))


class TestDecrease:
    async def test_cut_and_held_through_the_pause(self, vt):
        """A 429 after 3 s at 10/s cuts to 7/s, held until its 1 s pause ends, then climbing."""
        hook = RateHook()
        limiter = ProviderLimiter(
            RateLimits(requests_per_minute=600, burst=1.0), service="p", hook=hook
        )
        await _load(limiter, vt, 3.0)
        limiter.on_rate_limited(1.0)
        assert ("rate", "decrease", 420.0, None) == hook.events[-2]
        rec = Recorder(limiter, vt)
        before = vt.now - START
        task = rec.start("a")
        await vt.advance(0.999)
        held = _working(limiter)[0]
        await vt.run(task)
        await vt.advance(1.0)
        assert (420.0, 1.0, 1) == (
            pytest.approx(held),
            pytest.approx(rec.times()["a"] - before),
            limiter.statistics().rate_decreases,
        )
        assert 420.0 < _working(limiter)[0] < 600.0

    async def test_climbs_back_along_the_cubic_curve(self, vt):
        """From 10/s a cut gives 7/s, 9.625 at 1.5 s, 10 at 3 s (K), then on to the ceiling."""
        rate = AdaptiveRate(20.0, 0.1)
        rate.decrease(0.0, 10.0)
        seen = [rate.rate]
        for now in (1.5, 3.0, 4.5, 60.0):
            rate.grow(now, demand=False)
            seen.append(rate.rate)
        assert [7.0, 9.625, 10.0, 10.375, 20.0] == pytest.approx(seen)
        assert not rate.growing

    async def test_one_cut_per_second(self, vt):
        """Two 429s 0.5 s apart cut once; one more 1.5 s later, after new admissions, cuts again."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=600, burst=1.0))
        await _load(limiter, vt, 2.0)
        limiter.on_rate_limited(0.0)
        await _load(limiter, vt, 0.5)
        limiter.on_rate_limited(0.0)
        assert 1 == limiter.statistics().rate_decreases
        await _load(limiter, vt, 1.5)
        limiter.on_rate_limited(0.0)
        assert 2 == limiter.statistics().rate_decreases

    async def test_no_admission_no_cut(self, vt):
        """A 429 before anything was admitted pauses but cuts nothing."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=600))
        limiter.on_rate_limited(1.0)
        assert ((600.0, None), 0, 1.0) == (
            _working(limiter),
            limiter.statistics().rate_decreases,
            limiter.cooldown_remaining(),
        )

    async def test_cut_from_the_rate_admitted(self, vt):
        """Admitting 10/s under a 100/s ceiling, a 429 cuts to 7/s, not to 70/s."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=6_000, burst=1.0))
        for _ in range(30):
            await vt.advance(0.1)
            async with limiter.acquire() as permit:
                permit.settle(headers={})
        limiter.on_rate_limited(0.0)
        assert 420.0 == pytest.approx(_working(limiter)[0], rel=0.05)

    async def test_probe_stays_under_the_announced_limit(self, vt):
        """After a cut under an announced 300/min (ceiling 600/min) it climbs back to 300/min."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=600, burst=1.0))
        limiter.observe_headers({"x-ratelimit-limit-requests": "300"})
        await _load(limiter, vt, 3.0)
        limiter.on_rate_limited(0.0)
        assert 210.0 == pytest.approx(_working(limiter)[0], rel=0.05)
        await vt.advance(30.0)
        assert (300.0, None) == _working(limiter)

    async def test_tokens_blamed_by_the_headers(self, vt):
        """A 429 with requests left but no tokens cuts the token rate (100/s to 70/s) only."""
        limiter = ProviderLimiter(
            RateLimits(requests_per_minute=600, tokens_per_minute=6_000, burst=1.0)
        )
        await _load(limiter, vt, 3.0, tokens=20.0)
        headers = {"x-ratelimit-remaining-requests": "5", "x-ratelimit-remaining-tokens": "0"}
        limiter.on_rate_limited(0.0, headers)
        requests, tokens = _working(limiter)
        assert (600.0, 4_200.0) == (requests, pytest.approx(tokens, rel=0.05))

    async def test_token_rate_learned_from_a_429(self, vt):
        """With no token limit, a token 429 after 50 tokens at 10/s learns 0.7 x 500/s."""
        limiter = ProviderLimiter(RateLimits(requests_per_minute=600, burst=1.0))
        await _load(limiter, vt, 3.0, tokens=50.0)
        headers = {"x-ratelimit-remaining-requests": "5", "x-ratelimit-remaining-tokens": "0"}
        limiter.on_rate_limited(0.0, headers)
        requests, tokens = _working(limiter)
        assert (600.0, 21_000.0) == (requests, pytest.approx(tokens, rel=0.1))

    async def test_fixed_when_not_adaptive(self, vt):
        """With adaptive=False a 429 pauses but the rate stays the configured one."""
        hook = RateHook()
        limiter = ProviderLimiter(
            RateLimits(requests_per_minute=600, burst=1.0, adaptive=False), hook=hook
        )
        await _load(limiter, vt, 2.0)
        limiter.on_rate_limited(1.0)
        stats = limiter.statistics()
        assert (600.0, 0, []) == (
            stats.working_requests_per_minute,
            stats.rate_decreases,
            [e for e in hook.events if e[0] == "rate"],
        )


class TestSlowStart:
    async def test_doubles_each_second_in_demand(self, vt):
        """With nothing configured 20 calls at once go 1/s and doubling: 3 in the first second."""
        limiter = ProviderLimiter(RateLimits())
        rec = Recorder(limiter, vt)
        await vt.run(asyncio.gather(*(rec.start(str(i)) for i in range(20))))
        times = sorted(rec.times().values())
        assert 3 == sum(1 for t in times if t < 1.0)
        # The rate grew from 1/s by one doubling per second of demand.
        assert 60.0 * 2.0 ** times[-1] == pytest.approx(_working(limiter)[0], rel=0.05)

    async def test_no_growth_while_idle(self, vt):
        """30 idle seconds leave the slow-start rate (about 1.5/s) as it was: the 2nd call waits."""
        limiter = ProviderLimiter(RateLimits())
        rec = Recorder(limiter, vt)
        await vt.run(asyncio.gather(rec.start("a"), rec.start("b")))
        rate = _working(limiter)[0] / 60.0
        await vt.advance(30.0)
        later = vt.now - START
        await vt.run(asyncio.gather(rec.start("c"), rec.start("d")))
        assert 0.3 == pytest.approx(rec.times()["d"] - later, abs=0.05)
        assert 1.0 < rate < 2.0

    async def test_announcement_ends_it(self, vt):
        """An announced 600/min replaces slow start at once: 10 at once, the 11th 0.1 s later."""
        limiter = ProviderLimiter(RateLimits(burst=1.0))
        rec = Recorder(limiter, vt)
        limiter.observe_headers({"x-ratelimit-limit-requests": "600"})
        await vt.run(asyncio.gather(*(rec.start(str(i)) for i in range(11))))
        assert (0.0, 0.1) == (rec.times()["9"], rec.times()["10"])
        assert (600.0, None) == _working(limiter)

    async def test_only_when_nothing_is_configured(self, vt):
        """A concurrency limit alone is no rate to learn from: no request bucket, no slow start."""
        assert ((60.0, None), (None, None)) == (
            _working(ProviderLimiter(RateLimits())),
            _working(ProviderLimiter(RateLimits(max_concurrency=4))),
        )

    @pytest.mark.parametrize(("adaptive", "released"), [(True, 3), (False, 8)])
    async def test_cooldown_releases_at_the_working_rate(self, vt, adaptive, released):
        """With no configured rate, 8 calls queued in a 2 s pause resume paced, not all at once."""
        limiter = ProviderLimiter(RateLimits(adaptive=adaptive))
        rec = Recorder(limiter, vt)
        limiter.observe_headers({"x-ratelimit-limit-requests": "600"})
        limiter.on_rate_limited(2.0)
        await vt.run(asyncio.gather(*(rec.start(str(i)) for i in range(8))))
        assert released == sum(1 for t in rec.times().values() if t < 2.25)

    async def test_exhausted_guess_pauses_until_reset(self, vt):
        """Remaining 0 with a 2 s reset pauses 2 s while the rate is a guess, not once announced."""
        guessed = ProviderLimiter(RateLimits())
        announced = ProviderLimiter(RateLimits())
        headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}
        guessed.observe_headers(headers)
        announced.observe_headers({**headers, "x-ratelimit-limit-requests": "600"})
        assert (2.0, 0.0) == (guessed.cooldown_remaining(), announced.cooldown_remaining())


class TestReporting:
    async def test_hook_hears_every_move(self, vt):
        """The hook hears the start, the announced limit and the cut, per minute."""
        hook = RateHook()
        limiter = ProviderLimiter(
            RateLimits(requests_per_minute=600, burst=1.0), service="p", hook=hook
        )
        limiter.observe_headers(LIMIT_120)
        await _load(limiter, vt, 3.0)
        limiter.on_rate_limited(0.0)
        moves = [e[1:3] for e in hook.events if e[0] == "rate"]
        assert [("start", 600.0), ("announced", 120.0), ("decrease", 84.0)] == [
            (reason, pytest.approx(rate)) for reason, rate in moves[:3]
        ]

    async def test_state_fits_a_redis_hash(self, vt):
        """A working rate's state goes to string fields and back unchanged, infinities included."""
        state = RateState(rate=7.0, w_max=10.0, cut_at=12.5, lowered_at=12.5, phase="probe")
        fields = state.to_fields()
        assert ("inf", "-inf") == (fields["announced"], fields["grown_at"])
        assert state == RateState.from_fields(fields)


class TestSettings:
    @pytest.mark.parametrize(("raw", "expected"), [("0", False), ("off", False), ("Yes", True)])
    async def test_env(self, raw, expected):
        """LLMRL_ADAPTIVE reads a boolean word."""
        assert expected == RateLimits.from_env(environ={"LLMRL_ADAPTIVE": raw}).adaptive

    async def test_bad_env_named(self):
        """A word that is not a boolean names the variable."""
        with pytest.raises(ConfigurationError) as info:
            RateLimits.from_env(environ={"LLMRL_ADAPTIVE": "maybe"})
        assert "LLMRL_ADAPTIVE" == info.value.setting

    async def test_not_a_bool(self):
        """adaptive must be a bool."""
        with pytest.raises(ConfigurationError) as info:
            RateLimits(adaptive="yes")  # type: ignore[arg-type]
        assert ("adaptive", True) == (info.value.setting, RateLimits().adaptive)

    async def test_infinite_ceiling_means_unlimited(self):
        """With no configured rate and no slow start the working rate is unlimited."""
        assert math.inf == AdaptiveRate(None, 1.0).rate
