# SPDX-License-Identifier: MIT
"""
`AsyncCircuitBreaker`: a pybreaker circuit breaker for calls made from asyncio.

The state machine and the hot path live in `BreakerCore` (``_core``);
this class adds the convenient ways in (``guard``, ``call``), manual control
and the statistics.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import ParamSpec, TypeVar

import pybreaker

from .._clock import SYSTEM_CLOCK, Clock
from .._hooks import NULL_HOOK, MetricsHook
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
