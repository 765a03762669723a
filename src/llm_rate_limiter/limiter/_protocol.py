# SPDX-License-Identifier: MIT
"""What `ResiliencePolicy` needs of a rate limiter: in-process or shared through Redis."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ._limits import RateLimits
from ._stats import LimiterStatistics

__all__ = ["PermitLike", "RateLimiterLike"]


class PermitLike(Protocol):
    """
    Capacity held by one attempt; told what the response said about its cost.

    .. versionadded:: 0.1.0
    """

    def settle(
        self, used_tokens: float | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Reconcile the estimate with the tokens used; correct from the headers."""


class RateLimiterLike(Protocol):
    """
    A rate limiter `ResiliencePolicy` can drive (`ProviderLimiter`, `RedisRateLimiter`).

    .. versionadded:: 0.1.0
    """

    @property
    def limits(self) -> RateLimits:
        """The limits it enforces."""
        ...

    def acquire(self, tokens: float = 0.0) -> AbstractAsyncContextManager[PermitLike]:
        """Wait for capacity for one request of *tokens* tokens."""
        ...

    def on_rate_limited(
        self, retry_after: float | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """The server answered 429: cool down."""

    def interrupt_waiters(self) -> int:
        """Send the calls queued in this process away with `WaitInterrupted` (breaker opened)."""
        ...

    def statistics(self) -> LimiterStatistics:
        """This process's view of the limiter."""
        ...
