# SPDX-License-Identifier: MIT
"""What retrying did: per call (`RetryCallStats`) and per service (`RetryStatistics`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._errors import RetryErrorType

__all__ = ["RetryCallStats", "RetryStatistics"]


@dataclass(slots=True)
class RetryCallStats:
    """
    What one call did; pass one to `Retrier.run` and read it afterwards.

    Attributes:
        attempts: Attempts started (the first one included).
        waited: Total seconds slept between attempts.
        errors: The classification of each failed attempt, in order.

    .. versionadded:: 0.1.0
    """

    attempts: int = 0
    waited: float = 0.0
    errors: list[RetryErrorType] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RetryStatistics:
    """
    A snapshot of a `Retrier`'s counters since it was created.

    Attributes:
        calls: Calls started.
        attempts: Attempts started (first attempts and retries).
        retries: Retries started (``attempts`` minus first attempts, cut ones aside).
        successes: Calls that returned a result.
        successes_on_retry: Calls that returned a result after at least one retry.
        retried_calls: Calls that made at least one retry.
        success_on_retry_rate: ``successes_on_retry / retried_calls`` (0.0 when
            no call was retried): how often retrying saved a call.
        total_wait: Seconds slept between attempts, over all calls.
        error_types: Failed attempts by error type (`RetryErrorType` value).
        give_ups: Calls that failed on a retryable error (attempts, deadline
            or budget exhausted), or on any error after retrying.
        budget_refusals: Retries the `RetryBudget` refused.

    .. versionadded:: 0.1.0
    """

    calls: int
    attempts: int
    retries: int
    successes: int
    successes_on_retry: int
    retried_calls: int
    success_on_retry_rate: float
    total_wait: float
    error_types: dict[str, int]
    give_ups: int
    budget_refusals: int
