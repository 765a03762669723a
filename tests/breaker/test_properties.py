# SPDX-License-Identifier: MIT
"""A reference model of the breaker's state machine, checked against `AsyncCircuitBreaker`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from llm_rate_limiter.breaker import AsyncCircuitBreaker, BreakerPolicy
from llm_rate_limiter.exceptions import CircuitOpenError
from llm_rate_limiter.testing import FakeClock
from tests.helpers import auth_error, bad_request_error, rate_limit_error, server_error

# Failures the default policy counts, and the kinds it excludes (429, 401, 400).
COUNTED = [server_error(), TimeoutError("attempt timed out"), ConnectionError("reset by peer")]
EXCLUDED = [rate_limit_error(), auth_error(), bad_request_error()]
# How admitted calls end: success and counted failure most often, each other way too.
OUTCOMES = ["success"] * 3 + ["counted"] * 3 + ["excluded", "cancel", "cancelled_error", "release"]
# Multiples of 1/4 s: the fake clock's sums stay exact, so timeouts are hit exactly.
quarters = st.integers(0, 12).map(lambda q: q / 4)


@dataclass(frozen=True)
class Admission:
    """A call the model admitted: when, the openings seen so far, whether it holds a trial slot."""

    sent: float
    openings: int
    trial: bool


Call = tuple[int, Admission]  # the breaker's ticket and the model's admission


class Model:
    """
    The breaker as specified: closed, open and half-open, with trial slots and generations.

    Closed opens after fail_max consecutive counted failures, counted in the order the
    calls were sent (a success ends the streak only if it was sent no earlier than the
    streak's first failure); open becomes half-open reset_timeout after it opened;
    half-open admits at most half_open_max_calls trial calls, closes after
    success_threshold successes and opens again on a counted failure. Excluded kinds count
    as neither success nor failure; cancel and release only free a trial slot. Outcomes of
    calls admitted before the latest opening change nothing.
    """

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state = "closed"
        self.opened_at = 0.0
        self.openings = 0
        self.failures = 0  # consecutive counted failures while closed
        self.streak_from = 0.0  # when the streak's first failure was sent
        self.successes = 0  # successful trials in this half-open period
        self.trials = 0  # trial slots taken in this half-open period

    def enter(self, state: str, now: float) -> None:
        if state == "open":
            self.opened_at = now
            self.openings += 1
        self.failures = 0 if state == "closed" else self.failures
        self.successes = 0
        self.trials = 0
        self.state = state

    def tick(self, now: float) -> None:
        if self.state == "open" and now >= self.opened_at + self.policy.reset_timeout:
            self.enter("half_open", now)

    def retry_after(self, now: float) -> float:
        return (
            max(0.0, self.opened_at + self.policy.reset_timeout - now)
            if self.state == "open"
            else 0.0
        )

    def admit(self, now: float) -> Admission | None:
        if self.state == "closed":
            return Admission(now, self.openings, trial=False)
        if self.state == "half_open" and self.trials < self.policy.half_open_max_calls:
            self.trials += 1
            return Admission(now, self.openings, trial=True)
        return None

    def free_slot(self, call: Admission) -> bool:
        """Free *call*'s trial slot; False when its outcome must change nothing else."""
        if call.openings != self.openings:
            return False
        if self.state == "half_open":
            assert call.trial
            self.trials -= 1
        return True

    def success(self, call: Admission, now: float) -> None:
        if not self.free_slot(call):
            return
        if self.state == "closed":
            self.failures = 0 if call.sent >= self.streak_from else self.failures
        elif self.state == "half_open":
            self.successes += 1
            if self.successes >= self.policy.success_threshold:
                self.enter("closed", now)

    def failure(self, call: Admission, counted: bool, now: float) -> None:
        if not self.free_slot(call) or not counted:
            return
        if self.state == "half_open":
            self.enter("open", now)
        elif self.state == "closed":
            self.streak_from = call.sent if self.failures == 0 else self.streak_from
            self.failures += 1
            if self.failures >= self.policy.fail_max:
                self.enter("open", now)


class BreakerMachine(RuleBasedStateMachine):
    """Random operations on a breaker and on the model; they must agree after every step."""

    calls = Bundle("calls")

    @initialize(
        fail_max=st.integers(1, 4),
        reset_timeout=st.sampled_from([0.0, 0.5, 1.0, 2.25]),
        half_open_max_calls=st.integers(1, 3),
        success_threshold=st.integers(1, 3),
    )
    def setup(
        self, fail_max: int, reset_timeout: float, half_open_max_calls: int, success_threshold: int
    ) -> None:
        policy = BreakerPolicy(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            half_open_max_calls=half_open_max_calls,
            success_threshold=success_threshold,
        )
        self.clock = FakeClock()
        self.breaker = AsyncCircuitBreaker(policy, service="svc", clock=self.clock)
        self.model = Model(policy)
        self.outstanding: list[Call] = []  # admitted, not finished yet

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    @rule(target=calls)
    def admit(self):
        expected = self.model.admit(self.now)
        if expected is None:
            with pytest.raises(CircuitOpenError) as refused:
                self.breaker.admit()
            assert self.model.retry_after(self.now) == refused.value.retry_after
            return multiple()
        call = (self.breaker.admit(), expected)
        self.outstanding.append(call)
        return call

    @rule(call=consumes(calls), outcome=st.sampled_from(OUTCOMES), pick=st.integers(0, 2))
    def finish(self, call: Call, outcome: str, pick: int) -> None:
        self.outstanding = [other for other in self.outstanding if other is not call]
        ticket, admission = call
        latency = self.now - admission.sent
        if outcome == "success":
            self.breaker.on_success(ticket, latency)
            self.model.success(admission, self.now)
        elif outcome in ("counted", "excluded"):
            exc = (COUNTED if outcome == "counted" else EXCLUDED)[pick]
            self.breaker.on_failure(ticket, exc, latency)
            self.model.failure(admission, outcome == "counted", self.now)
        else:
            if outcome == "cancel":
                self.breaker.on_cancel(ticket)
            elif outcome == "cancelled_error":
                self.breaker.on_failure(ticket, asyncio.CancelledError(), latency)
            else:
                self.breaker.release(ticket)
            self.model.free_slot(admission)

    @rule(seconds=quarters, control=st.sampled_from([None, None, None, "reset", "force_open"]))
    def step(self, seconds: float, control: str | None) -> None:
        self.clock.advance(seconds)
        if control == "reset":
            self.breaker.reset()
            self.model.enter("closed", self.now)
        elif control == "force_open":
            self.breaker.force_open()
            self.model.enter("open", self.now)

    @invariant()
    def agrees(self) -> None:
        self.model.tick(self.now)
        assert self.model.state == self.breaker.state
        assert self.model.retry_after(self.now) == self.breaker.seconds_until_trial()
        if self.model.state == "closed":
            assert self.model.failures == self.breaker.statistics().consecutive_failures
        for ticket, admission in self.outstanding:
            stale = admission.openings != self.model.openings and self.model.state != "closed"
            try:
                self.breaker.recheck(ticket)
            except CircuitOpenError:
                assert stale
            else:
                assert not stale


TestBreakerModel = BreakerMachine.TestCase
TestBreakerModel.settings = settings(max_examples=100, stateful_step_count=35, deadline=None)
TestBreakerModel.__doc__ = "The breaker agrees with the reference model after every operation."
