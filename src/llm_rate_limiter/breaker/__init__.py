# SPDX-License-Identifier: MIT
"""
Circuit breaking: `BreakerPolicy` settings run by an `AsyncCircuitBreaker`.

pybreaker's state machine driven from asyncio: limited half-open trial
calls, failure-rate and slow-call windows, cancellation never a failure.
This package knows only the shared base.
"""

from __future__ import annotations

from ._breaker import AsyncCircuitBreaker, reset_all
from ._core import BreakerState, Ticket
from ._policy import BreakerPolicy
from ._stats import BreakerStatistics

__all__ = [
    "AsyncCircuitBreaker",
    "BreakerPolicy",
    "BreakerState",
    "BreakerStatistics",
    "Ticket",
    "reset_all",
]
