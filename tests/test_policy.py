# SPDX-License-Identifier: MIT
"""ResiliencePolicy: retry ⊃ [breaker ⊃ limiter ⊃ attempt timeout ⊃ call] around any coroutine."""

from __future__ import annotations

import asyncio
import inspect

import anyio
import openai
import pytest

from llm_rate_limiter import (
    AttemptTimeoutError,
    BreakerPolicy,
    CircuitOpenError,
    MetricsCollector,
    RateLimits,
    ResiliencePolicy,
    RetryErrorType,
    RetryPolicy,
    classify_error,
)
from llm_rate_limiter.testing import FakeClock
from tests.helpers import auth_error, rate_limit_error, server_error

pytestmark = pytest.mark.anyio


def make(clock: FakeClock, **kwargs: object) -> tuple[ResiliencePolicy, MetricsCollector]:
    metrics = MetricsCollector(clock=clock)
    policy = ResiliencePolicy("svc", hook=metrics, clock=clock, **kwargs)  # type: ignore[arg-type]
    return policy, metrics


class Flaky:
    """A coroutine function that fails with the given errors, then returns its call count."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, value: int = 0) -> int:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return value + self.calls


class TestComposition:
    async def test_decorator_keeps_signature(self, clock: FakeClock) -> None:
        """@policy keeps the function's name, signature and result."""
        policy, _ = make(clock, retry=RetryPolicy(max_retries=2, base_delay=0.1, max_delay=1))

        @policy
        async def add(a: int, b: int = 2) -> int:
            """Add."""
            return a + b

        assert 5 == await add(3)
        assert "add" == add.__name__
        assert ["a", "b"] == list(inspect.signature(add).parameters)

    def test_decorator_refuses_sync_functions(self, clock: FakeClock) -> None:
        """Decorating a plain function is a TypeError, not a silent instant success."""
        policy, _ = make(clock)
        with pytest.raises(TypeError, match="coroutine"):
            policy(lambda: 1)

    async def test_retries_then_succeeds(self, clock: FakeClock) -> None:
        """Two server errors are retried; the third attempt's result comes back."""
        policy, metrics = make(clock, retry=RetryPolicy(max_retries=3, base_delay=1, max_delay=4))
        fn = Flaky(server_error(), server_error())
        assert 13 == await policy.call(fn, 10)
        m = metrics.service_metrics("svc")
        assert (3, 1, 2) == (fn.calls, m["successful_requests"], m["retries"])
        assert 2 == len(clock.sleeps)

    async def test_open_breaker_consumes_no_quota(self, clock: FakeClock) -> None:
        """Once the breaker is open, calls fail fast and the limiter admits nothing more."""
        policy, metrics = make(
            clock,
            breaker=BreakerPolicy(fail_max=2, reset_timeout=10),
            limits=RateLimits(requests_per_minute=6000),
        )
        fn = Flaky(*(server_error() for _ in range(5)))
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                await policy.call(fn)
        assert policy.limiter is not None
        admitted = policy.limiter.statistics().admitted
        with pytest.raises(CircuitOpenError) as caught:
            await policy.call(fn)
        assert (2, admitted) == (fn.calls, policy.limiter.statistics().admitted)
        assert 10 == pytest.approx(caught.value.retry_after)
        assert 1 == metrics.service_metrics("svc")["breaker_rejections"]

    async def test_excluded_errors_do_not_trip(self, clock: FakeClock) -> None:
        """429 and 401 do not count against the breaker."""
        policy, _ = make(clock, breaker=BreakerPolicy(fail_max=1))
        for error in (rate_limit_error(), auth_error()):
            with pytest.raises(type(error)):
                await policy.call(Flaky(error))
        assert policy.breaker is not None
        assert "closed" == policy.breaker.state

    async def test_server_429_cools_the_limiter(self, clock: FakeClock) -> None:
        """A 429 from the server counts as a violation and pauses the provider's limiter."""
        policy, metrics = make(clock, limits=RateLimits(requests_per_minute=6000))
        with pytest.raises(type(rate_limit_error())):
            await policy.call(Flaky(rate_limit_error()))
        assert policy.limiter is not None
        assert 1 == policy.limiter.statistics().violations
        assert 1 == metrics.service_metrics("svc")["rate_limit_violations"]

    async def test_attempt_timeout(self) -> None:
        """An attempt slower than attempt_timeout is cut and classified as a timeout."""
        metrics = MetricsCollector()
        policy = ResiliencePolicy(
            "svc",
            retry=RetryPolicy(max_retries=0, attempt_timeout=0.01),
            breaker=BreakerPolicy(fail_max=1),
            hook=metrics,
        )

        async def hang() -> None:
            await asyncio.Event().wait()

        with anyio.fail_after(5), pytest.raises(AttemptTimeoutError) as caught:
            await policy.call(hang)
        assert isinstance(caught.value, TimeoutError)
        assert ("svc", 0.01) == (caught.value.service, caught.value.timeout)
        assert RetryErrorType.TIMEOUT == classify_error(caught.value)
        m = metrics.service_metrics("svc")
        assert ({"timeout": 1}, 1, 1) == (
            m["error_patterns"],
            m["failed_attempts"],
            m["failed_requests"],
        )
        assert policy.breaker is not None
        assert "open" == policy.breaker.state  # a timeout is a failure the breaker counts

    async def test_cancellation_frees_everything(self, clock: FakeClock) -> None:
        """A call cancelled while queued or in flight never trips the breaker and is counted."""
        policy, metrics = make(
            clock,
            breaker=BreakerPolicy(fail_max=1),
            limits=RateLimits(requests_per_minute=6000, max_concurrency=1),
        )
        started = asyncio.Event()

        async def hang() -> None:
            started.set()
            await asyncio.Event().wait()

        running = asyncio.create_task(policy.call(hang))
        await started.wait()
        queued = asyncio.create_task(policy.call(hang))
        await asyncio.sleep(0)
        for task in (running, queued):
            task.cancel()
        results = await asyncio.gather(running, queued, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        assert policy.breaker is not None
        assert policy.limiter is not None
        assert "closed" == policy.breaker.state
        assert (0, 0) == (policy.limiter.statistics().in_flight, policy.limiter.statistics().queued)
        m = metrics.service_metrics("svc")
        assert (2, 2) == (m["total_requests"], m["cancelled_requests"])
        assert 1 == await policy.call(Flaky())
