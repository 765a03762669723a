# SPDX-License-Identifier: MIT
"""Tests of the wait arithmetic and of the seed's `calculate_backoff_delay`/`retry_with_backoff`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.exceptions import ConfigurationError
from llm_rate_limiter.retry import Retrier, RetryPolicy, retry_with_backoff
from llm_rate_limiter.retry._backoff import calculate_backoff_delay, server_retry_after
from llm_rate_limiter.testing import FakeClock

_REQUEST = httpx2.Request("POST", "https://x/v1/chat/completions")

delays = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


def rate_limit(headers: dict[str, str]) -> openai.RateLimitError:
    """A 429 built the SDK way, carrying *headers*."""
    body = {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}
    response = httpx2.Response(429, headers=headers, json={"error": body}, request=_REQUEST)
    return openai.RateLimitError("slow down", response=response, body=body)


def constant(value: float) -> Callable[[], float]:
    """A random source that always returns *value*."""
    return lambda: value


class TestDelayFor:
    @given(
        retry_number=st.integers(min_value=1, max_value=2000),
        base=delays,
        extra=delays,
        r=unit,
    )
    def test_backoff_within_bounds(
        self, retry_number: int, base: float, extra: float, r: float
    ) -> None:
        """Every backoff lies in [0, min(max_delay, base * 2**(n-1))]."""
        policy = RetryPolicy(base_delay=base, max_delay=base + extra)
        delay = Retrier(policy, rng=lambda: r).delay_for(retry_number, None)

        cap = min(policy.max_delay, base * 2.0 ** min(retry_number - 1, 1000))
        assert 0.0 <= delay <= cap

    @given(retry_after=st.integers(min_value=0, max_value=600_000), base=delays, r=unit)
    def test_retry_after_plus_bounded_jitter(self, retry_after: int, base: float, r: float) -> None:
        """A Retry-After wait lies in [ra, ra + 0.1 * (ra + base)] with ra capped at 60 s."""
        policy = RetryPolicy(base_delay=base, max_delay=max(base, 60.0))
        exc = rate_limit({"retry-after-ms": str(retry_after)})

        delay = Retrier(policy, rng=lambda: r).delay_for(1, exc)

        ra = min(retry_after / 1000.0, 60.0)
        assert ra <= delay <= ra + 0.1 * (ra + base) + 1e-9

    def test_jitter_spreads_callers(self) -> None:
        """Different random draws give different waits for the same Retry-After."""
        exc = rate_limit({"retry-after": "1"})
        waits = {Retrier(rng=constant(r)).delay_for(1, exc) for r in (0.0, 0.25, 0.5, 0.75)}

        assert 4 == len(waits)

    def test_server_retry_after_of_non_http_error(self) -> None:
        """Errors without a response carry no Retry-After."""
        assert server_retry_after(TimeoutError()) is None

    def test_server_retry_after_of_httpx_error(self) -> None:
        """An httpx2.HTTPStatusError's headers are read too."""
        response = httpx2.Response(503, headers={"retry-after": "3"}, request=_REQUEST)
        exc = httpx2.HTTPStatusError("unavailable", request=_REQUEST, response=response)

        assert 3.0 == server_retry_after(exc)


class TestDeadlineProperty:
    @settings(max_examples=40, deadline=None)
    @given(
        deadline=st.floats(min_value=0.5, max_value=120.0),
        base=st.floats(min_value=0.01, max_value=10.0),
        attempt_cost=st.floats(min_value=0.0, max_value=5.0),
        r=unit,
    )
    def test_sleeps_never_sum_past_the_deadline(
        self, deadline: float, base: float, attempt_cost: float, r: float
    ) -> None:
        """Attempt time plus recorded sleeps never exceed the deadline's budget when it gives up."""
        clock = FakeClock()
        retrier = Retrier(
            RetryPolicy(max_retries=50, base_delay=base, max_delay=30.0, deadline=deadline),
            clock=clock,
            rng=lambda: r,
        )

        async def fail() -> None:
            clock.advance(attempt_cost)
            raise TimeoutError

        async def main() -> None:
            with pytest.raises(TimeoutError):
                await retrier.run(fail)

        asyncio.run(main())

        # Every sleep is within its backoff bound and ends before the deadline.
        for i, sleep in enumerate(clock.sleeps):
            assert 0.0 <= sleep <= min(30.0, base * 2.0**i)
            elapsed_before_sleep = (i + 1) * attempt_cost + sum(clock.sleeps[:i])
            assert elapsed_before_sleep + sleep <= deadline + 1e-9  # float sums of advances
        assert sum(clock.sleeps) < deadline


class TestCalculateBackoffDelay:
    @pytest.mark.parametrize(
        ("attempt", "expected"), [(0, 1.0), (1, 2.0), (2, 4.0), (5, 30.0), (5000, 30.0)]
    )
    def test_without_jitter(self, attempt: int, expected: float) -> None:
        """base * 2**attempt, capped at max_delay, as in the seed."""
        assert expected == calculate_backoff_delay(attempt, 1.0, 30.0, jitter=False)

    @given(attempt=st.integers(min_value=0, max_value=2000), base=delays, extra=delays)
    def test_jitter_is_additive_and_bounded(self, attempt: int, base: float, extra: float) -> None:
        """With jitter the delay lies in [d, 1.1 * d] where d is the capped backoff."""
        d = calculate_backoff_delay(attempt, base, base + extra, jitter=False)

        assert d <= calculate_backoff_delay(attempt, base, base + extra) <= 1.1 * d + 1e-9

    @pytest.mark.parametrize(
        ("args", "setting"),
        [((-1, 1.0, 2.0), "attempt"), ((0, -1.0, 2.0), "base_delay"), ((0, 3.0, 2.0), "max_delay")],
    )
    def test_bad_arguments(self, args: tuple[int, float, float], setting: str) -> None:
        """Impossible arguments raise ConfigurationError naming the argument."""
        with pytest.raises(ConfigurationError) as info:
            calculate_backoff_delay(*args)

        assert setting == info.value.setting


@pytest.mark.anyio
class TestRetryWithBackoff:
    async def test_retries_then_returns(self, clock: FakeClock) -> None:
        """It retries retryable errors and returns the first success."""
        outcomes: list[BaseException | str] = [TimeoutError(), ConnectionError(), "done"]

        async def attempt() -> str:
            item = outcomes.pop(0)
            if isinstance(item, BaseException):
                raise item
            return item

        result = await retry_with_backoff(attempt, max_retries=3, base_delay=1.0, clock=clock)

        assert ("done", 2) == (result, len(clock.sleeps))
        assert all(0.0 <= s <= c for s, c in zip(clock.sleeps, (1.0, 2.0), strict=True))

    async def test_makes_max_retries_plus_one_attempts(self, clock: FakeClock) -> None:
        """With max_retries=2 a persistent error is tried three times and re-raised."""
        calls = 0

        async def attempt() -> None:
            nonlocal calls
            calls += 1
            raise ConnectionError(calls)

        with pytest.raises(ConnectionError) as info:
            await retry_with_backoff(attempt, max_retries=2, clock=clock)

        assert (3, (3,)) == (calls, info.value.args)

    async def test_retry_on_limits_the_types(self, clock: FakeClock) -> None:
        """retry_on=[RATE_LIMIT] does not retry a timeout."""
        calls = 0

        async def attempt() -> None:
            nonlocal calls
            calls += 1
            raise TimeoutError

        with pytest.raises(TimeoutError):
            await retry_with_backoff(attempt, retry_on=[RetryErrorType.RATE_LIMIT], clock=clock)

        assert 1 == calls

    async def test_timeout_is_the_deadline(self, clock: FakeClock) -> None:
        """timeout bounds the total waits like a deadline."""

        async def attempt() -> None:
            raise TimeoutError

        with pytest.raises(TimeoutError):
            await retry_with_backoff(
                attempt, max_retries=100, base_delay=1.0, max_delay=1.0, timeout=5.0, clock=clock
            )

        assert sum(clock.sleeps) < 5.0

    async def test_bad_settings(self) -> None:
        """A negative max_retries raises ConfigurationError naming it."""

        async def attempt() -> None:
            return None

        with pytest.raises(ConfigurationError) as info:
            await retry_with_backoff(attempt, max_retries=-1)

        assert "max_retries" == info.value.setting
