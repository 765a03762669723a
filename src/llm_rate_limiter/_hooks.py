# SPDX-License-Identifier: MIT
"""
The one-way channel from policy parts to metrics: the `MetricsHook` protocol.

Retry, limiter, breaker and client call these methods as things happen. Each
call is synchronous and must be cheap (it runs on every request). The default
`NULL_HOOK` ignores everything; `MetricsCollector` records everything. A hook
never calls back into a policy part.
"""

from __future__ import annotations

from typing import Literal, Protocol

from ._errors import RetryErrorType

__all__ = ["NULL_HOOK", "CallOutcome", "MetricsHook", "NullHook"]

#: How a whole call (all its attempts) on one service ended: served (``"success"``),
#: failed at the provider or locally (``"failure"``), turned away by the open
#: circuit breaker without being sent (``"shed"``, since 0.3.0), or cancelled by
#: the caller (``"cancelled"``).
CallOutcome = Literal["success", "failure", "shed", "cancelled"]


class MetricsHook(Protocol):
    """
    Receives events from the policy parts; every method is synchronous and O(1).

    Args common to all methods:
        service: The provider or service name the event belongs to.

    .. versionadded:: 0.1.0
    """

    def call_started(self, service: str) -> None:
        """A call (one or more attempts) began."""

    def call_finished(
        self, service: str, outcome: CallOutcome, latency: float, attempts: int
    ) -> None:
        """A call ended; *latency* covers all attempts and waits."""

    def attempt_finished(self, service: str, latency: float, error: RetryErrorType | None) -> None:
        """One attempt ended: *error* is None on success, else its classification."""

    def limiter_waited(self, service: str, seconds: float, tokens: float) -> None:
        """A call was admitted by the limiter after waiting *seconds* for *tokens*."""

    def limiter_denied(self, service: str, reason: str) -> None:
        """The limiter refused a call (``"max_wait"``, ``"too_large"``, ...)."""

    def rate_limit_violation(self, service: str, retry_after: float | None) -> None:
        """The server answered 429 although the call passed the local limiter."""

    def cooldown_started(self, service: str, seconds: float) -> None:
        """The provider's limiter paused for *seconds* (Retry-After or exhausted headers)."""

    def server_limits_seen(
        self, service: str, limit_requests: float | None, limit_tokens: float | None
    ) -> None:
        """A response announced the provider's real limits (``x-ratelimit-limit-*``)."""

    def working_rate_changed(
        self,
        service: str,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        reason: str,
    ) -> None:
        """
        An adaptive limiter now admits at these rates (None: no limit).

        *reason*: ``"start"`` (its first rates), ``"announced"`` (the provider
        announced a limit), ``"decrease"`` (a 429 cut a rate) or
        ``"increase"`` (a rate grew back after a cut, or in slow start).
        Limiters call it only when the hook has it (hooks older than 0.2.0 may not).

        .. versionadded:: 0.2.0
        """

    def tokens_used(self, service: str, estimated: float, used: float | None) -> None:
        """A response reconciled the estimate *estimated* with *used* (None: no usage)."""

    def breaker_transition(self, service: str, old: str, new: str) -> None:
        """The breaker moved between ``"closed"``, ``"open"`` and ``"half_open"``."""

    def breaker_rejected(self, service: str) -> None:
        """The breaker refused a call (open, or no half-open trial slot free)."""

    def retry_scheduled(
        self, service: str, attempt: int, delay: float, error: RetryErrorType
    ) -> None:
        """Attempt *attempt* failed with *error*; the next starts after *delay* seconds."""

    def retry_gave_up(self, service: str, attempts: int, error: RetryErrorType) -> None:
        """Retries were exhausted (attempts, deadline or a non-retryable error)."""

    def retry_budget_refused(self, service: str) -> None:
        """The retry budget refused a retry that the policy would have made."""

    def quota_exhausted(self, service: str) -> None:
        """The provider refused a call for lack of quota (a 429 ``insufficient_quota``)."""

    def fallback_taken(self, service: str, fallback: str, reason: RetryErrorType) -> None:
        """A call moved from *service* to *fallback* because of *reason*."""

    def shared_state_changed(self, service: str, available: bool) -> None:
        """The shared state (Redis) of *service* became unavailable, or answered again."""

    def first_token(self, service: str, seconds: float) -> None:
        """A stream produced its first chunk *seconds* after the call began."""


class NullHook:
    """
    A `MetricsHook` that records nothing.

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    def call_started(self, service: str) -> None:
        """Ignore."""

    def call_finished(
        self, service: str, outcome: CallOutcome, latency: float, attempts: int
    ) -> None:
        """Ignore."""

    def attempt_finished(self, service: str, latency: float, error: RetryErrorType | None) -> None:
        """Ignore."""

    def limiter_waited(self, service: str, seconds: float, tokens: float) -> None:
        """Ignore."""

    def limiter_denied(self, service: str, reason: str) -> None:
        """Ignore."""

    def rate_limit_violation(self, service: str, retry_after: float | None) -> None:
        """Ignore."""

    def cooldown_started(self, service: str, seconds: float) -> None:
        """Ignore."""

    def server_limits_seen(
        self, service: str, limit_requests: float | None, limit_tokens: float | None
    ) -> None:
        """Ignore."""

    def working_rate_changed(
        self,
        service: str,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        reason: str,
    ) -> None:
        """
        Ignore.

        .. versionadded:: 0.2.0
        """

    def tokens_used(self, service: str, estimated: float, used: float | None) -> None:
        """Ignore."""

    def breaker_transition(self, service: str, old: str, new: str) -> None:
        """Ignore."""

    def breaker_rejected(self, service: str) -> None:
        """Ignore."""

    def retry_scheduled(
        self, service: str, attempt: int, delay: float, error: RetryErrorType
    ) -> None:
        """Ignore."""

    def retry_gave_up(self, service: str, attempts: int, error: RetryErrorType) -> None:
        """Ignore."""

    def retry_budget_refused(self, service: str) -> None:
        """Ignore."""

    def quota_exhausted(self, service: str) -> None:
        """Ignore."""

    def fallback_taken(self, service: str, fallback: str, reason: RetryErrorType) -> None:
        """Ignore."""

    def shared_state_changed(self, service: str, available: bool) -> None:
        """The shared state (Redis) of *service* became unavailable, or answered again."""

    def first_token(self, service: str, seconds: float) -> None:
        """Ignore."""


NULL_HOOK: MetricsHook = NullHook()
