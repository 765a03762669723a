# SPDX-License-Identifier: MIT
"""
`AsyncCircuitBreaker`: a pybreaker circuit breaker for calls made from asyncio.

The state machine and the hot path live in `BreakerCore` (``_core``);
this class adds the convenient ways in (``guard``, ``call``), manual control
and the statistics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import ParamSpec, TypeVar

import pybreaker

from .._clock import SYSTEM_CLOCK, Clock
from .._hooks import NULL_HOOK, MetricsHook
from ..exceptions import CircuitOpenError
from ._core import BreakerCore, BreakerState, Ticket
from ._guard import BreakerGuard
from ._policy import BreakerPolicy
from ._stats import BreakerStatistics

__all__ = ["AsyncCircuitBreaker", "BreakerState", "Ticket", "reset_all"]

P = ParamSpec("P")
T = TypeVar("T")

_DEFAULT_POLICY = BreakerPolicy()


class AsyncCircuitBreaker(BreakerCore):
    """
    A circuit breaker for one service, for calls made from asyncio.

    Use ``async with breaker.guard(): ...`` or ``await breaker.call(fn, ...)``;
    or, on a hot path, the synchronous steps ``admit``, ``recheck`` and one of
    ``on_success``, ``on_failure``, ``on_cancel`` per admitted call.

    Args:
        policy: When to open, probe and close.
        service: The name in errors, metrics and statistics.
        hook: Receives ``breaker_transition`` and ``breaker_rejected`` events.
        clock: The time source (`llm_rate_limiter.testing.FakeClock` in tests).

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    def __init__(
        self,
        policy: BreakerPolicy = _DEFAULT_POLICY,
        *,
        service: str = "default",
        hook: MetricsHook = NULL_HOOK,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(policy, service=service, hook=hook, clock=clock)

    # -- convenience ----------------------------------------------------------------

    def guard(self) -> BreakerGuard:
        """
        Guard one call: ``async with breaker.guard(): await call()``.

        Returns:
            An async context manager that admits on enter and records the
            outcome, timed on the breaker's clock, on exit.
        """
        return BreakerGuard(self)

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """
        Await ``fn(*args, **kwargs)`` through the breaker.

        Raises:
            CircuitOpenError: The breaker refused the call.
        """
        ticket = self.admit()
        mono = self._mono
        start = mono()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self.on_failure(ticket, exc, mono() - start)
            raise
        self.on_success(ticket, mono() - start)
        return result

    async def wait_for_admission(
        self, deadline_at: float | None = None, *, paced: bool = True
    ) -> Ticket:
        """
        Admit one call as soon as the breaker lets it, waiting on its state (no polling).

        While the breaker is open the call waits until the trial instant (or
        until the state changes sooner: a reset, a shared opening ending);
        while every half-open trial slot is taken it waits until the trial
        ends. A successful trial closes the breaker and releases the waiters,
        *paced* ones in a short ramp (1, 2, 4, ... every 50 ms); a failed one
        opens it again and the wait starts over. The refusal is counted once,
        by the `admit` that came first; waiting spends no retry.

        Args:
            deadline_at: The call's deadline on the breaker's clock, or None.
            paced: Release this call in the ramp after a close (pass False when
                a rate limiter paces the calls anyway).

        Returns:
            The ticket, as from `admit`.

        Raises:
            CircuitOpenError: The next trial call would come after *deadline_at*
                (at once), or the deadline passed while waiting; with a note saying
                what to change.

        .. versionadded:: 0.2.0
        """
        mono = self._mono
        while True:
            ticket = self._gen if self._closed else self._admit_open()
            if ticket is not None:
                return ticket
            trial_in = self.seconds_until_trial()
            if deadline_at is None:
                await self._room.wait(trial_in, paced=paced)
                continue
            left = deadline_at - mono()
            if trial_in >= left:
                raise self._too_late(trial_in, left, "the next trial call ({0:.2f}s) is after")
            scope = asyncio.timeout(left)
            try:
                async with scope:
                    await self._room.wait(trial_in, paced=paced)
            except TimeoutError:
                if not scope.expired():
                    raise
                msg = "the deadline passed while waiting ({0:.2f}s) for the breaker's trial before"
                raise self._too_late(left, 0.0, msg) from None

    def _too_late(self, seconds: float, left: float, what: str) -> CircuitOpenError:
        refused = CircuitOpenError(self._service, self.seconds_until_trial())
        refused.add_note(
            f"llm_rate_limiter: {what.format(seconds)} this call's deadline ({max(0.0, left):.2f}s "
            "left): lower BreakerPolicy.reset_timeout, add a fallback provider, or allow a "
            "longer deadline"
        )
        return refused

    def add_open_listener(self, listener: Callable[[], object]) -> None:
        """
        Call *listener* (synchronously, no arguments) each time the breaker opens.

        `ResiliencePolicy` uses it to wake the calls queued in its rate limiter.

        .. versionadded:: 0.2.0
        """
        self._open_listeners.append(listener)

    def close(self) -> None:
        """
        Stop the breaker's timers (its owner is closing); waiting calls look at it once more.

        .. versionadded:: 0.2.0
        """
        self._room.close()

    @property
    def waiting(self) -> int:
        """Calls waiting in `wait_for_admission` right now."""
        return len(self._room)

    # -- state and control ----------------------------------------------------------

    @property
    def service(self) -> str:
        """The service this breaker guards."""
        return self._service

    @property
    def policy(self) -> BreakerPolicy:
        """The policy this breaker follows."""
        return self._policy

    @property
    def circuit(self) -> pybreaker.CircuitBreaker:
        """The underlying pybreaker breaker (read it; drive it only through this adapter)."""
        return self._circuit

    @property
    def state(self) -> BreakerState:
        """The current state; reading it moves an open breaker to half-open once due."""
        return self._current_state()

    def reset(self) -> None:
        """Close the breaker by hand and forget the failures counted so far."""
        self._circuit.close()
        self._window.clear()
        self._armed = False

    def force_open(self) -> None:
        """Open the breaker by hand; it allows trial calls after ``reset_timeout``."""
        self._circuit.open()

    def statistics(self) -> BreakerStatistics:
        """
        Take a snapshot of the state and the monitoring history.

        Returns:
            The frozen statistics.
        """
        state = self._current_state()
        now = self._mono()
        return self._stats.snapshot(
            service=self._service,
            state=state,
            now=now,
            seconds_until_trial=self.seconds_until_trial(),
            consecutive_failures=self._storage.counter,
            window=self._window.totals(now),
        )


def reset_all(breakers: Iterable[AsyncCircuitBreaker]) -> None:
    """
    Close every breaker of *breakers* (the seed's ``reset_all_circuit_breakers``).

    .. versionadded:: 0.1.0
    """
    for breaker in breakers:
        breaker.reset()
