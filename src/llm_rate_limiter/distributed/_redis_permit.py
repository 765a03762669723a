# SPDX-License-Identifier: MIT
"""`RedisPermit`: one admission by a `RedisRateLimiter`."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..limiter import Permit
    from ._redis_limiter import RedisRateLimiter

__all__ = ["RedisPermit"]


class RedisPermit:
    """
    One admission by a `RedisRateLimiter`; an async context manager.

    Entering waits until the shared buckets (and a shared concurrency slot)
    admit the request, or, while Redis is unavailable and the limiter fails
    open, until this process's local share does; leaving gives the slot back. Call `settle` with the
    response's usage and headers; unsettled, the estimate stands.

    Attributes:
        estimated: The tokens charged at admission.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_charged", "_holder", "_limiter", "_local", "estimated")

    def __init__(self, limiter: RedisRateLimiter, tokens: float) -> None:
        self._limiter = limiter
        self.estimated = tokens
        self._holder = ""
        self._local: Permit | None = None
        self._charged: float | None = None

    async def __aenter__(self) -> RedisPermit:
        self._holder, self._local = await self._limiter._admit(self.estimated)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._limiter._release(self._holder, self._local)

    def settle(
        self, used_tokens: float | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """
        Reconcile the estimate with the response: its usage and its headers.

        The shared buckets are corrected in the background (see
        `RedisRateLimiter.flush`). May be called again (the last usage counts).

        Args:
            used_tokens: ``usage.total_tokens`` of the response, if known.
            headers: The response headers, to correct the shared buckets downward.

        .. versionadded:: 0.1.0
        """
        limiter = self._limiter
        if used_tokens is not None:
            charged = self._charged
            if charged is None:
                limiter.reconcile(self.estimated, used_tokens)
            else:
                limiter.reconcile(charged, used_tokens, estimated=self.estimated)
            self._charged = used_tokens
        if headers is not None:
            limiter.observe_headers(headers)
