# SPDX-License-Identifier: MIT
"""Properties of the retry waits: backoff and Retry-After bounds, attempts, deadlines."""

from __future__ import annotations

import asyncio
import dataclasses
from fractions import Fraction
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_rate_limiter.retry import Retrier, RetryPolicy
from llm_rate_limiter.retry._backoff import calculate_backoff_delay
from llm_rate_limiter.testing import FakeClock

_REQUEST = httpx2.Request("POST", "https://x/v1/chat/completions")
_FAST = settings(max_examples=150, deadline=None)
START = 1_000.0

# Delays of real policies: zero, sub-second, seconds, minutes.
base_delays = st.one_of(st.just(0.0), st.floats(1e-3, 100.0), st.sampled_from([0.5, 1.0, 2.0]))
spans = st.one_of(st.just(0.0), st.floats(0.0, 1_000.0))
# Retry numbers: the first few (the cap not reached yet) and huge ones (float overflow).
retry_numbers = st.one_of(st.integers(1, 12), st.integers(1, 3_000))
unit = st.one_of(st.just(0.0), st.floats(0.0, 1.0, exclude_max=True), st.just(0.999999))
# (header, text, seconds) of a Retry-After hint, in both of the SDK's spellings.
Hint = tuple[str, str, float]
hints = st.one_of(
    st.integers(0, 600).map(lambda s: ("retry-after", str(s), float(s))),
    st.integers(0, 600_000).map(lambda ms: ("retry-after-ms", str(ms), ms / 1000.0)),
)


def rate_limit(headers: dict[str, str]) -> openai.RateLimitError:
    """A 429 built the way the SDK builds it, from a real httpx2 response carrying *headers*."""
    body = {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}
    response = httpx2.Response(429, headers=headers, json={"error": body}, request=_REQUEST)
    return openai.RateLimitError("slow down", response=response, body=body)


def server_error() -> openai.InternalServerError:
    """A 500 built the SDK way (no hint)."""
    body = {"message": "boom", "type": "server_error", "code": None}
    response = httpx2.Response(500, json={"error": body}, request=_REQUEST)
    return openai.InternalServerError("boom", response=response, body=body)


def backoff_cap(policy: RetryPolicy, retry_number: int) -> float:
    """min(max_delay, base_delay * 2**(n-1)), computed exactly."""
    exact = Fraction(policy.base_delay) * 2 ** (retry_number - 1)
    return float(min(Fraction(policy.max_delay), exact))


def hint_bounds(policy: RetryPolicy, hint: float) -> tuple[float, float]:
    """[capped, capped + 0.1 * (capped + base_delay)] for a server hint."""
    capped = min(hint, policy.max_retry_after)
    return capped, capped + 0.1 * (capped + policy.base_delay)


def in_range(value: float, low: float, high: float) -> bool:
    """low <= value <= high, up to float rounding of the jitter product."""
    slack = 1e-12 * max(1.0, abs(high))
    return low - slack <= value <= high + slack


@st.composite
def policies(draw: st.DrawFn) -> RetryPolicy:
    """Any valid policy: base <= max, jitter on or off, Retry-After obeyed or not, any cap."""
    base = draw(base_delays)
    settings_: dict[str, Any] = {
        "base_delay": base,
        "max_delay": base + draw(spans),
        "jitter": draw(st.booleans()),
        "respect_retry_after": draw(st.booleans()),
        "max_retry_after": draw(st.sampled_from([0.0, 0.5, 5.0, 60.0, 1_000.0])),
    }
    return RetryPolicy(**settings_)


class TestDelayFor:
    @_FAST
    @given(policy=policies(), retry_number=retry_numbers, r=unit)
    def test_backoff_bounds(self, policy: RetryPolicy, retry_number: int, r: float) -> None:
        """Without a hint the wait lies in [0, cap]; exactly the cap when jitter is off."""
        cap = backoff_cap(policy, retry_number)
        delay = Retrier(policy, rng=lambda: r).delay_for(retry_number, server_error())
        if policy.jitter:
            assert in_range(delay, 0.0, cap)
        else:
            assert cap == delay

    @_FAST
    @given(policy=policies(), retry_number=retry_numbers, hint=hints, r=unit)
    def test_retry_after_bounds(
        self, policy: RetryPolicy, retry_number: int, hint: Hint, r: float
    ) -> None:
        """A 429's Retry-After (capped) is obeyed plus at most 10% spread, or ignored if asked."""
        name, text, seconds = hint
        delay = Retrier(policy, rng=lambda: r).delay_for(retry_number, rate_limit({name: text}))
        if not policy.respect_retry_after:
            cap = backoff_cap(policy, retry_number)
            assert in_range(delay, 0.0, cap) if policy.jitter else cap == delay
        elif policy.jitter:
            assert in_range(delay, *hint_bounds(policy, seconds))
        else:
            assert min(seconds, policy.max_retry_after) == delay

    @_FAST
    @given(
        attempt=retry_numbers.map(lambda n: n - 1),
        base=base_delays,
        span=spans,
        jitter=st.booleans(),
    )
    def test_seed_backoff_bounds(
        self, attempt: int, base: float, span: float, jitter: bool
    ) -> None:
        """The seed's delay is in [d, 1.1 d], d = min(max, base * 2**attempt); d without jitter."""
        policy = RetryPolicy(base_delay=base, max_delay=base + span)
        capped = backoff_cap(policy, attempt + 1)
        delay = calculate_backoff_delay(attempt, base, base + span, jitter=jitter)
        if jitter:
            assert in_range(delay, capped, 1.1 * capped)
        else:
            assert capped == delay


def predicted_wait(policy: RetryPolicy, retry_number: int, hint: float | None, r: float) -> float:
    """The wait the policy documents for retry *retry_number*, jitter drawn as *r*."""
    if hint is not None and policy.respect_retry_after:
        wait = min(hint, policy.max_retry_after)
        return wait + r * 0.1 * (wait + policy.base_delay) if policy.jitter else wait
    cap = backoff_cap(policy, retry_number)
    return r * cap if policy.jitter else cap


def predicted_sleeps(policy: RetryPolicy, hint: float | None, r: float) -> list[float]:
    """The waits slept: one per retry, stopping before a wait that would reach the deadline."""
    now, sleeps = START, []
    deadline_at = None if policy.deadline is None else START + policy.deadline
    for retry_number in range(1, policy.max_retries + 1):
        wait = predicted_wait(policy, retry_number, hint, r)
        if deadline_at is not None and now + wait >= deadline_at:
            break
        sleeps.append(wait)
        now += wait
    return sleeps


class TestRetrierRun:
    @settings(max_examples=120, deadline=None)
    @given(
        policy=policies(),
        max_retries=st.integers(0, 8),
        deadline=st.one_of(st.none(), st.floats(5.0, 200.0), st.sampled_from([5.0, 7.0, 30.0])),
        hint=st.one_of(st.none(), hints),
        r=unit,
    )
    def test_always_failing(
        self,
        policy: RetryPolicy,
        max_retries: int,
        deadline: float | None,
        hint: Hint | None,
        r: float,
    ) -> None:
        """Against an always-failing call: max_retries + 1 attempts, bounded sleeps, no overrun."""
        policy = dataclasses.replace(policy, max_retries=max_retries, deadline=deadline)
        clock = FakeClock(start=START)
        raised: list[Exception] = []

        async def attempt() -> None:
            raised.append(server_error() if hint is None else rate_limit({hint[0]: hint[1]}))
            raise raised[-1]

        async def run() -> BaseException:
            retrier = Retrier(policy, clock=clock, rng=lambda: r)
            with pytest.raises(openai.APIStatusError) as info:
                await retrier.run(attempt)
            assert len(raised) == retrier.statistics().attempts
            return info.value

        last = asyncio.run(run())
        seconds = None if hint is None else hint[2]
        expected = predicted_sleeps(policy, seconds, r)
        assert pytest.approx(expected, rel=1e-12, abs=1e-12) == clock.sleeps
        assert len(expected) + 1 == len(raised)
        if deadline is None:
            assert max_retries + 1 == len(raised)
        else:
            assert clock.monotonic() - START < deadline
        assert raised[-1] is last
        for retry_number, slept in enumerate(clock.sleeps, start=1):
            if seconds is not None and policy.respect_retry_after:
                assert in_range(slept, *hint_bounds(policy, seconds))
            else:
                assert in_range(slept, 0.0, backoff_cap(policy, retry_number))
