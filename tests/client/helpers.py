# SPDX-License-Identifier: MIT
"""Client test helpers: a provider pointed at a fault server, and the messages sent."""

from __future__ import annotations

from typing import Any

from llm_rate_limiter import BreakerPolicy, ProviderConfig, RateLimits, RetryPolicy
from llm_rate_limiter.testing import FaultServer

MESSAGES = [{"role": "user", "content": "Say hello"}]


def provider(
    server: FaultServer,
    name: str = "primary",
    *,
    key: str = "sk-test-key",
    limits: RateLimits | None = None,
    retry: RetryPolicy | None = None,
    breaker: BreakerPolicy | None = None,
    **kwargs: Any,
) -> ProviderConfig:
    """A provider of the real SDK on *server*; *kwargs* go to `ProviderConfig` as they are."""
    return ProviderConfig(
        name=name,
        base_url=server.base_url,
        api_key=key,
        model="mock-gpt",
        limits=limits,
        retry=retry or RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05),
        breaker=breaker,
        timeout=10.0,
        **kwargs,
    )
