# SPDX-License-Identifier: MIT
"""Tests of `AsyncCircuitBreaker`: transitions, trial slots, generations, recheck, events."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from llm_rate_limiter.breaker import AsyncCircuitBreaker, BreakerPolicy, reset_all
from llm_rate_limiter.exceptions import CircuitOpenError
from llm_rate_limiter.testing import FakeClock
from tests.helpers import (
    RecordingHook,
    auth_error,
    bad_request_error,
    rate_limit_error,
    server_error,
)

pytestmark = pytest.mark.anyio


def state(breaker: AsyncCircuitBreaker) -> str:
    """The breaker's state, as a plain string (so type checkers do not narrow it)."""
    return breaker.state


def make(
    clock: FakeClock, hook: RecordingHook | None = None, **settings: Any
) -> AsyncCircuitBreaker:
    """A breaker named "svc" on the fake clock."""
    return AsyncCircuitBreaker(
        BreakerPolicy(**settings), service="svc", hook=hook or RecordingHook(), clock=clock
    )


def fail(breaker: AsyncCircuitBreaker, times: int = 1, exc: Exception | None = None) -> None:
    """Record *times* admitted calls that fail with *exc* (a 500 by default)."""
    for _ in range(times):
        breaker.on_failure(breaker.admit(), exc or server_error(), 0.1)


def succeed(breaker: AsyncCircuitBreaker, times: int = 1, latency: float = 0.1) -> None:
    """Record *times* admitted calls that succeed after *latency* seconds."""
    for _ in range(times):
        breaker.on_success(breaker.admit(), latency)


def open_breaker(clock: FakeClock, **settings: Any) -> AsyncCircuitBreaker:
    """A breaker opened by fail_max failures."""
    breaker = make(clock, **settings)
    fail(breaker, breaker.policy.fail_max)
    assert "open" == state(breaker)
    return breaker


def half_open_breaker(clock: FakeClock, **settings: Any) -> AsyncCircuitBreaker:
    """A breaker opened and then left alone for reset_timeout."""
    breaker = open_breaker(clock, **settings)
    clock.advance(breaker.policy.reset_timeout)
    assert "half_open" == state(breaker)
    return breaker


class TestClosedToOpen:
    def test_fail_max_consecutive_failures_open(self, clock):
        """fail_max consecutive counted failures open the breaker, one fewer does not."""
        breaker = make(clock, fail_max=3)
        fail(breaker, 2)
        assert "closed" == state(breaker)
        fail(breaker)
        assert "open" == state(breaker)

    def test_success_resets_the_consecutive_count(self, clock):
        """A success between failures starts the consecutive count again."""
        breaker = make(clock, fail_max=3)
        fail(breaker, 2)
        succeed(breaker)
        fail(breaker, 2)
        assert "closed" == state(breaker)
        assert 2 == breaker.statistics().consecutive_failures

    def test_success_sent_before_the_streak_does_not_reset_it(self, clock):
        """A reply to a call sent before the streak's first failure leaves the count as it is."""
        breaker = make(clock, fail_max=3)
        early = breaker.admit()  # sent at t=0, answers at t=2
        clock.advance(1.0)
        fail(breaker)  # sent at t=0.9
        clock.advance(1.0)
        breaker.on_success(early, 2.0)
        assert 1 == breaker.statistics().consecutive_failures
        breaker.on_success(breaker.admit(), 1.0)  # sent at t=1, after the streak began
        assert 0 == breaker.statistics().consecutive_failures
        fail(breaker)
        breaker.on_success(breaker.admit(), 0.05)  # sent after that failure was: resets
        fail(breaker, 2)
        assert "closed" == state(breaker)

    def test_stale_successes_do_not_hold_the_breaker_closed(self, clock):
        """Every new call fails while old calls still succeed: fail_max failures open it."""
        breaker = make(clock, fail_max=3)
        in_flight = [breaker.admit() for _ in range(3)]
        clock.advance(1.0)
        for ticket in in_flight:
            fail(breaker)
            breaker.on_success(ticket, 1.0)
        assert "open" == state(breaker)

    def test_failure_rate_opens_after_minimum_calls(self, clock):
        """The failure-rate trip waits for minimum_calls calls, then opens at the threshold."""
        breaker = make(
            clock, fail_max=100, failure_rate_threshold=0.5, minimum_calls=6, window_size=10
        )
        for _ in range(2):
            fail(breaker)
            succeed(breaker)
        fail(breaker)
        assert "closed" == state(breaker)  # 3 of 5 failed, but only 5 calls
        fail(breaker)
        assert "open" == state(breaker)  # 4 of 6

    def test_failure_rate_below_threshold_stays_closed(self, clock):
        """A failure rate under the threshold never opens the breaker."""
        breaker = make(
            clock, fail_max=100, failure_rate_threshold=0.5, minimum_calls=4, window_size=10
        )
        for _ in range(20):
            fail(breaker)
            succeed(breaker, 3)
        assert "closed" == state(breaker)
        assert 0.2 == breaker.statistics().failure_rate  # 2 of the last 10

    def test_success_completing_minimum_calls_opens(self, clock):
        """The call that fills minimum_calls re-evaluates the rate, even a success."""
        breaker = make(
            clock, fail_max=100, failure_rate_threshold=0.5, minimum_calls=4, window_size=10
        )
        fail(breaker, 3)
        assert "closed" == state(breaker)
        succeed(breaker)
        assert "open" == state(breaker)

    def test_count_window_forgets_old_calls(self, clock):
        """Failures pushed out of the count window no longer count toward the rate."""
        breaker = make(
            clock, fail_max=100, failure_rate_threshold=0.5, minimum_calls=4, window_size=4
        )
        fail(breaker)
        succeed(breaker, 3)
        succeed(breaker)  # pushes the failure out
        fail(breaker)
        assert "closed" == state(breaker)
        assert 0.25 == breaker.statistics().failure_rate

    def test_time_window_forgets_old_calls(self, clock):
        """Failures older than window_seconds no longer count toward the rate."""
        breaker = make(
            clock,
            fail_max=100,
            failure_rate_threshold=0.5,
            minimum_calls=4,
            window_seconds=10.0,
        )
        fail(breaker, 3)
        clock.advance(11.0)
        succeed(breaker, 3)
        fail(breaker)
        assert "closed" == state(breaker)
        assert 4 == breaker.statistics().window_calls

    def test_time_window_opens_within_window(self, clock):
        """Failures inside window_seconds trip the failure-rate threshold."""
        breaker = make(
            clock,
            fail_max=100,
            failure_rate_threshold=0.5,
            minimum_calls=4,
            window_seconds=10.0,
        )
        succeed(breaker, 2)
        clock.advance(5.0)
        fail(breaker)
        assert "closed" == state(breaker)
        fail(breaker)
        assert "open" == state(breaker)

    def test_slow_calls_open_after_minimum_calls(self, clock):
        """Slow successes trip the slow-call rate, but only once minimum_calls are in."""
        breaker = make(
            clock,
            slow_call_duration=2.0,
            slow_call_rate_threshold=0.5,
            minimum_calls=4,
            window_size=10,
        )
        succeed(breaker, 3, latency=5.0)
        assert "closed" == state(breaker)
        succeed(breaker, 1, latency=0.5)
        assert "open" == state(breaker)
        assert 0.75 == breaker.statistics().slow_call_rate

    def test_call_at_the_slow_duration_is_not_slow(self, clock):
        """A call that takes exactly slow_call_duration is not slow."""
        breaker = make(clock, slow_call_duration=2.0, slow_call_rate_threshold=0.5, minimum_calls=2)
        succeed(breaker, 5, latency=2.0)
        assert "closed" == state(breaker)
        assert 0.0 == breaker.statistics().slow_call_rate

    @pytest.mark.parametrize(
        "error", [rate_limit_error, auth_error, bad_request_error], ids=["429", "401", "400"]
    )
    def test_excluded_errors_never_open(self, clock, error):
        """Rate-limit, authentication and bad-request errors never trip the breaker."""
        breaker = make(clock, fail_max=2, failure_rate_threshold=0.1, minimum_calls=2)
        for _ in range(20):
            fail(breaker, exc=error())
        stats = breaker.statistics()
        assert ("closed", 0, 20, 0) == (
            state(breaker),
            stats.failures,
            stats.ignored,
            stats.window_calls,
        )

    def test_excluded_error_does_not_reset_consecutive_failures(self, clock):
        """An excluded error counts as neither a success nor a failure."""
        breaker = make(clock, fail_max=3)
        fail(breaker, 2)
        fail(breaker, exc=rate_limit_error())
        assert 2 == breaker.statistics().consecutive_failures
        fail(breaker)
        assert "open" == state(breaker)

    def test_excluded_set_is_configurable(self, clock):
        """An error kind taken out of the excluded set counts as a failure."""
        breaker = make(clock, fail_max=2, excluded=["authentication"])
        fail(breaker, 2, exc=rate_limit_error())
        assert "open" == state(breaker)

    async def test_cancellation_never_counts(self, clock):
        """Cancelled calls never count as failures, however many there are."""
        breaker = make(clock, fail_max=1)
        started = asyncio.Event()

        async def hang() -> None:
            started.set()
            await asyncio.Event().wait()

        for _ in range(5):
            started.clear()
            task = asyncio.create_task(breaker.call(hang))
            with anyio.fail_after(5):
                await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        breaker.on_failure(breaker.admit(), asyncio.CancelledError(), 1.0)
        stats = breaker.statistics()
        assert ("closed", 0, 6) == (state(breaker), stats.failures, stats.cancelled)


class TestOpen:
    def test_open_rejects_with_service_and_seconds(self, clock):
        """An open breaker refuses calls with the service and the seconds until a trial."""
        breaker = open_breaker(clock, reset_timeout=30.0)
        clock.advance(10.0)
        with pytest.raises(CircuitOpenError) as info:
            breaker.admit()
        assert ("svc", 20.0) == (info.value.service, info.value.retry_after)
        assert 20.0 == breaker.seconds_until_trial()

    def test_half_open_after_reset_timeout(self, clock):
        """The breaker turns half-open exactly when reset_timeout has passed on the clock."""
        breaker = open_breaker(clock, reset_timeout=30.0)
        clock.advance(29.999)
        assert "open" == state(breaker)
        clock.advance(0.001)
        assert "half_open" == state(breaker)
        assert 0.0 == breaker.seconds_until_trial()

    def test_admit_moves_to_half_open(self, clock):
        """admit() itself moves a due breaker to half-open and grants a trial slot."""
        breaker = open_breaker(clock, reset_timeout=5.0)
        clock.advance(5.0)
        breaker.admit()
        assert ("half_open", "half-open") == (state(breaker), breaker.circuit.current_state)


class TestHalfOpen:
    @pytest.mark.parametrize("slots", [1, 3])
    async def test_only_half_open_max_calls_run(self, clock, slots):
        """Of 50 concurrent calls in half-open, exactly half_open_max_calls run."""
        breaker = half_open_breaker(clock, half_open_max_calls=slots, success_threshold=10)
        release = asyncio.Event()
        ran = 0

        async def probe() -> str:
            nonlocal ran
            ran += 1
            await release.wait()
            return "ok"

        tasks = [asyncio.create_task(breaker.call(probe)) for _ in range(50)]
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        refused = [r for r in results if isinstance(r, CircuitOpenError)]
        assert (slots, slots, 50 - slots) == (ran, results.count("ok"), len(refused))
        assert {("svc", 0.0)} == {(e.service, e.retry_after) for e in refused}

    def test_success_threshold_closes(self, clock):
        """success_threshold successful trials close the breaker, fewer do not."""
        breaker = half_open_breaker(clock, success_threshold=2)
        succeed(breaker)
        assert "half_open" == state(breaker)
        succeed(breaker)
        assert "closed" == state(breaker)

    def test_trial_failure_reopens(self, clock):
        """A failed trial call opens the breaker again for a full reset_timeout."""
        breaker = half_open_breaker(clock, reset_timeout=30.0)
        fail(breaker)
        assert ("open", 30.0) == (state(breaker), breaker.seconds_until_trial())

    def test_busy_slot_refuses_others(self, clock):
        """While the only trial call runs, other callers are refused at once."""
        breaker = half_open_breaker(clock)
        breaker.admit()
        with pytest.raises(CircuitOpenError):
            breaker.admit()

    async def test_cancelled_probe_frees_its_slot(self, clock):
        """A cancelled trial call frees its slot and leaves the breaker half-open."""
        breaker = half_open_breaker(clock)
        started = asyncio.Event()

        async def hang() -> None:
            started.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(breaker.call(hang))
        with anyio.fail_after(5):
            await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert "half_open" == state(breaker)
        succeed(breaker)
        assert "closed" == state(breaker)

    def test_excluded_error_frees_slot_without_closing(self, clock):
        """An excluded error on a trial frees the slot; the breaker stays half-open."""
        breaker = half_open_breaker(clock)
        fail(breaker, exc=rate_limit_error())
        assert "half_open" == state(breaker)
        breaker.admit()

    def test_trial_slots_reset_after_reopening(self, clock):
        """Trial slots held when the breaker reopened do not block the next half-open."""
        breaker = half_open_breaker(clock, half_open_max_calls=2)
        held = breaker.admit()
        fail(breaker)
        clock.advance(breaker.policy.reset_timeout)
        breaker.on_cancel(held)
        breaker.admit()
        breaker.admit()
        with pytest.raises(CircuitOpenError):
            breaker.admit()


class TestGenerations:
    def test_success_admitted_before_opening_does_not_close(self, clock):
        """A success of a call sent before the breaker opened leaves it open."""
        breaker = make(clock, fail_max=2)
        early = [breaker.admit() for _ in range(10)]
        for ticket in early[:2]:
            breaker.on_failure(ticket, server_error(), 1.0)
        for ticket in early[2:]:
            breaker.on_success(ticket, 1.0)
        assert "open" == state(breaker)
        clock.advance(breaker.policy.reset_timeout)
        assert "half_open" == state(breaker)

    def test_stale_success_in_half_open_does_not_close(self, clock):
        """A success of a pre-outage call arriving in half-open neither closes nor takes a slot."""
        breaker = make(clock, fail_max=1)
        early = breaker.admit()
        fail(breaker)
        clock.advance(breaker.policy.reset_timeout)
        breaker.admit()  # the trial call, still running
        breaker.on_success(early, 1.0)
        assert "half_open" == state(breaker)
        with pytest.raises(CircuitOpenError):
            breaker.admit()

    def test_stale_failure_after_recovery_does_not_count(self, clock):
        """A failure of a pre-outage call arriving after recovery is not counted."""
        breaker = make(clock, fail_max=1)
        early = breaker.admit()
        fail(breaker)
        clock.advance(breaker.policy.reset_timeout)
        succeed(breaker)
        breaker.on_failure(early, server_error(), 1.0)
        assert ("closed", 0) == (state(breaker), breaker.statistics().consecutive_failures)


class TestRecheck:
    def test_recheck_passes_while_unchanged(self, clock):
        """recheck lets a call go when the breaker has not opened since admission."""
        breaker = make(clock)
        ticket = breaker.admit()
        fail(breaker, 2)
        breaker.recheck(ticket)
        assert "closed" == state(breaker)

    def test_recheck_raises_after_opening(self, clock):
        """recheck refuses a call whose breaker opened while it waited."""
        hook = RecordingHook()
        breaker = make(clock, hook, fail_max=1, reset_timeout=10.0)
        ticket = breaker.admit()
        fail(breaker)
        clock.advance(4.0)
        with pytest.raises(CircuitOpenError) as info:
            breaker.recheck(ticket)
        assert ("svc", 6.0) == (info.value.service, info.value.retry_after)
        assert 1 == breaker.statistics().rejected
        assert ("rejected", "svc") == hook.events[-1]

    def test_recheck_refuses_old_ticket_in_half_open(self, clock):
        """A call admitted before the outage cannot slip in as a trial call."""
        breaker = make(clock, fail_max=1)
        ticket = breaker.admit()
        fail(breaker)
        clock.advance(breaker.policy.reset_timeout)
        with pytest.raises(CircuitOpenError):
            breaker.recheck(ticket)

    def test_recheck_passes_a_trial_call(self, clock):
        """A trial call admitted in half-open passes recheck."""
        breaker = half_open_breaker(clock)
        breaker.recheck(breaker.admit())
        assert "half_open" == state(breaker)


class TestManualControl:
    def test_properties(self, clock):
        """The breaker exposes its service, policy, clock and pybreaker breaker."""
        policy = BreakerPolicy(fail_max=9)
        breaker = AsyncCircuitBreaker(policy, service="svc", clock=clock)
        assert ("svc", policy, clock, 9, "svc") == (
            breaker.service,
            breaker.policy,
            breaker.clock,
            breaker.circuit.fail_max,
            breaker.circuit.name,
        )

    def test_reset_closes_an_open_breaker(self, clock):
        """reset() closes an open breaker and clears the consecutive failures."""
        breaker = open_breaker(clock)
        breaker.reset()
        assert ("closed", 0) == (state(breaker), breaker.statistics().consecutive_failures)
        breaker.admit()

    def test_force_open_refuses_calls(self, clock):
        """force_open() opens a closed breaker for reset_timeout."""
        breaker = make(clock, reset_timeout=7.0)
        breaker.force_open()
        with pytest.raises(CircuitOpenError) as info:
            breaker.admit()
        assert 7.0 == info.value.retry_after

    def test_force_open_again_restarts_the_timeout(self, clock):
        """Forcing an open breaker open again restarts its reset_timeout."""
        breaker = make(clock, reset_timeout=10.0)
        breaker.force_open()
        clock.advance(6.0)
        breaker.force_open()
        assert 10.0 == breaker.seconds_until_trial()
        assert 1 == breaker.statistics().times_opened

    def test_reset_all_closes_every_breaker(self, clock):
        """reset_all() closes every breaker it is given."""
        breakers = [open_breaker(clock), open_breaker(clock), make(clock)]
        reset_all(breakers)
        assert ["closed"] * 3 == [b.state for b in breakers]


class TestEvents:
    def test_full_cycle_events_in_order(self, clock):
        """Transitions and rejections reach the hook in the order they happen."""
        hook = RecordingHook()
        breaker = make(clock, hook, fail_max=2, success_threshold=1)
        fail(breaker, 2)
        with pytest.raises(CircuitOpenError):
            breaker.admit()
        clock.advance(breaker.policy.reset_timeout)
        fail(breaker)
        clock.advance(breaker.policy.reset_timeout)
        succeed(breaker)
        breaker.force_open()
        breaker.reset()
        assert [
            ("transition", "svc", "closed", "open"),
            ("rejected", "svc"),
            ("transition", "svc", "open", "half_open"),
            ("transition", "svc", "half_open", "open"),
            ("transition", "svc", "open", "half_open"),
            ("transition", "svc", "half_open", "closed"),
            ("transition", "svc", "closed", "open"),
            ("transition", "svc", "open", "closed"),
        ] == hook.events

    def test_reset_of_closed_breaker_sends_nothing(self, clock):
        """Resetting a breaker that is already closed is not a transition."""
        hook = RecordingHook()
        breaker = make(clock, hook)
        breaker.reset()
        assert [] == hook.events


class TestGuardAndCall:
    async def test_call_passes_arguments_and_result(self, clock):
        """call() awaits the function with its arguments and returns its result."""
        breaker = make(clock)

        async def add(a: int, *, b: int) -> int:
            return a + b

        assert 5 == await breaker.call(add, 2, b=3)
        assert 1 == breaker.statistics().successes

    async def test_guard_times_the_call_on_the_clock(self, clock):
        """guard() records a success with the latency measured on the breaker's clock."""
        breaker = make(clock)
        async with breaker.guard():
            await clock.sleep(1.5)
        assert 1.5 == breaker.statistics().request_history[-1].latency

    async def test_guard_records_failure_and_reraises(self, clock):
        """guard() counts a failure and lets the caller's exception out unchanged."""
        breaker = make(clock, fail_max=1)
        error = server_error()
        with pytest.raises(type(error)) as info:
            async with breaker.guard():
                raise error
        assert (error, "open") == (info.value, state(breaker))

    async def test_guard_refuses_when_open(self, clock):
        """guard() raises CircuitOpenError without running the block when open."""
        breaker = open_breaker(clock)
        ran = False
        with pytest.raises(CircuitOpenError):
            async with breaker.guard():
                ran = True
        assert ran is False
