# SPDX-License-Identifier: MIT
"""Scenario helpers: a client on fault servers through the real SDK, calls, and the findings."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from llm_rate_limiter import (
    AsyncLLMClient,
    BreakerPolicy,
    HealthThresholds,
    MetricsCollector,
    ProviderConfig,
    RateLimits,
    RetryPolicy,
)
from llm_rate_limiter._clock import SYSTEM_CLOCK, Clock
from llm_rate_limiter.testing import FakeClock, FaultServer

MESSAGES = [{"role": "user", "content": "hello"}]
#: Fast retries: the scenarios last well under a second of backoff.
FAST_RETRY = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05)


def provider(
    server: FaultServer,
    name: str = "svc",
    *,
    limits: RateLimits | None = None,
    retry: RetryPolicy = FAST_RETRY,
    breaker: BreakerPolicy | None = None,
) -> ProviderConfig:
    """A provider of the real SDK pointed at *server* (no breaker unless given)."""
    return ProviderConfig(
        name=name,
        base_url=server.base_url,
        api_key=f"sk-scenario-{name}",
        model="mock-gpt",
        limits=limits,
        retry=retry,
        breaker=breaker,
        timeout=10.0,
    )


def client(
    providers: Sequence[ProviderConfig],
    *,
    thresholds: HealthThresholds | None = None,
    clock: FakeClock | None = None,
    metrics_clock: FakeClock | None = None,
    fallbacks: Mapping[str, Sequence[str]] | None = None,
) -> AsyncLLMClient:
    """
    An `AsyncLLMClient` with its own collector.

    *clock* drives the client (limiter, breaker, retries) and, unless
    *metrics_clock* is given, the collector too.
    """
    drive: Clock = clock or SYSTEM_CLOCK
    metrics = MetricsCollector(
        thresholds=thresholds or HealthThresholds(), clock=metrics_clock or drive
    )
    return AsyncLLMClient(
        list(providers), metrics=metrics, fallbacks=dict(fallbacks or {}), clock=drive
    )


async def run_calls(
    c: AsyncLLMClient, n: int, *, concurrent: bool = False, seconds: float = 30.0
) -> Counter[str]:
    """Run *n* calls (bounded by *seconds*); count the outcomes: "ok" or the error's class."""
    results: list[Any] = []
    with anyio.fail_after(seconds):
        if concurrent:
            results = await asyncio.gather(
                *(c.chat(MESSAGES, max_tokens=8) for _ in range(n)), return_exceptions=True
            )
        else:
            for _ in range(n):
                try:
                    results.append(await c.chat(MESSAGES, max_tokens=8))
                except Exception as exc:
                    results.append(exc)
    return Counter(type(r).__name__ if isinstance(r, BaseException) else "ok" for r in results)


def found(c: AsyncLLMClient) -> list[tuple[str, str, str]]:
    """``(service, type, severity)`` of every issue, in the analysis' order."""
    return [(i["service"], i["type"], i["severity"]) for i in c.analyze_issues()["issues"]]


def the_issue(c: AsyncLLMClient, kind: str) -> dict[str, Any]:
    """The one issue of type *kind*."""
    matches: list[dict[str, Any]] = [i for i in c.analyze_issues()["issues"] if i["type"] == kind]
    [match] = matches
    return match
