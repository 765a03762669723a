# SPDX-License-Identifier: MIT
"""Properties of `ProviderLimiter` under queues: rate over any window, FIFO, nothing lost."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from llm_rate_limiter.exceptions import RequestTooLargeError
from llm_rate_limiter.limiter import ProviderLimiter, RateLimits
from tests.limiter.helpers import VirtualTime, install

_EPS = 1e-6


@dataclass(frozen=True)
class Arrival:
    """One call: *gap* s after the previous one, for *tokens*, holding its permit *hold* s."""

    gap: float
    tokens: float
    used: float | None  # the usage it settles with (None: the estimate stands)
    hold: float
    cancel_after: float | None  # the caller cancels it this long after it arrived


@dataclass(frozen=True)
class Admission:
    """When a call was admitted, its index, its estimate and the tokens it finally used."""

    at: float
    index: int
    estimate: float
    charged: float


Scenario = tuple[RateLimits, list[Arrival]]


def token_capacity(limits: RateLimits) -> float:
    """The token bucket: tokens_per_minute / 60 per second times burst seconds."""
    assert limits.tokens_per_minute is not None
    return limits.tokens_per_minute / 60.0 * limits.burst


@st.composite
def arrivals(draw: st.DrawFn, limits: RateLimits, late_settle: bool = False) -> list[Arrival]:
    """Arrivals bunched enough to queue, sized around the bucket, some cancelled, some settled."""
    cap = token_capacity(limits)
    tpm = limits.max_request_tokens
    sizes = st.one_of(
        st.integers(0, math.ceil(cap) + 2).map(float),
        st.sampled_from([cap, cap - 0.5, cap + 0.5, 2.5 * cap, tpm, tpm + 1.0]),
    )
    gaps = st.sampled_from([0.0, 0.0, 0.0, 0.01, 0.05, 0.1, 0.3, 1.0])
    holds = st.sampled_from([0.0, 0.0, 0.05, 0.5, 2.0])
    cancels = st.one_of(st.none(), st.none(), st.sampled_from([0.0, 0.05, 0.3, 1.0, 3.0]))
    result = []
    for _ in range(draw(st.integers(1, 18))):
        tokens = draw(sizes)
        top = tokens if late_settle else tokens + cap  # late settlements only give credit
        used = draw(st.one_of(st.none(), st.just(0.0), st.floats(0.0, top)))
        result.append(Arrival(draw(gaps), tokens, used, draw(holds), draw(cancels)))
    return result


limits_strategy = st.builds(
    RateLimits,
    requests_per_minute=st.sampled_from([60.0, 120.0, 600.0]),
    tokens_per_minute=st.sampled_from([600.0, 1_000.0]),
    tokens_per_day=st.sampled_from([None, None, 3_000.0]),  # a day's quota a run can exhaust
    burst=st.sampled_from([0.5, 1.0, 2.0]),
    max_concurrency=st.sampled_from([None, 1, 3]),
)


@dataclass
class Outcome:
    """What a run left behind: admissions, each task's result, cancellation times, counters."""

    admitted: list[Admission]
    results: list[object]
    cancel_at: dict[int, float]
    peak_in_flight: int
    queued: int
    in_flight: int


async def settle(vt: VirtualTime) -> None:
    """Run every ready callback, however long the chain of wake-ups (no time passes)."""
    for _ in range(10_000):
        await asyncio.sleep(0)
        if not vt.loop._ready:  # type: ignore[attr-defined]
            return
    raise AssertionError("livelock: callbacks keep scheduling callbacks")


async def advance(
    vt: VirtualTime, seconds: float, until: asyncio.Future[list[object]] | None = None
) -> Any:
    """Move virtual time by *seconds* (or, with *until*, as far as it takes), timer by timer."""
    target = vt.now + seconds
    while True:
        await settle(vt)
        if until is not None and until.done():
            return until.result()
        due = vt._next_timer()
        if due is None and until is not None:
            msg = "deadlock: calls wait but no timer is scheduled"
            raise AssertionError(msg)
        if due is None or due > target:
            vt.now = target
            return await settle(vt)
        vt.now = max(vt.now, due)


async def run(limits: RateLimits, calls: list[Arrival], *, late_settle: bool = False) -> Outcome:
    """Run *calls* through a fresh limiter on virtual time; settle at admission or at the end."""
    vt = install(asyncio.get_running_loop())
    # asyncio fires timers up to its clock resolution (1e-9 s) early; real time has moved on by
    # the time the callback looks, virtual time has not: make a timer due when its time comes.
    vt.loop._clock_resolution = 1e-12  # type: ignore[attr-defined]
    limiter = ProviderLimiter(limits)
    admitted: list[Admission] = []
    flight = [0, 0]

    async def call(index: int, arrival: Arrival) -> None:
        async with limiter.acquire(arrival.tokens) as permit:
            used = arrival.tokens if arrival.used is None else arrival.used
            if not late_settle and arrival.used is not None:
                permit.settle(used_tokens=arrival.used)
            admitted.append(Admission(vt.now, index, arrival.tokens, used))
            flight[0] += 1
            flight[1] = max(flight)
            try:
                await asyncio.sleep(arrival.hold)
            finally:
                flight[0] -= 1
                if late_settle and arrival.used is not None:
                    permit.settle(used_tokens=arrival.used)

    tasks, cancel_at = [], {}
    for index, arrival in enumerate(calls):
        await advance(vt, arrival.gap)
        task = asyncio.ensure_future(call(index, arrival))
        if arrival.cancel_after is not None:
            asyncio.get_running_loop().call_later(arrival.cancel_after, task.cancel)
            cancel_at[index] = vt.now + arrival.cancel_after
        tasks.append(task)
    results = await advance(vt, math.inf, asyncio.gather(*tasks, return_exceptions=True))
    stats = limiter.statistics()
    return Outcome(admitted, results, cancel_at, flight[1], stats.queued, stats.in_flight)


def check_windows(limits: RateLimits, admitted: list[Admission]) -> None:
    """
    Over every window [t_i, t_j] between two admissions (so every window of every width):
    requests <= capacity + rate * width, and tokens <= capacity + rate * width + excess,
    the excess being what the last admission that checked the token bucket (estimate > 0)
    used above what it checked (debt, or its size above the bucket), plus the usage of the
    zero-estimate admissions after it (they skip the token bucket).
    """
    assert limits.requests_per_minute is not None
    assert limits.tokens_per_minute is not None
    req_rate = limits.requests_per_minute / 60.0
    req_cap = max(1.0, req_rate * limits.burst)
    tok_rate = limits.tokens_per_minute / 60.0
    tok_cap = token_capacity(limits)
    for i, first in enumerate(admitted):
        tokens = checked_excess = unchecked = 0.0
        for j in range(i, len(admitted)):
            last = admitted[j]
            width = last.at - first.at
            tokens += last.charged
            if last.estimate > 0.0:
                checked_excess = max(0.0, last.charged - min(last.estimate, tok_cap))
                unchecked = 0.0
            else:
                unchecked += last.charged
            assert j - i + 1 <= req_cap + req_rate * width + _EPS, (first, last)
            bound = tok_cap + tok_rate * width + checked_excess + unchecked
            assert tokens <= bound + _EPS, (first, last)


def check_admissions(limits: RateLimits, calls: list[Arrival], out: Outcome) -> None:
    """FIFO, none lost, none admitted after its cancellation, too-large iff above the limit."""
    indices = [a.index for a in out.admitted]
    assert sorted(set(indices)) == indices  # arrival order, each at most once
    at = {a.index: a.at for a in out.admitted}
    for index, (arrival, result) in enumerate(zip(calls, out.results, strict=True)):
        too_large = arrival.tokens > limits.max_request_tokens
        assert too_large == isinstance(result, RequestTooLargeError), (index, result)
        if too_large:
            assert index not in at
        elif index not in out.cancel_at:
            assert (index in at, None) == (True, result)
        elif index in at:
            assert at[index] <= out.cancel_at[index] + _EPS
        else:
            assert isinstance(result, asyncio.CancelledError), (index, result)
    assert (0, 0) == (out.queued, out.in_flight)
    assert out.peak_in_flight <= (limits.max_concurrency or len(calls))


@st.composite
def scenarios(draw: st.DrawFn, late_settle: bool = False) -> Scenario:
    limits = draw(limits_strategy)
    return limits, draw(arrivals(limits, late_settle))


class TestAdmissions:
    @settings(max_examples=70, deadline=None)
    @given(scenario=scenarios())
    def test_rate_order_and_completeness(self, scenario: Scenario) -> None:
        """Queues, cancellations, credit and debt never break the rate, FIFO or completeness."""
        limits, calls = scenario
        out = asyncio.run(run(limits, calls))
        check_admissions(limits, calls, out)
        check_windows(limits, out.admitted)

    @settings(max_examples=40, deadline=None)
    @given(scenario=scenarios(late_settle=True))
    @example(
        scenario=(
            RateLimits(requests_per_minute=600, tokens_per_minute=600, burst=1.0),
            [
                Arrival(0.0, 10.0, 0.0, 1.0, None),  # used nothing: a 10-token credit at 1 s
                Arrival(0.9, 9.0, None, 0.0, None),  # bucket at 1 + 9: full
                Arrival(0.1, 10.0, None, 0.0, None),  # admitted at once after the credit
            ],
        )
    )
    def test_late_credit_keeps_the_rate(self, scenario: Scenario) -> None:
        """A credit settled when the response ends (after others were admitted) keeps the rate."""
        limits, calls = scenario
        out = asyncio.run(run(limits, calls, late_settle=True))
        check_admissions(limits, calls, out)
        check_windows(limits, out.admitted)
