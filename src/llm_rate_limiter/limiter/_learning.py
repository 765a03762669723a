# SPDX-License-Identifier: MIT
"""
`Learner`: the working rates of one `ProviderLimiter`, requests and tokens.

It turns what the limiter sees into moves of the two `AdaptiveRate` objects:

- **Announced limits** (``x-ratelimit-limit-requests`` / ``-tokens``): the
  limit over its window (``RateLimitHeaders.request_window`` /
  ``token_window`` when the dialect says, else 60 s) is the provider's rate.
- **A 429**: the kind whose ``remaining`` is exhausted is cut (tokens when
  the requests left are known and not exhausted but the tokens are known,
  requests otherwise), from the rate actually admitted over the last second
  or more when that is known and lower than the working rate. A 429 cuts
  nothing unless a request was admitted since the last cut: a 429 for
  nobody's traffic of ours says nothing about our rate.
- **Time**: `grow` moves the growing rates; the limiter calls it from its
  slow paths, never from the admission fast path.

The admitted counts are sampled (time, requests, tokens) at those same slow
paths, at most every `SAMPLE_EVERY` seconds, in a ring of `SAMPLES`.
"""

from __future__ import annotations

import math
from collections import deque

from .._headers import RateLimitHeaders
from ._adaptive import STEP, AdaptiveRate
from ._limits import RateLimits

__all__ = ["REQUEST_FLOOR", "TOKEN_FLOOR", "Learner"]

#: Cuts never take the request rate below 1 per minute.
REQUEST_FLOOR = 1.0 / 60.0
#: Cuts never take the token rate below 1,000 per minute.
TOKEN_FLOOR = 1_000.0 / 60.0
#: The admitted rate is measured over at least this many seconds (more when sampled less often).
WINDOW = 1.0
#: Samples of the admitted counts are at least this far apart, seconds.
SAMPLE_EVERY = 0.25
#: Samples kept.
SAMPLES = 16
#: Seconds an announced limit applies to when the dialect does not say.
DEFAULT_WINDOW = 60.0


def _per_second(per_minute: float | None) -> float | None:
    return None if per_minute is None else per_minute / 60.0


class Learner:
    """
    The working request and token rates of one limiter (internal).

    Args:
        limits: The configured limits: their rates are the ceilings. Slow start
            applies when no rate and no concurrency limit is configured.
    """

    __slots__ = ("_cut_mark", "_samples", "decreases", "requests", "tokens")

    def __init__(self, limits: RateLimits) -> None:
        nothing = (
            limits.requests_per_minute is None
            and limits.tokens_per_minute is None
            and limits.tokens_per_day is None
            and limits.max_concurrency is None
        )
        self.requests = AdaptiveRate(
            _per_second(limits.requests_per_minute), REQUEST_FLOOR, slow_start=nothing
        )
        self.tokens = AdaptiveRate(_per_second(limits.tokens_per_minute), TOKEN_FLOOR)
        self.decreases = 0
        self._samples: deque[tuple[float, int, float]] = deque(maxlen=SAMPLES)
        # Requests admitted at the last cut: a 429 cuts only after new admissions.
        self._cut_mark = 0

    def next_check(self, now: float) -> float:
        """When a growing rate should next be looked at (``inf``: nothing grows)."""
        if self.requests.growing or self.tokens.growing:
            return now + STEP
        return math.inf

    def known(self, kind: str) -> bool:
        """Whether the rate of *kind* (``"requests"``, ``"tokens"``) is configured or announced."""
        return (self.requests if kind == "requests" else self.tokens).known

    def sample(self, now: float, admitted: int, tokens: float) -> None:
        """Note the admitted counts (kept at most every `SAMPLE_EVERY` seconds)."""
        samples = self._samples
        if not samples or now - samples[-1][0] >= SAMPLE_EVERY:
            samples.append((now, admitted, tokens))

    def admitted_rates(
        self, now: float, admitted: int, tokens: float
    ) -> tuple[float | None, float | None]:
        """Requests and tokens admitted per second lately (None: not measured long enough)."""
        base = None
        for sample in self._samples:
            if now - sample[0] >= WINDOW:
                base = sample
            else:
                break
        if base is None and self._samples and now - self._samples[0][0] >= SAMPLE_EVERY:
            base = self._samples[0]
        if base is None:
            return None, None
        elapsed = now - base[0]
        return (admitted - base[1]) / elapsed, max(0.0, tokens - base[2]) / elapsed

    def announce(self, seen: RateLimitHeaders, now: float) -> bool:
        """Adopt the announced limits of a response; return whether a working rate moved."""
        moved = False
        if seen.limit_requests is not None:
            window = getattr(seen, "request_window", None) or DEFAULT_WINDOW
            moved = self.requests.announce(seen.limit_requests / window, now)
        if seen.limit_tokens is not None:
            window = getattr(seen, "token_window", None) or DEFAULT_WINDOW
            moved = self.tokens.announce(seen.limit_tokens / window, now) or moved
        return moved

    def throttle(
        self,
        seen: RateLimitHeaders | None,
        now: float,
        admitted: int,
        tokens: float,
        resume_at: float | None = None,
    ) -> bool:
        """
        A 429 came although local limiting let its request through; return whether a rate moved.

        *resume_at*: when the pause that comes with the 429 ends.
        """
        if admitted <= self._cut_mark:
            return False
        used_requests, used_tokens = self.admitted_rates(now, admitted, tokens)
        cut = self.requests
        used = used_requests
        if _tokens_exhausted(seen) and (self.tokens.known or used_tokens):
            cut, used = self.tokens, used_tokens
        if not cut.decrease(now, used, resume_at):
            return False
        self._cut_mark = admitted
        self.decreases += 1
        return True

    def grow(self, now: float, demand: bool) -> bool:
        """Move the growing rates to *now*; return whether one moved."""
        moved = self.requests.grow(now, demand)
        return self.tokens.grow(now, demand) or moved


def _tokens_exhausted(seen: RateLimitHeaders | None) -> bool:
    """Whether a 429's headers blame the tokens rather than the requests."""
    if seen is None or seen.remaining_tokens is None:
        return False
    left = seen.remaining_requests
    if left is not None and left < 1.0:
        return False
    return seen.remaining_tokens < 1.0 or left is not None
