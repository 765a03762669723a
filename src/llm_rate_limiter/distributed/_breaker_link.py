# SPDX-License-Identifier: MIT
"""
`SharedStateLink`: whether a `SharedCircuitBreaker` can reach its shared state, and who is told.

The breaker reports each exchange with Redis here (`answered` or `failed`).
The link turns them into two states, available and unavailable, and on each
change between them:

- logs one warning on the ``llm_rate_limiter`` logger, naming the
  service, the ``host:port`` of the Redis node that serves its keys (on a
  cluster, their shard; never a password) and the error's type and message,
  not its repr; the outage and its end are logged as a pair, at most one
  pair per `LOG_INTERVAL` (flapping is summed up in the next pair);
- calls ``hook.shared_state_changed(service, available)`` when the hook has
  that method.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.exceptions

from .._hooks import MetricsHook
from ..exceptions import SharedStateUnavailableError
from ._redis_client import FAILURES, TORN_DOWN, describe, redis_address

__all__ = ["LOG_INTERVAL", "PROBE_INTERVAL", "UNAVAILABLE", "SharedStateLink"]

logger = logging.getLogger("llm_rate_limiter")

#: Seconds between two attempts to reach a Redis that did not answer.
PROBE_INTERVAL = 1.0
#: Seconds between two logged outages of one link (the others are counted).
LOG_INTERVAL = 60.0
#: What an unreachable or slow Redis raises (asyncio's timeout is a TimeoutError).
UNAVAILABLE = (*FAILURES, TimeoutError)


class SharedStateLink:
    """The availability of one breaker's shared state (internal; see the module docstring)."""

    __slots__ = (
        "_failure",
        "_hook_changed",
        "_key",
        "_logged",
        "_next_log",
        "_redis",
        "_service",
        "_since",
        "_unlogged",
        "available",
        "fails_closed",
        "reason",
        "timeout",
        "where",
    )

    def __init__(
        self,
        redis: Any,
        *,
        service: str,
        hook: MetricsHook,
        failure: str,
        timeout: float,
        key: str | None = None,
    ) -> None:
        self._redis = redis
        self._key = key
        self.where = redis_address(redis, key)
        self.timeout = timeout
        self.available = True
        self.reason = ""
        self._service = service
        self._failure = failure
        self.fails_closed = failure == "closed"
        changed = getattr(hook, "shared_state_changed", None)
        self._hook_changed: Callable[[str, bool], object] | None = (
            changed if callable(changed) else None
        )
        self._since = 0.0
        self._next_log = 0.0
        self._logged = False  # the current outage was logged: log its end too
        self._unlogged = 0  # outages since the last logged one

    async def call(
        self, script: Callable[..., Awaitable[Any]], keys: Sequence[str], args: list[Any]
    ) -> Any:
        """
        Run *script* within the timeout (raising `TimeoutError` past it).

        A connection that dropped (a Redis restart leaves the pooled ones dead)
        is retried once, on a new connection, within the same timeout.
        """
        async with asyncio.timeout(self.timeout):
            try:
                return await script(keys=keys, args=args)
            except TORN_DOWN:
                return await script(keys=keys, args=args)

    def answered(self) -> bool:
        """Redis answered; return True if it had been unavailable."""
        if self.available:
            return False
        self.available = True
        self.reason = ""
        if self._logged:
            self._logged = False
            seconds = time.monotonic() - self._since
            logger.warning(
                "SharedCircuitBreaker(%r): Redis at %s answers again after %.1fs; "
                "following the shared breaker state",
                self._service,
                self.where,
                seconds,
                extra={"llmrl": self._fields("shared_state_available", seconds=seconds)},
            )
        self._notify()
        return True

    def failed(self, exc: BaseException) -> bool:
        """An exchange failed with *exc*; return True if Redis had been available."""
        if not self.available:
            return False
        now = time.monotonic()
        self.available = False
        self._since = now
        self.where = redis_address(self._redis, self._key)  # a cluster's map may have changed
        if isinstance(exc, TimeoutError) and not isinstance(exc, redis.exceptions.RedisError):
            self.reason = f"Redis at {self.where} did not answer within {self.timeout:g}s"
        else:
            self.reason = f"Redis at {self.where} failed ({describe(exc)})"
        if now >= self._next_log:
            self._next_log = now + LOG_INTERVAL
            self._logged = True
            mode = (
                "failing closed: calls are refused"
                if self.fails_closed
                else "failing open: the breaker runs on this process's state alone"
            )
            more = f" ({self._unlogged} more outages since the last one logged)"
            logger.warning(
                "SharedCircuitBreaker(%r): %s; %s; probing every %gs%s",
                self._service,
                self.reason,
                mode,
                PROBE_INTERVAL,
                more if self._unlogged else "",
                extra={"llmrl": self._fields("shared_state_unavailable", error=type(exc).__name__)},
            )
            self._unlogged = 0
        else:
            self._unlogged += 1
        self._notify()
        return True

    def unavailable(self) -> SharedStateUnavailableError:
        """The error of a call refused while failing closed."""
        return SharedStateUnavailableError(self._service, self.reason)

    def _fields(self, event: str, **more: object) -> dict[str, object]:
        return {
            "event": event,
            "service": self._service,
            "redis": self.where,
            "redis_failure": self._failure,
            **more,
        }

    def _notify(self) -> None:
        if self._hook_changed is not None:
            self._hook_changed(self._service, self.available)
