# SPDX-License-Identifier: MIT
"""
The four clients ``llm-rate-limiter bench`` compares, behind one small interface.

- ``ours``: `AsyncLLMClient` with `RateLimits` matched to the server's limits,
  a `RetryPolicy` and a `BreakerPolicy` (fail_max 5, reset_timeout 1 s, one
  half-open probe).
- ``sdk_default``: ``AsyncOpenAI`` with its own retries (``max_retries=2``).
- ``sdk_retries8``: ``AsyncOpenAI(max_retries=8)``.
- ``tenacity_aiolimiter``: what one would write by hand: an ``AsyncLimiter``
  at the server's request rate (and one for tokens when the server limits
  tokens), tenacity's ``AsyncRetrying`` with ``wait_random_exponential`` and
  ``stop_after_attempt``, the SDK's retries off.
- ``ours_wait_open`` (an experiment, not in the default set): ``ours``, with
  the caller sleeping out `CircuitOpenError.retry_after` (plus jitter) and
  trying again while the call's deadline allows, instead of failing at once.

Retries are comparable: 8 at most, backoff from 0.5 s up to 8 s (the SDK's own
schedule), within the scenario's per-call deadline. Every client may be given
the ``httpx2.AsyncClient`` it talks through (the benchmark's HTTP log).
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any, Protocol

import openai

from ...exceptions import CircuitOpenError
from ._scenarios import ALL_CLIENTS, BenchRequest, Scenario

if TYPE_CHECKING:
    import httpx2
    from aiolimiter import AsyncLimiter

__all__ = [
    "BREAKER",
    "BenchClient",
    "make_client",
]

MODEL = "mock-gpt"
API_KEY = "sk-bench-not-a-secret"
_MAX_RETRIES = 8
_BASE_DELAY = 0.5
_MAX_DELAY = 8.0
#: Our client's breaker settings, as ``BreakerPolicy`` keyword arguments.
BREAKER: dict[str, Any] = {"fail_max": 5, "reset_timeout": 1.0, "half_open_max_calls": 1}


class BenchClient(Protocol):
    """What the load loop needs of a client: one call per request, and closing."""

    name: str

    async def call(self, request: BenchRequest) -> None:
        """Send *request*; return on success, raise on failure."""

    async def aclose(self) -> None:
        """Release connections."""


def _attempt_timeout(scenario: Scenario) -> float:
    return min(10.0, scenario.call_deadline)


class _Ours:
    def __init__(
        self,
        base_url: str,
        scenario: Scenario,
        *,
        wait_open: bool = False,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        from ...breaker import BreakerPolicy
        from ...client import AsyncLLMClient, ProviderConfig
        from ...limiter import RateLimits
        from ...retry import RetryPolicy

        self.name = "ours_wait_open" if wait_open else "ours"
        self.wait_open = wait_open
        self.deadline = scenario.call_deadline
        self.rng = random.Random(11)
        limits = None
        if scenario.rps is not None or scenario.tps is not None:
            limits = RateLimits(
                requests_per_minute=scenario.rps * 60.0 if scenario.rps else None,
                tokens_per_minute=scenario.tps * 60.0 if scenario.tps else None,
            )
        retry = RetryPolicy(
            max_retries=_MAX_RETRIES,
            base_delay=_BASE_DELAY,
            max_delay=_MAX_DELAY,
            deadline=scenario.call_deadline,
        )
        config = ProviderConfig(
            name="bench",
            base_url=base_url,
            api_key=API_KEY,
            model=MODEL,
            limits=limits,
            retry=retry,
            breaker=BreakerPolicy(**BREAKER),
            timeout=_attempt_timeout(scenario),
            http_client=http_client,
        )
        self.client = AsyncLLMClient([config])

    async def call(self, request: BenchRequest) -> None:
        if not self.wait_open:
            await self.client.chat(request.messages, max_tokens=request.max_tokens)
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + self.deadline
        while True:
            try:
                await self.client.chat(request.messages, max_tokens=request.max_tokens)
            except CircuitOpenError as exc:
                wait = exc.retry_after + self.rng.uniform(0.05, 0.25)
                if loop.time() + wait >= end:
                    raise
                await asyncio.sleep(wait)
            else:
                return

    async def aclose(self) -> None:
        await self.client.aclose()


class _Sdk:
    def __init__(
        self,
        name: str,
        base_url: str,
        scenario: Scenario,
        max_retries: int,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self.sdk = openai.AsyncOpenAI(
            api_key=API_KEY,
            base_url=base_url,
            max_retries=max_retries,
            timeout=_attempt_timeout(scenario),
            http_client=http_client,
        )

    async def call(self, request: BenchRequest) -> None:
        await self.sdk.chat.completions.create(
            messages=request.messages,  # type: ignore[arg-type]
            model=MODEL,
            max_tokens=request.max_tokens,
        )

    async def aclose(self) -> None:
        await self.sdk.close()


_RETRYABLE = (
    openai.RateLimitError,
    openai.APIConnectionError,
    openai.InternalServerError,
)


class _TenacityAiolimiter(_Sdk):
    def __init__(
        self, base_url: str, scenario: Scenario, http_client: httpx2.AsyncClient | None = None
    ) -> None:
        from aiolimiter import AsyncLimiter

        super().__init__("tenacity_aiolimiter", base_url, scenario, 0, http_client)
        self.deadline = scenario.call_deadline
        self.requests: AsyncLimiter | None = None
        self.tokens: AsyncLimiter | None = None
        if scenario.rps is not None:
            self.requests = AsyncLimiter(scenario.rps, 1.0)
        if scenario.tps is not None:
            self.tokens = AsyncLimiter(scenario.tps, 1.0)

    async def call(self, request: BenchRequest) -> None:
        from tenacity import (
            AsyncRetrying,
            retry_if_exception_type,
            stop_after_attempt,
            stop_after_delay,
            wait_random_exponential,
        )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(_MAX_RETRIES + 1) | stop_after_delay(self.deadline),
            wait=wait_random_exponential(multiplier=_BASE_DELAY, max=_MAX_DELAY),
            retry=retry_if_exception_type(_RETRYABLE),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if self.tokens is not None:
                    # A careful estimate: the server's own count (chars / 4) plus max_tokens.
                    await self.tokens.acquire(request.tokens)
                if self.requests is not None:
                    await self.requests.acquire()
                await super().call(request)


def make_client(
    name: str, base_url: str, scenario: Scenario, http_client: httpx2.AsyncClient | None = None
) -> BenchClient:
    """
    Build the client called *name* (one of `ALL_CLIENTS`) for *scenario*.

    Args:
        name: The client's name.
        base_url: The fault server's URL.
        scenario: The scenario (limits, deadline).
        http_client: The HTTP client to talk through (closed with the client), or None.

    Raises:
        ValueError: An unknown client name.
    """
    if name in ("ours", "ours_wait_open"):
        wait_open = name == "ours_wait_open"
        return _Ours(base_url, scenario, wait_open=wait_open, http_client=http_client)
    if name == "sdk_default":
        return _Sdk(name, base_url, scenario, openai.DEFAULT_MAX_RETRIES, http_client)
    if name == "sdk_retries8":
        return _Sdk(name, base_url, scenario, _MAX_RETRIES, http_client)
    if name == "tenacity_aiolimiter":
        return _TenacityAiolimiter(base_url, scenario, http_client)
    msg = f"unknown client {name!r} (known: {', '.join(ALL_CLIENTS)})"
    raise ValueError(msg)
