# SPDX-License-Identifier: MIT
"""`shared_policy`: a `ResiliencePolicy` whose limiter and breaker live in Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from .._clock import SYSTEM_CLOCK, Clock
from .._hooks import NULL_HOOK, MetricsHook
from .._policy import ResiliencePolicy
from ..breaker import BreakerPolicy
from ..limiter import RateLimits
from ..retry import RetryPolicy
from ._keys import key_fingerprint
from ._redis_base import DEFAULT_LEASE
from ._redis_breaker import SharedCircuitBreaker
from ._redis_client import RedisClient
from ._redis_limiter import RedisRateLimiter

__all__ = ["shared_policy"]


def shared_policy(
    name: str = "default",
    *,
    redis: RedisClient,
    retry: RetryPolicy | None = None,
    limits: RateLimits | None = None,
    breaker: BreakerPolicy | None = None,
    hook: MetricsHook = NULL_HOOK,
    clock: Clock = SYSTEM_CLOCK,
    cost: Callable[..., float] | None = None,
    key_prefix: str = "llmrl",
    lease: float = DEFAULT_LEASE,
    refresh_interval: float = 0.1,
    redis_failure: Literal["open", "closed"] = "open",
    redis_timeout: float = 0.25,
    api_key: str | None = None,
) -> ResiliencePolicy:
    """
    Build a `ResiliencePolicy` whose limits and breaker state are shared through Redis.

    Every process that builds one with the same *name* and *key_prefix*
    draws from one budget (*limits* are totals across processes) and sees
    the others' breaker openings. Retries stay per call.

    Args:
        name: The service name: part of the keys, metrics and errors.
        redis: The client, one node or a Redis Cluster (see `redis_from_env`); use one
            per event loop.
        retry: The retry policy; None disables retries.
        limits: Shared rate limits; None disables the limiter.
        breaker: The breaker policy; None disables the breaker.
        hook: Where this process's events go.
        clock: Time source of the retries and the local breaker.
        cost: Computes a call's token cost from its arguments.
        key_prefix: Prefix of the Redis keys.
        lease: See `RedisRateLimiter`.
        refresh_interval: See `SharedCircuitBreaker`.
        redis_failure: When Redis does not answer within *redis_timeout*:
            ``"open"`` runs on local state, ``"closed"`` raises
            `SharedStateUnavailableError` (see `SharedCircuitBreaker`).
        redis_timeout: Bound of every Redis operation, in seconds.
        api_key: The provider key these calls use: a short fingerprint of it
            (never the key) namespaces the keys, so two API keys of one
            provider have two budgets and two breakers.

    Returns:
        The policy, with a `RedisRateLimiter` as ``limiter`` and a
        `SharedCircuitBreaker` as ``breaker``.

    .. versionadded:: 0.1.0
    """
    fingerprint = key_fingerprint(api_key)
    limiter = (
        RedisRateLimiter(
            redis,
            limits,
            service=name,
            key_prefix=key_prefix,
            hook=hook,
            lease=lease,
            redis_failure=redis_failure,
            redis_timeout=redis_timeout,
            fingerprint=fingerprint,
        )
        if limits is not None
        else None
    )
    circuit_breaker = (
        SharedCircuitBreaker(
            breaker,
            redis=redis,
            service=name,
            key_prefix=key_prefix,
            hook=hook,
            clock=clock,
            refresh_interval=refresh_interval,
            redis_failure=redis_failure,
            redis_timeout=redis_timeout,
            fingerprint=fingerprint,
        )
        if breaker is not None
        else None
    )
    return ResiliencePolicy(
        name,
        retry=retry,
        hook=hook,
        clock=clock,
        cost=cost,
        limiter=limiter,
        circuit_breaker=circuit_breaker,
    )
