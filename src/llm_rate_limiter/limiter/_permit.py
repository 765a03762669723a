# SPDX-License-Identifier: MIT
"""
`Permit`: one admission by a `ProviderLimiter`, and the limiter's fast path.

Entering a permit is the hot path of every call, so the no-wait admission is
inlined in `Permit.__aenter__` (see ``_core`` for the bucket
semantics); everything else is delegated to the limiter.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from ._buckets import _EPS
from ._core import _resolve

if TYPE_CHECKING:
    from ._limiter import ProviderLimiter

__all__ = ["Permit"]


class Permit:
    """
    One admission by a `ProviderLimiter`; an async context manager.

    Entering waits for capacity; leaving frees the concurrency slot. Call
    `settle` with the response's usage and headers; unsettled, the estimate
    stands.

    Attributes:
        estimated: The tokens charged at admission.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_at", "_charged", "_limiter", "estimated")

    def __init__(self, limiter: ProviderLimiter, tokens: float) -> None:
        self._limiter = limiter
        self.estimated = tokens
        # _charged stays unset until settled with a usage (one store less per call);
        # _at is the admission time on the limiter's clock, set on entering.

    async def __aenter__(self) -> Permit:
        # The fast path, inlined as it runs on every call: when nobody queues
        # and everything fits, leak each bucket to now, check, charge; no
        # allocation. Anything else goes to the FIFO queue (_wait).
        limiter = self._limiter
        tokens = self.estimated
        time = limiter._time
        now = time() if time is not None else limiter._bind()
        if (
            limiter._queue
            or now < limiter._cooldown_until
            or limiter._in_flight >= limiter._max_conc
        ):
            await limiter._wait(tokens, now)
            self._at = limiter._now()
            return self
        req = limiter._req
        req_level = 0.0
        if req is not None:
            req_level = req._level
            if req_level:
                req_level -= (now - req._last_check) * req._rate_per_sec
                if req_level < 0.0:
                    req_level = 0.0
            if req_level > limiter._req_room:
                await limiter._wait(tokens, now)
                self._at = limiter._now()
                return self
        if tokens:
            tok = limiter._tok
            if tok is not None:
                tok_level = tok._level
                if tok_level:
                    tok_level -= (now - tok._last_check) * tok._rate_per_sec
                    if tok_level < 0.0:
                        tok_level = 0.0
                # Fits when level + min(tokens, capacity) <= capacity (+ epsilon):
                # a request above capacity waits for an empty bucket.
                if (tok_level + tokens > limiter._tok_room and tok_level > _EPS) or (
                    limiter._day is not None and not limiter._charge_day(tokens, now)
                ):
                    await limiter._wait(tokens, now)
                    self._at = limiter._now()
                    return self
                tok._level = tok_level + tokens
                tok._last_check = now
            elif limiter._day is not None and not limiter._charge_day(tokens, now):
                await limiter._wait(tokens, now)
                self._at = limiter._now()
                return self
        if req is not None:
            req._level = req_level + 1.0
            req._last_check = now
        limiter._in_flight += 1
        stats = limiter._stats
        if now >= stats.window_end:
            stats.roll_window(now)
        stats.window_requests += 1
        stats.window_tokens += tokens
        limiter._on_admit(limiter.service, 0.0, tokens)
        self._at = now
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        limiter = self._limiter
        limiter._in_flight -= 1
        if limiter._head_fut is not None:
            _resolve(limiter._head_fut)

    def settle(
        self, used_tokens: float | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """
        Reconcile the estimate with the response: its usage and its headers.

        May be called again (the last usage given counts).

        Args:
            used_tokens: ``usage.total_tokens`` of the response, if known.
            headers: The response headers, to correct the buckets downward.

        .. versionadded:: 0.1.0
        """
        limiter = self._limiter
        if used_tokens is not None:
            charged: float | None = getattr(self, "_charged", None)
            since = getattr(self, "_at", None)
            if charged is None:
                limiter.reconcile(self.estimated, used_tokens, since=since)
            else:
                limiter.reconcile(charged, used_tokens, estimated=self.estimated, since=since)
            self._charged = used_tokens
        if headers is not None:
            limiter.observe_headers(headers)
