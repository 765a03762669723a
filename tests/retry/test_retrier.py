# SPDX-License-Identifier: MIT
"""Tests of the retry loop (`Retrier`): what is retried, how long it waits, what it raises."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import openai
import pytest

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter._hooks import NullHook
from llm_rate_limiter.exceptions import (
    CircuitOpenError,
    DeadlineExceededError,
    RateLimitTimeoutError,
    RequestTooLargeError,
)
from llm_rate_limiter.retry import (
    Retrier,
    RetryBudget,
    RetryCallStats,
    RetryPolicy,
    RetryStatistics,
)
from llm_rate_limiter.testing import FakeClock

pytestmark = pytest.mark.anyio

_REQUEST = httpx2.Request("POST", "https://x/v1/chat/completions")


def status_error(
    cls: type[openai.APIStatusError],
    status: int,
    headers: dict[str, str] | None = None,
    code: str = "rate_limit_exceeded",
) -> openai.APIStatusError:
    """Build an SDK error the way the SDK does, from a real response."""
    body = {"message": f"HTTP {status}", "type": code, "code": code}
    response = httpx2.Response(
        status, headers=headers or {}, json={"error": body}, request=_REQUEST
    )
    return cls(f"HTTP {status}", response=response, body=body)


def rate_limit(headers: dict[str, str] | None = None) -> openai.APIStatusError:
    """A 429 rate-limit error, optionally with Retry-After headers."""
    return status_error(openai.RateLimitError, 429, headers)


def server_error() -> openai.APIStatusError:
    """A 500 error."""
    return status_error(openai.InternalServerError, 500, code="server_error")


class Script:
    """An attempt function that raises the scripted exceptions in order, then returns "ok"."""

    def __init__(self, *outcomes: BaseException | str) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        item = self.outcomes.pop(0) if self.outcomes else "ok"
        if isinstance(item, BaseException):
            raise item
        return item


class RecordingHook(NullHook):
    """A hook that records the retry events."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def retry_scheduled(
        self, service: str, attempt: int, delay: float, error: RetryErrorType
    ) -> None:
        """Record."""
        self.events.append(("scheduled", service, attempt, delay, error))

    def retry_gave_up(self, service: str, attempts: int, error: RetryErrorType) -> None:
        """Record."""
        self.events.append(("gave_up", service, attempts, error))

    def retry_budget_refused(self, service: str) -> None:
        """Record."""
        self.events.append(("budget_refused", service))


def make(clock: FakeClock, rng: float = 0.5, **settings: Any) -> Retrier:
    """A retrier on the fake clock with a constant random source."""
    return Retrier(RetryPolicy(**settings), clock=clock, rng=lambda: rng)


class TestFirstAttempt:
    async def test_success_runs_once_without_waiting(self, clock: FakeClock) -> None:
        """A first attempt that succeeds returns its result after one call and no sleep."""
        script = Script()
        stats = RetryCallStats()

        retrier = make(clock)
        result = await retrier.run(script, stats=stats)

        assert ("ok", 1, [], 1, 0.0, []) == (
            result,
            script.calls,
            clock.sleeps,
            stats.attempts,
            stats.waited,
            stats.errors,
        )
        assert (
            RetryStatistics(
                calls=1,
                attempts=1,
                retries=0,
                successes=1,
                successes_on_retry=0,
                retried_calls=0,
                success_on_retry_rate=0.0,
                total_wait=0.0,
                error_types={},
                give_ups=0,
                budget_refusals=0,
            )
            == retrier.statistics()
        )

    @pytest.mark.parametrize(
        "error",
        [
            status_error(openai.AuthenticationError, 401, code="invalid_api_key"),
            status_error(openai.BadRequestError, 400, code="invalid_request_error"),
            status_error(openai.RateLimitError, 429, code="insufficient_quota"),
            CircuitOpenError("openai", 5.0),
            RateLimitTimeoutError("openai", 10.0, 1.0),
            RequestTooLargeError("openai", 1e6, 1e3),
            ValueError("a bug"),
        ],
        ids=["auth", "bad-request", "quota", "circuit", "limiter", "too-large", "unknown"],
    )
    async def test_non_retryable_is_attempted_once(
        self, clock: FakeClock, error: Exception
    ) -> None:
        """Non-retryable errors (and the library's own) pass through unchanged after one call."""
        script = Script(error)

        with pytest.raises(type(error)) as info:
            await make(clock).run(script, last_resort=False)

        assert (error, 1, [], None) == (
            info.value,
            script.calls,
            clock.sleeps,
            getattr(info.value, "__notes__", None),
        )

    async def test_type_outside_retry_on_is_not_retried(self, clock: FakeClock) -> None:
        """A server error is not retried when retry_on names only rate limits."""
        script = Script(server_error())

        with pytest.raises(openai.InternalServerError):
            await make(clock, retry_on={RetryErrorType.RATE_LIMIT}).run(script)

        assert 1 == script.calls

    async def test_cancelled_error_propagates_at_once(self, clock: FakeClock) -> None:
        """An attempt raising CancelledError is not retried."""
        script = Script(asyncio.CancelledError())

        with pytest.raises(asyncio.CancelledError):
            await make(clock).run(script)

        assert (1, []) == (script.calls, clock.sleeps)

    async def test_cancelled_retry_attempt_propagates_at_once(self, clock: FakeClock) -> None:
        """CancelledError on a retry ends the loop: no further attempt, no note."""
        script = Script(rate_limit(), asyncio.CancelledError(), "never")

        with pytest.raises(asyncio.CancelledError) as info:
            await make(clock).run(script)

        assert (2, None) == (script.calls, getattr(info.value, "__notes__", None))

    async def test_task_cancellation_is_not_retried(self, clock: FakeClock) -> None:
        """Cancelling the task running a call stops it with a single attempt made."""
        started = asyncio.Event()
        calls = 0

        async def hang() -> None:
            nonlocal calls
            calls += 1
            started.set()
            await asyncio.Event().wait()

        task = asyncio.ensure_future(make(clock).run(hang))
        await started.wait()
        task.cancel()

        with pytest.raises(asyncio.CancelledError):
            await task
        assert 1 == calls

    async def test_base_exception_is_not_retried(self, clock: FakeClock) -> None:
        """A BaseException that is not an Exception propagates after one call."""

        class Stop(BaseException):
            pass

        script = Script(Stop())

        with pytest.raises(Stop):
            await make(clock).run(script)

        assert 1 == script.calls


class TestRetrying:
    async def test_retries_until_success(self, clock: FakeClock) -> None:
        """Two retryable failures then success: three calls, full-jitter waits of 0.5 and 1.0."""
        script = Script(rate_limit(), server_error())
        stats = RetryCallStats()

        result = await make(clock).run(script, stats=stats)

        assert ("ok", 3, [0.5, 1.0]) == (result, script.calls, clock.sleeps)
        assert (3, 1.5) == (stats.attempts, stats.waited)
        assert [RetryErrorType.RATE_LIMIT, RetryErrorType.SERVER_ERROR] == stats.errors

    async def test_without_jitter_backoff_doubles_up_to_the_cap(self, clock: FakeClock) -> None:
        """Without jitter the waits are base * 2**n capped at max_delay."""
        script = Script(*(server_error() for _ in range(5)))

        await make(clock, max_retries=5, base_delay=1.0, max_delay=5.0, jitter=False).run(script)

        assert [1.0, 2.0, 4.0, 5.0, 5.0] == clock.sleeps

    async def test_gives_up_with_last_original_exception_and_note(self, clock: FakeClock) -> None:
        """After max_retries the last original error is raised, with a note on attempts and wait."""
        errors = [rate_limit() for _ in range(4)]
        script = Script(*errors)

        with pytest.raises(openai.RateLimitError) as info:
            await make(clock, max_retries=3).run(script)

        assert errors[-1] is info.value
        assert [
            "llm_rate_limiter: gave up after 4 attempts (attempts exhausted), waited 3.50s"
        ] == info.value.__notes__
        assert 4 == script.calls

    async def test_zero_retries_gives_up_after_one_attempt(self, clock: FakeClock) -> None:
        """max_retries=0 makes a single attempt even for a retryable error."""
        script = Script(rate_limit())

        with pytest.raises(openai.RateLimitError) as info:
            await make(clock, max_retries=0).run(script)

        assert (1, []) == (script.calls, clock.sleeps)
        assert ["llm_rate_limiter: gave up after 1 attempt (attempts exhausted), waited 0.00s"] == (
            info.value.__notes__
        )

    async def test_non_retryable_error_on_a_retry_ends_the_call(self, clock: FakeClock) -> None:
        """An authentication error on the second attempt is raised at once, with a note."""
        auth = status_error(openai.AuthenticationError, 401, code="invalid_api_key")
        script = Script(rate_limit(), auth, "never")

        with pytest.raises(openai.AuthenticationError) as info:
            await make(clock).run(script)

        assert (auth, 2) == (info.value, script.calls)
        assert ["llm_rate_limiter: gave up after 2 attempts (not retryable), waited 0.50s"] == (
            info.value.__notes__
        )

    async def test_call_passes_arguments(self, clock: FakeClock) -> None:
        """Retrier.call forwards positional and keyword arguments to every attempt."""
        seen: list[tuple[int, str]] = []

        async def add(a: int, *, b: str) -> str:
            seen.append((a, b))
            if len(seen) == 1:
                raise server_error()
            return f"{a}{b}"

        result = await make(clock).call(add, 1, b="x")

        assert ("1x", [(1, "x"), (1, "x")]) == (result, seen)


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("headers", "rng", "expected"),
        [
            ({"retry-after": "2"}, 0.0, 2.0),
            ({"retry-after": "2"}, 0.5, 2.0 + 0.5 * 0.1 * (2.0 + 1.0)),
            ({"retry-after": "5", "retry-after-ms": "250"}, 0.0, 0.25),
            ({"retry-after": "120"}, 0.0, 10.0),
        ],
        ids=["seconds", "jitter-on-top", "ms-wins", "capped"],
    )
    async def test_retry_after_is_honoured(
        self, clock: FakeClock, headers: dict[str, str], rng: float, expected: float
    ) -> None:
        """The wait is the server's Retry-After (ms wins, capped) plus bounded jitter."""
        script = Script(rate_limit(headers))

        await make(clock, rng=rng, max_retry_after=10.0).run(script)

        assert [pytest.approx(expected)] == clock.sleeps

    async def test_retry_after_ignored_when_not_respected(self, clock: FakeClock) -> None:
        """With respect_retry_after=False the backoff applies instead."""
        script = Script(rate_limit({"retry-after": "30"}))

        await make(clock, respect_retry_after=False).run(script)

        assert [0.5] == clock.sleeps

    async def test_retry_after_without_jitter_is_exact(self, clock: FakeClock) -> None:
        """With jitter off the Retry-After is obeyed exactly."""
        script = Script(rate_limit({"retry-after-ms": "1500"}))

        await make(clock, jitter=False).run(script)

        assert [1.5] == clock.sleeps


class TestDeadline:
    async def test_waits_never_pass_the_deadline(self, clock: FakeClock) -> None:
        """A wait that would end past the deadline is not slept: the call gives up."""
        script = Script(*(server_error() for _ in range(10)))

        with pytest.raises(openai.InternalServerError) as info:
            await make(clock, max_retries=10, base_delay=4.0, jitter=False, deadline=10.0).run(
                script
            )

        assert ([4.0], 2) == (clock.sleeps, script.calls)
        assert ["llm_rate_limiter: gave up after 2 attempts (deadline), waited 4.00s"] == (
            info.value.__notes__
        )

    async def test_attempt_time_counts_against_the_deadline(self, clock: FakeClock) -> None:
        """Time spent in attempts is part of the budget, not only the waits."""
        calls = 0

        async def slow_failure() -> None:
            nonlocal calls
            calls += 1
            clock.advance(3.0)
            raise server_error()

        with pytest.raises(openai.InternalServerError):
            await make(clock, max_retries=10, base_delay=1.0, jitter=False, deadline=10.0).run(
                slow_failure
            )

        # t=3 wait 1 -> t=7 wait 2 -> t=9 + 4 >= 10: stop.
        assert ([1.0, 2.0], 3) == (clock.sleeps, calls)

    async def test_success_under_a_deadline(self, clock: FakeClock) -> None:
        """Under a deadline, a call that fails once then succeeds reports two attempts."""
        stats = RetryCallStats()
        retrier = make(clock, deadline=30.0)

        first = await retrier.run(Script(), stats=RetryCallStats())
        second = await retrier.run(Script(server_error()), stats=stats)

        assert ("ok", "ok", 2, [0.5]) == (first, second, stats.attempts, clock.sleeps)
        assert (2, 1) == (retrier.statistics().successes, retrier.statistics().successes_on_retry)

    async def test_retry_after_beyond_deadline_gives_up_at_once(self, clock: FakeClock) -> None:
        """A Retry-After longer than the time left ends the call without sleeping."""
        script = Script(rate_limit({"retry-after": "30"}))

        with pytest.raises(openai.RateLimitError):
            await make(clock, deadline=10.0).run(script)

        assert ([], 1) == (clock.sleeps, script.calls)

    async def test_first_attempt_past_deadline_raises_deadline_exceeded(
        self, clock: FakeClock
    ) -> None:
        """A first attempt still running at the deadline is cut with DeadlineExceededError."""
        hook = RecordingHook()
        retrier = Retrier(RetryPolicy(deadline=0.02), clock=clock, hook=hook)

        with pytest.raises(DeadlineExceededError):
            await retrier.run(asyncio.Event().wait)

        assert [("gave_up", "default", 1, RetryErrorType.TIMEOUT)] == hook.events

    async def test_retry_cut_by_deadline_raises_last_original_error(self, clock: FakeClock) -> None:
        """A retry still running at the deadline ends with the previous attempt's error."""
        first = server_error()
        calls = 0

        async def fail_then_hang() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise first
            await asyncio.Event().wait()

        with pytest.raises(openai.InternalServerError) as info:
            await make(clock, base_delay=0.001, deadline=0.02).run(fail_then_hang)

        assert (first, 2) == (info.value, calls)
        assert "(deadline)" in info.value.__notes__[0]


class TestBudget:
    async def test_budget_refuses_once_spent_and_recovers_after_the_window(
        self, clock: FakeClock
    ) -> None:
        """With a floor of 2 retries per window the third is refused until the window passes."""
        hook = RecordingHook()
        policy = RetryPolicy(
            max_retries=5,
            base_delay=0.0,
            max_delay=0.0,
            budget=RetryBudget(ratio=0.0, min_retries_per_second=0.2, window=10.0),
        )
        retrier = Retrier(policy, clock=clock, hook=hook)

        def always_failing() -> Script:
            return Script(*(server_error() for _ in range(10)))

        first, second, later = always_failing(), always_failing(), always_failing()
        with pytest.raises(openai.InternalServerError) as info:
            await retrier.run(first)
        with pytest.raises(openai.InternalServerError):
            await retrier.run(second)
        clock.advance(10.0)
        with pytest.raises(openai.InternalServerError):
            await retrier.run(later)

        assert (3, 1, 3) == (first.calls, second.calls, later.calls)
        assert 3 == retrier.statistics().budget_refusals
        assert 3 == hook.events.count(("budget_refused", "default"))
        assert "(retry budget spent)" in info.value.__notes__[0]

    async def test_budget_grows_with_traffic(self, clock: FakeClock) -> None:
        """A ratio of 0.5 allows one retry per two calls made in the window."""
        policy = RetryPolicy(
            max_retries=10,
            base_delay=0.0,
            max_delay=0.0,
            budget=RetryBudget(ratio=0.5, min_retries_per_second=0.0, window=10.0),
        )
        retrier = Retrier(policy, clock=clock)
        for _ in range(5):
            await retrier.run(Script())
        failing = Script(*(server_error() for _ in range(10)))

        with pytest.raises(openai.InternalServerError):
            await retrier.run(failing)

        # 6 calls in the window allow 3 retries: 4 attempts.
        assert 4 == failing.calls


class TestConcurrency:
    async def test_hundred_concurrent_calls_are_retried_independently(
        self, clock: FakeClock
    ) -> None:
        """100 concurrent calls on one retrier each keep their own attempts and result."""
        retrier = make(clock, max_retries=3)
        scripts = [Script(*(server_error() for _ in range(i % 4)), f"r{i}") for i in range(100)]
        stats = [RetryCallStats() for _ in range(100)]

        results = await asyncio.gather(
            *(retrier.run(s, stats=st) for s, st in zip(scripts, stats, strict=True))
        )

        assert [f"r{i}" for i in range(100)] == results
        assert [i % 4 + 1 for i in range(100)] == [s.calls for s in scripts]
        assert [i % 4 + 1 for i in range(100)] == [st.attempts for st in stats]
        assert 100 + 25 * (1 + 2 + 3) == retrier.statistics().attempts


class TestStatistics:
    async def test_counters_are_exact(self, clock: FakeClock) -> None:
        """Calls, attempts, retries, successes, waits, error types and give-ups add up exactly."""
        hook = RecordingHook()
        retrier = Retrier(RetryPolicy(max_retries=3), clock=clock, hook=hook, rng=lambda: 0.5)
        auth = status_error(openai.AuthenticationError, 401, code="invalid_api_key")

        await retrier.run(Script())
        await retrier.run(Script(rate_limit(), server_error()))
        with pytest.raises(openai.AuthenticationError):
            await retrier.run(Script(auth))
        with pytest.raises(openai.RateLimitError):
            await retrier.run(Script(*(rate_limit() for _ in range(4))))

        expected = RetryStatistics(
            calls=4,
            attempts=9,
            retries=5,
            successes=2,
            successes_on_retry=1,
            retried_calls=2,
            success_on_retry_rate=0.5,
            total_wait=0.5 + 1.0 + 0.5 + 1.0 + 2.0,
            error_types={"rate_limit": 5, "server_error": 1, "authentication": 1},
            give_ups=1,
            budget_refusals=0,
        )
        assert expected == retrier.statistics()

    async def test_hook_receives_retry_events(self, clock: FakeClock) -> None:
        """The hook hears each scheduled retry with its delay and error type, then the give-up."""
        hook = RecordingHook()
        retrier = Retrier(
            RetryPolicy(max_retries=2), service="openai", clock=clock, hook=hook, rng=lambda: 0.5
        )

        with pytest.raises(openai.InternalServerError):
            await retrier.run(Script(rate_limit(), server_error(), server_error()))

        assert [
            ("scheduled", "openai", 1, 0.5, RetryErrorType.RATE_LIMIT),
            ("scheduled", "openai", 2, 1.0, RetryErrorType.SERVER_ERROR),
            ("gave_up", "openai", 3, RetryErrorType.SERVER_ERROR),
        ] == hook.events

    async def test_failing_hook_propagates_without_a_give_up(self, clock: FakeClock) -> None:
        """An exception raised by the hook itself is not mistaken for the call's failure."""

        class BrokenHook(NullHook):
            def retry_scheduled(
                self, service: str, attempt: int, delay: float, error: RetryErrorType
            ) -> None:
                raise RuntimeError("hook bug")

        retrier = Retrier(RetryPolicy(), clock=clock, hook=BrokenHook())

        with pytest.raises(RuntimeError, match="hook bug"):
            await retrier.run(Script(server_error()))

        assert 0 == retrier.statistics().give_ups

    async def test_empty_statistics(self) -> None:
        """A fresh retrier reports zeros and a success-on-retry rate of 0.0."""
        stats = Retrier().statistics()

        assert (0, 0, 0.0, {}) == (
            stats.calls,
            stats.attempts,
            stats.success_on_retry_rate,
            stats.error_types,
        )


class TestWaitForBreaker:
    async def test_last_resort_waits_out_an_open_breaker(self, clock: FakeClock) -> None:
        """With no fallback left, a breaker refusal is retried after its retry_after plus jitter."""
        script = Script(CircuitOpenError("openai", 5.0), CircuitOpenError("openai", 2.0), "ok")
        retrier = Retrier(RetryPolicy(max_retries=3, base_delay=1.0), clock=clock, rng=lambda: 1.0)
        assert "ok" == await retrier.run(script)
        assert [5.0 + 0.1 * 6.0, 2.0 + 0.1 * 3.0] == pytest.approx(clock.sleeps)

    async def test_half_open_refusal_backs_off(self, clock: FakeClock) -> None:
        """A refusal with no wait (trial slots taken) backs off like any retry."""
        script = Script(CircuitOpenError("openai", 0.0), "ok")
        retrier = Retrier(RetryPolicy(max_retries=1, base_delay=1.0), clock=clock, rng=lambda: 0.5)
        assert "ok" == await retrier.run(script)
        assert [0.5] == clock.sleeps

    @pytest.mark.parametrize(
        ("policy", "last_resort"),
        [
            (RetryPolicy(max_retries=3), False),
            (RetryPolicy(max_retries=3, wait_for_breaker=False), True),
        ],
        ids=["has-fallback", "disabled"],
    )
    async def test_no_wait(self, clock: FakeClock, policy: RetryPolicy, last_resort: bool) -> None:
        """With a fallback left, or with wait_for_breaker off, the refusal ends the call."""
        script = Script(CircuitOpenError("openai", 5.0), "ok")
        with pytest.raises(CircuitOpenError):
            await Retrier(policy, clock=clock).run(script, last_resort=last_resort)
        assert (1, []) == (script.calls, clock.sleeps)

    async def test_deadline_bounds_the_wait(self, clock: FakeClock) -> None:
        """A breaker wait longer than the deadline allows is not slept: the refusal is raised."""
        script = Script(CircuitOpenError("openai", 30.0), "ok")
        policy = RetryPolicy(max_retries=3, deadline=10.0)
        with pytest.raises(CircuitOpenError):
            await Retrier(policy, clock=clock).run(script)
        assert (1, []) == (script.calls, clock.sleeps)
