# SPDX-License-Identifier: MIT
"""
`BreakerCore`: the hot path of `AsyncCircuitBreaker`, driving pybreaker from asyncio.

pybreaker keeps the states, transitions, counters, listeners and storage. It
has no asyncio path of its own, so the core drives it at the boundary:

- ``admit()`` decides, synchronously, whether a call may go out. In half-open
  it hands out at most ``half_open_max_calls`` trial slots (pybreaker would
  let every caller through).
- When the awaitable finishes, its outcome is classified and replayed into
  pybreaker synchronously (``CircuitBreaker.call`` on a function that returns
  or raises at once), so no lock is ever held across an await. A success in
  the closed state with no failure pending changes nothing in pybreaker and
  is not replayed (that keeps the closed-state cost low).
- Consecutive failures are counted in the order the calls were sent: a
  success ends a failure streak only if it was sent after the streak's first
  failure was (sent time = now - latency). Replies still arriving from before
  an outage do not hold the breaker closed while every new request fails.
- Every admission carries the breaker's *generation*, which grows each time
  the breaker opens. Outcomes of calls admitted in an earlier generation are
  recorded in the statistics but never move the state machine: a success of
  a call sent before an outage cannot close the breaker again.
- Time comes from the injected `Clock`. pybreaker reads ``datetime.now(UTC)``
  only when a call reaches its open state; the core never lets one reach
  it. It remembers when the breaker opened on its own clock and moves
  pybreaker to half-open itself (``CircuitBreaker.half_open()``) once
  ``reset_timeout`` has passed, so tests drive it with ``FakeClock``.

It is for one event loop (no thread safety beyond pybreaker's own).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Literal, TypeAlias

import pybreaker

from .._clock import Clock
from .._errors import classify_error
from .._hooks import MetricsHook
from ..exceptions import CircuitOpenError
from ._listener import BreakerListener, CountedFailure
from ._policy import BreakerPolicy
from ._stats import BreakerRecorder
from ._wait import WaitRoom
from ._window import FAILED, OK, SLOW, make_window, rates_exceeded

__all__ = ["BreakerCore", "BreakerState", "Ticket"]

#: An admission: the breaker generation it was granted in.
Ticket: TypeAlias = int
#: The states as the library names them.
BreakerState = Literal["closed", "open", "half_open"]


def _succeed() -> None:
    """The stand-in pybreaker calls to record a success."""


def _fail(error: CountedFailure) -> None:
    """The stand-in pybreaker calls to record a failure."""
    raise error


class BreakerCore:
    """
    The state and hot path of one service's breaker; see `AsyncCircuitBreaker`.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_armed",
        "_circuit",
        "_clock",
        "_closed",
        "_gen",
        "_hook",
        "_mono",
        "_open_listeners",
        "_opened_at",
        "_policy",
        "_probes",
        "_rates",
        "_room",
        "_service",
        "_slow_after",
        "_state",
        "_stats",
        "_storage",
        "_streak_from",
        "_timed",
        "_wall",
        "_window",
    )

    def __init__(
        self,
        policy: BreakerPolicy,
        *,
        service: str,
        hook: MetricsHook,
        clock: Clock,
    ) -> None:
        self._policy = policy
        self._service = service
        self._hook = hook
        self._clock = clock
        self._mono = clock.monotonic
        self._wall = clock.time
        self._state: BreakerState = "closed"
        self._closed = True
        self._gen = 0
        self._opened_at = 0.0
        self._probes = 0
        self._streak_from = 0.0  # when the first failure of the current streak was sent
        slow = policy.slow_call_duration
        self._slow_after = float("inf") if slow is None else slow
        self._rates = (
            policy.failure_rate_threshold is not None or policy.slow_call_rate_threshold is not None
        )
        self._timed = policy.window_seconds is not None
        # True once the window has held minimum_calls calls: from then on only
        # failures and slow calls can raise a rate, so fast successes skip the check.
        self._armed = False
        self._window = make_window(policy)
        self._stats = BreakerRecorder(self._mono())
        self._room = WaitRoom(clock)
        self._open_listeners: list[Callable[[], object]] = []
        self._storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self._circuit = pybreaker.CircuitBreaker(
            fail_max=policy.fail_max,
            reset_timeout=policy.reset_timeout,
            success_threshold=policy.success_threshold,
            listeners=[BreakerListener(self._on_transition)],
            state_storage=self._storage,
            name=service,
            throw_new_error_on_trip=False,
        )

    # -- the hot path ---------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The clock the breaker reads."""
        return self._clock

    def admit(self) -> Ticket:
        """
        Let one call through, or refuse it.

        Returns:
            The ticket to pass to `recheck` and to exactly one of
            `on_success`, `on_failure` or `on_cancel`.

        Raises:
            CircuitOpenError: The breaker is open, or half-open with every
                trial slot taken.
        """
        if self._closed:
            return self._gen
        ticket = self._admit_open()
        if ticket is None:
            raise self._rejection()
        return ticket

    def recheck(self, ticket: Ticket) -> None:
        """
        Refuse a call admitted earlier if the breaker opened since (call it right before sending).

        A call admitted before the breaker opened holds nothing, so nothing is
        released. If the breaker opened and has closed again since, the call
        may go, but its outcome no longer moves the breaker.

        Raises:
            CircuitOpenError: The breaker opened after *ticket* was admitted
                and is not closed now.
        """
        if ticket != self._gen and not self._closed:
            raise self._rejection()

    def on_success(self, ticket: Ticket, latency: float) -> None:
        """Record that the call admitted with *ticket* succeeded after *latency* seconds."""
        stats = self._stats
        stats.successes += 1
        stats.latency_sum += latency
        if latency > stats.latency_max:
            stats.latency_max = latency
        stats.history.append((self._wall(), True, latency, None))
        if ticket != self._gen:
            return
        slow = latency > self._slow_after
        if self._closed:
            self._window.record(SLOW if slow else OK, self._mono() if self._timed else 0.0)
            # A success ends a failure streak only if it was sent after the streak
            # began: one sent earlier says how the provider was, not how it is.
            if self._storage.counter and self._mono() - latency >= self._streak_from:
                self._circuit.call(_succeed)
            if self._rates and (slow or not self._armed):
                self._check_rates()
        elif self._state == "half_open":
            self._release_probe()
            self._circuit.call(_succeed)

    def on_failure(self, ticket: Ticket, exc: BaseException, latency: float) -> None:
        """
        Record that the call admitted with *ticket* raised *exc* after *latency* seconds.

        Cancellation (and any other non-`Exception`) is handled as `on_cancel`.
        Excluded error kinds count as neither success nor failure; in half-open
        they free the trial slot without closing the breaker.
        """
        if not isinstance(exc, Exception):
            self.on_cancel(ticket)
            return
        kind = classify_error(exc)
        counted = kind not in self._policy.excluded
        self._stats.record_error(self._wall(), latency, kind.value, counted=counted)
        if ticket != self._gen:
            return
        if self._state == "half_open":
            self._release_probe()
        if not counted or self._state == "open":
            return
        if self._closed:
            code = FAILED | SLOW if latency > self._slow_after else FAILED
            self._window.record(code, self._mono() if self._timed else 0.0)
            if not self._storage.counter:
                self._streak_from = self._mono() - latency
        with suppress(CountedFailure):
            self._circuit.call(_fail, CountedFailure(kind))
        if self._closed and self._rates:
            self._check_rates()

    def on_cancel(self, ticket: Ticket) -> None:
        """Record that the call admitted with *ticket* was cancelled; free its trial slot if any."""
        self._stats.cancelled += 1
        self.release(ticket)

    def release(self, ticket: Ticket) -> None:
        """Free the trial slot (if any) of a call admitted but never sent; count nothing."""
        if ticket == self._gen and self._state == "half_open":
            self._release_probe()

    def seconds_until_trial(self) -> float:
        """Seconds until an open breaker allows a trial call; 0 unless open."""
        if self._current_state() != "open":
            return 0.0
        return max(0.0, self._opened_at + self._policy.reset_timeout - self._mono())

    # -- internals ------------------------------------------------------------------

    def _set_hook(self, hook: MetricsHook) -> None:
        """Send this breaker's events to *hook* from now on (instrumentation swaps it)."""
        self._hook = hook

    def _current_state(self) -> BreakerState:
        """The state, after moving an open breaker to half-open if its timeout passed."""
        if self._state == "open" and self._mono() >= self._opened_at + self._policy.reset_timeout:
            self._circuit.half_open()
        return self._state

    def _admit_open(self) -> Ticket | None:
        """Hand out a half-open trial slot if one is free (nothing is counted)."""
        if self._current_state() == "half_open" and self._probes < self._policy.half_open_max_calls:
            self._probes += 1
            return self._gen
        return None

    def _rejection(self) -> CircuitOpenError:
        """Count a refused call and build its error."""
        self._stats.rejected += 1
        self._hook.breaker_rejected(self._service)
        return CircuitOpenError(self._service, self.seconds_until_trial())

    def _release_probe(self) -> None:
        if self._probes > 0:
            self._probes -= 1
            self._room.wake_soon()  # after the transition this outcome may cause

    def _check_rates(self) -> None:
        """Open the breaker if a rate over the window reached its threshold."""
        calls, failures, slow = self._window.totals(self._mono())
        self._armed = calls >= self._policy.minimum_calls
        if self._armed and rates_exceeded(self._policy, calls, failures, slow):
            self._circuit.open()

    def _on_transition(self, old: BreakerState, new: BreakerState) -> None:
        """Follow a pybreaker state change (called by the listener, in order)."""
        now = self._mono()
        if new == "open":
            self._opened_at = now
        if old == new:
            return
        if new == "open":
            self._gen += 1
        elif new == "closed":
            self._window.clear()
            self._armed = False
        self._state = new
        self._closed = new == "closed"
        self._probes = 0
        self._stats.record_transition(self._wall(), now, old, new)
        self._room.wake(closed=self._closed)
        if new == "open":
            for listener in self._open_listeners:
                listener()
        self._hook.breaker_transition(self._service, old, new)
