# SPDX-License-Identifier: MIT
"""`BreakerGuard`: the async context manager behind ``AsyncCircuitBreaker.guard()``."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._core import BreakerCore, Ticket

__all__ = ["BreakerGuard"]


class BreakerGuard:
    """
    The async context manager of `AsyncCircuitBreaker.guard`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_breaker", "_start", "_ticket")

    def __init__(self, breaker: BreakerCore) -> None:
        self._breaker = breaker

    async def __aenter__(self) -> Ticket:
        """Admit the call (or raise `CircuitOpenError`) and start its timer."""
        self._ticket = self._breaker.admit()
        self._start = self._breaker.clock.monotonic()
        return self._ticket

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Record the outcome; exceptions propagate."""
        breaker = self._breaker
        latency = breaker.clock.monotonic() - self._start
        if exc is None:
            breaker.on_success(self._ticket, latency)
        else:
            breaker.on_failure(self._ticket, exc, latency)
