# SPDX-License-Identifier: MIT
"""
The pybreaker listener that feeds pybreaker's transitions back to the adapter.

pybreaker calls listeners synchronously, inside the transition, so the
adapter sees every change in the order pybreaker makes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pybreaker

from .._errors import RetryErrorType

__all__ = ["STATE_NAMES", "BreakerListener", "CountedFailure"]

_State = Literal["closed", "open", "half_open"]

#: pybreaker's state names to the library's.
STATE_NAMES: dict[str, _State] = {
    pybreaker.STATE_CLOSED: "closed",
    pybreaker.STATE_OPEN: "open",
    pybreaker.STATE_HALF_OPEN: "half_open",
}


class CountedFailure(Exception):
    """
    The stand-in exception replayed into pybreaker for a counted failure.

    The caller's own exception is never raised again (that would grow its
    traceback); pybreaker and its listeners see this one, with the kind.

    Attributes:
        kind: The classification of the real error.
    """

    def __init__(self, kind: RetryErrorType) -> None:
        super().__init__(kind.value)
        self.kind = kind


class BreakerListener(pybreaker.CircuitBreakerListener):
    """
    Forward pybreaker's state changes, in order, as ``(old, new)`` library state names.

    Successes and failures need no forwarding: the adapter records them where
    the latency and the error's classification are known, before replaying
    them into pybreaker.

    Args:
        on_transition: Called with the old and new state for every change.
    """

    def __init__(self, on_transition: Callable[[_State, _State], None]) -> None:
        self._on_transition = on_transition

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        """Translate the names and forward the change."""
        new = STATE_NAMES[new_state.name]
        old = new if old_state is None else STATE_NAMES[old_state.name]
        self._on_transition(old, new)

    def before_call(
        self, cb: pybreaker.CircuitBreaker, func: Any, *args: Any, **kwargs: Any
    ) -> None:
        """Nothing to do: the adapter admits calls itself."""
