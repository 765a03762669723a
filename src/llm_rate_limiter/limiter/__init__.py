# SPDX-License-Identifier: MIT
"""
Rate limits: `RateLimits` settings enforced by a `ProviderLimiter`.

Requests, tokens and concurrency per provider on aiolimiter-style leaky
buckets, token estimates reconciled with usage, cooldowns and rate-limit
headers obeyed, and (``RateLimits.adaptive``) working rates that adopt the
provider's announced limits and back off on 429s; `RateLimiterLike` is the
protocol a shared (Redis) limiter implements too. This package knows only
the shared base.
"""

from __future__ import annotations

from ._core import WaitInterrupted
from ._limiter import ProviderLimiter
from ._limits import RateLimits
from ._permit import Permit
from ._protocol import PermitLike, RateLimiterLike
from ._stats import HealthStatus, LimiterStatistics
from ._tokens import estimate_request_tokens, estimate_tokens

__all__ = [
    "HealthStatus",
    "LimiterStatistics",
    "Permit",
    "PermitLike",
    "ProviderLimiter",
    "RateLimiterLike",
    "RateLimits",
    "WaitInterrupted",
    "estimate_request_tokens",
    "estimate_tokens",
]
