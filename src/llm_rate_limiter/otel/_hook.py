# SPDX-License-Identifier: MIT
"""
`OtelHook`: a `MetricsHook` that passes every event on and records it in OpenTelemetry.

Installed beside a provider's `MetricsCollector` (the collector still gets
every event first) by `instrument`, removed by `uninstrument`. The limiter's,
retrier's and breaker's events become ``llm_rate_limiter.*`` instruments, and
those that explain a slow or failed call (a limiter wait, a breaker refusal,
a retry decision, a fallback) become events of the current span: the attempt
span while an attempt runs, the call's CLIENT span between attempts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import Meter

from .._errors import RetryErrorType
from .._hooks import CallOutcome, MetricsHook
from . import _semconv as sc

__all__ = ["Instruments", "OtelHook"]

#: ``llm_rate_limiter.breaker.state`` values.
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
#: Buckets of the rate-limit wait, in seconds (0 is an admission that did not wait).
WAIT_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Instruments:
    """Every instrument of the integration, made once per `instrument` call from one meter."""

    def __init__(self, meter: Meter) -> None:
        histogram, counter, gauge = meter.create_histogram, meter.create_counter, meter.create_gauge
        self.duration = histogram(
            sc.METRIC_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )
        self.tokens = histogram(
            sc.METRIC_TOKENS,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(sc.TOKEN_BUCKETS),
        )
        self.first_chunk = histogram(
            sc.METRIC_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )
        self.wait = histogram(
            "llm_rate_limiter.limiter.wait",
            unit="s",
            description="Seconds a call waited for rate-limit capacity before it was sent.",
            explicit_bucket_boundaries_advisory=list(WAIT_BUCKETS),
        )
        self.denials = counter(
            "llm_rate_limiter.limiter.denials",
            unit="{call}",
            description="Calls the limiter refused.",
        )
        self.cooldowns = counter(
            "llm_rate_limiter.limiter.cooldowns",
            unit="{cooldown}",
            description="Pauses of a provider's whole limiter (Retry-After, exhausted headers).",
        )
        self.working_requests = gauge(
            "llm_rate_limiter.limiter.working_rate.requests",
            unit="{request}/min",
            description="The requests per minute an adaptive limiter admits now.",
        )
        self.working_tokens = gauge(
            "llm_rate_limiter.limiter.working_rate.tokens",
            unit="{token}/min",
            description="The tokens per minute an adaptive limiter admits now.",
        )
        self.rate_limited = counter(
            "llm_rate_limiter.rate_limited",
            unit="{response}",
            description="429 (rate limit) responses from the provider.",
        )
        self.quota = counter(
            "llm_rate_limiter.quota_exhausted",
            unit="{response}",
            description="429 insufficient_quota responses from the provider.",
        )
        self.retries = counter(
            "llm_rate_limiter.retries",
            unit="{retry}",
            description="Retries scheduled, by the kind of error that caused them.",
        )
        self.give_ups = counter(
            "llm_rate_limiter.retry.give_ups",
            unit="{call}",
            description="Calls whose retries ended without success, by the last error's kind.",
        )
        self.breaker_state = gauge(
            "llm_rate_limiter.breaker.state",
            unit="{state}",
            description="Circuit breaker state: 0 closed, 1 half-open, 2 open.",
        )
        self.transitions = counter(
            "llm_rate_limiter.breaker.transitions",
            unit="{transition}",
            description="Circuit breaker state changes.",
        )
        self.rejections = counter(
            "llm_rate_limiter.breaker.rejections",
            unit="{call}",
            description="Calls the circuit breaker refused (open, or no half-open slot).",
        )
        self.fallbacks = counter(
            "llm_rate_limiter.fallbacks",
            unit="{fallback}",
            description="Calls moved to the next provider of their fallback chain.",
        )


def _event(name: str, attributes: dict[str, Any]) -> None:
    """Add an event to the current span, if one is recording."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, attributes)


class OtelHook:
    """
    Passes every event to *inner*, then records it in *instruments* and the current span.

    Args:
        inner: The hook the policy had (its `MetricsCollector`).
        instruments: Where the numbers go.
        service: The provider's configured name.
        provider: Its ``gen_ai.provider.name``.
    """

    __slots__ = (
        "_attrs",
        "_i",
        "attempt_finished",
        "call_finished",
        "call_started",
        "first_token",
        "inner",
        "server_limits_seen",
        "tokens_used",
    )

    def __init__(self, inner: MetricsHook, instruments: Instruments, service: str, provider: str):
        self.inner = inner
        self._i = instruments
        self._attrs = {service: {sc.SERVICE: service, sc.PROVIDER: provider}}
        self.call_started = inner.call_started
        self.call_finished = inner.call_finished
        self.attempt_finished = inner.attempt_finished
        self.server_limits_seen = inner.server_limits_seen
        self.tokens_used = inner.tokens_used
        self.first_token = inner.first_token

    def _base(self, service: str) -> dict[str, Any]:
        attrs = self._attrs.get(service)
        if attrs is None:
            attrs = self._attrs[service] = {sc.SERVICE: service, sc.PROVIDER: service}
        return attrs

    def _with(self, service: str, **more: Any) -> dict[str, Any]:
        return {**self._base(service), **{f"llm_rate_limiter.{k}": v for k, v in more.items()}}

    # -- passed on only, as the inner hook's own bound methods (no extra call) -----------
    # The call's span and the GenAI metrics come from the tracer, which knows the model.

    call_started: Callable[[str], None]
    call_finished: Callable[[str, CallOutcome, float, int], None]
    attempt_finished: Callable[[str, float, RetryErrorType | None], None]
    server_limits_seen: Callable[[str, float | None, float | None], None]
    tokens_used: Callable[[str, float, float | None], None]
    first_token: Callable[[str, float], None]

    def shared_state_changed(self, service: str, available: bool) -> None:
        """Pass on (to a hook that has it)."""
        changed = getattr(self.inner, "shared_state_changed", None)
        if changed is not None:
            changed(service, available)

    # -- recorded --------------------------------------------------------------------------

    def limiter_waited(self, service: str, seconds: float, tokens: float) -> None:
        """Record the wait; a call that waited gets a span event with the seconds."""
        self.inner.limiter_waited(service, seconds, tokens)
        self._i.wait.record(seconds, self._base(service))
        if seconds > 0.0:
            _event(
                "llm_rate_limiter.limiter.wait",
                {sc.WAIT_SECONDS: seconds, sc.WAIT_TOKENS: tokens},
            )

    def limiter_denied(self, service: str, reason: str) -> None:
        """Count the refusal; a span event with its reason."""
        self.inner.limiter_denied(service, reason)
        self._i.denials.add(1, self._with(service, **{"limiter.denial_reason": reason}))
        _event("llm_rate_limiter.limiter.denied", {sc.DENIAL_REASON: reason})

    def rate_limit_violation(self, service: str, retry_after: float | None) -> None:
        """Count the 429."""
        self.inner.rate_limit_violation(service, retry_after)
        self._i.rate_limited.add(1, self._base(service))

    def quota_exhausted(self, service: str) -> None:
        """Count the 429 ``insufficient_quota``."""
        self.inner.quota_exhausted(service)
        self._i.quota.add(1, self._base(service))

    def cooldown_started(self, service: str, seconds: float) -> None:
        """Count the cooldown; a span event with its length."""
        self.inner.cooldown_started(service, seconds)
        self._i.cooldowns.add(1, self._base(service))
        _event("llm_rate_limiter.limiter.cooldown", {sc.COOLDOWN_SECONDS: seconds})

    def working_rate_changed(
        self,
        service: str,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        reason: str,
    ) -> None:
        """Set the working-rate gauges (a rate without a limit is not reported)."""
        changed = getattr(self.inner, "working_rate_changed", None)
        if changed is not None:
            changed(service, requests_per_minute, tokens_per_minute, reason)
        if requests_per_minute is not None:
            self._i.working_requests.set(requests_per_minute, self._base(service))
        if tokens_per_minute is not None:
            self._i.working_tokens.set(tokens_per_minute, self._base(service))

    def breaker_transition(self, service: str, old: str, new: str) -> None:
        """Set the state gauge, count the transition; a span event."""
        self.inner.breaker_transition(service, old, new)
        self._i.breaker_state.set(BREAKER_STATES.get(new, -1), self._base(service))
        self._i.transitions.add(1, self._with(service, **{"breaker.from": old, "breaker.to": new}))
        _event("llm_rate_limiter.breaker.transition", {sc.BREAKER_FROM: old, sc.BREAKER_TO: new})

    def breaker_rejected(self, service: str) -> None:
        """Count the refusal; a span event."""
        self.inner.breaker_rejected(service)
        self._i.rejections.add(1, self._base(service))
        _event("llm_rate_limiter.breaker.rejected", {sc.SERVICE: service})

    def retry_scheduled(
        self, service: str, attempt: int, delay: float, error: RetryErrorType
    ) -> None:
        """Count the retry by kind; a span event with the failed attempt, kind and delay."""
        self.inner.retry_scheduled(service, attempt, delay, error)
        self._i.retries.add(1, self._with(service, **{"retry.kind": error.value}))
        _event(
            "llm_rate_limiter.retry",
            {sc.ATTEMPT: attempt, sc.RETRY_KIND: error.value, sc.RETRY_DELAY: delay},
        )

    def retry_gave_up(self, service: str, attempts: int, error: RetryErrorType) -> None:
        """Count the give-up; a span event."""
        self.inner.retry_gave_up(service, attempts, error)
        self._i.give_ups.add(1, self._with(service, **{"retry.kind": error.value}))
        _event("llm_rate_limiter.retry.gave_up", {sc.ATTEMPT: attempts, sc.RETRY_KIND: error.value})

    def retry_budget_refused(self, service: str) -> None:
        """Pass on; a span event."""
        self.inner.retry_budget_refused(service)
        _event("llm_rate_limiter.retry.budget_refused", {sc.SERVICE: service})

    def fallback_taken(self, service: str, fallback: str, reason: RetryErrorType) -> None:
        """Count the fallback; a span event with from, to and reason."""
        self.inner.fallback_taken(service, fallback, reason)
        more = {"fallback.to": fallback, "fallback.reason": reason.value}
        self._i.fallbacks.add(1, self._with(service, **more))
        _event(
            "llm_rate_limiter.fallback",
            {sc.FALLBACK_FROM: service, sc.FALLBACK_TO: fallback, sc.FALLBACK_REASON: reason.value},
        )
