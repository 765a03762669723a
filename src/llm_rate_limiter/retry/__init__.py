# SPDX-License-Identifier: MIT
"""
Retries: `RetryPolicy` settings run by a `Retrier` on tenacity.

Jittered exponential backoff, server hints (``retry-after``), a total
deadline, an optional `RetryBudget`, per-call and cumulative statistics. This
package knows only the shared base (errors, headers, clock, hooks): never the
limiter, the breaker or anything above them.
"""

from __future__ import annotations

from ._backoff import calculate_backoff_delay
from ._budget import RetryBudget
from ._policy import RetryPolicy
from ._retrier import Retrier, retry_with_backoff
from ._stats import RetryCallStats, RetryStatistics

__all__ = [
    "Retrier",
    "RetryBudget",
    "RetryCallStats",
    "RetryPolicy",
    "RetryStatistics",
    "calculate_backoff_delay",
    "retry_with_backoff",
]
