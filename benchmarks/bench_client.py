# SPDX-License-Identifier: MIT
"""
The full stack's cost per successful call, against the bare composition, in the same run.

- ``noop``: `ResiliencePolicy` (retry, limiter, breaker, metrics) around a no-op
  coroutine, against ``aiolimiter.AsyncLimiter`` + ``pybreaker`` ``calling()`` +
  ``tenacity.AsyncRetrying`` around the same coroutine.
- ``chat``: `AsyncLLMClient.chat` on an in-process transport (``httpx2.MockTransport``
  returning a canned completion), against the bare composition around
  ``AsyncOpenAI(max_retries=0).chat.completions.create`` on the same transport.
- ``stall``: the event loop's largest stall while 1,000 calls are in flight
  through a limiter that makes them queue.
- ``otel``: the same ``noop`` policy and ``chat`` client instrumented with
  `llm_rate_limiter.otel.instrument`, as a ratio to the uninstrumented one in
  the same run: on OpenTelemetry's no-op providers, on the API's global
  defaults with no SDK set (what ``instrument(client)`` gets before an SDK is
  configured), and on the SDK's (real spans, no exporter; metrics aggregated
  in memory).

Targets: ours at most 0.5x the bare composition (a first attempt that succeeds
need not pay for the retry loop); no stall above 50 ms; instrumented on the
no-op providers at most 1.5x uninstrumented. Run
``python benchmarks/bench_client.py``.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiolimiter
import httpx2
import openai
import pybreaker
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from llm_rate_limiter import (
    AsyncLLMClient,
    BreakerPolicy,
    MetricsCollector,
    ProviderConfig,
    RateLimits,
    ResiliencePolicy,
    RetryPolicy,
)

ROUNDS = 5
CALLS = 5_000
CHAT_CALLS = 500
TARGET = 0.5
OTEL_TARGET = 1.5
STALL_TARGET = 0.050
HUGE = RateLimits(requests_per_minute=600_000_000, tokens_per_minute=6_000_000_000)

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "mock-gpt",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}
BODY = json.dumps(COMPLETION).encode()
MESSAGES = [{"role": "user", "content": "hi"}]


async def noop() -> int:
    """The protected call: returns at once."""
    return 1


def _transport() -> httpx2.MockTransport:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=BODY, headers={"content-type": "application/json"})

    return httpx2.MockTransport(handler)


def _bare_composition() -> Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]:
    limiter = aiolimiter.AsyncLimiter(10_000_000, 1)
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)

    async def run(fn: Callable[[], Awaitable[Any]]) -> Any:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(openai.APIConnectionError),
            wait=wait_random_exponential(multiplier=1, max=30),
            stop=stop_after_attempt(3),
            reraise=True,
        ):
            with attempt, breaker.calling():
                async with limiter:
                    return await fn()
        return None  # pragma: no cover

    return run


def _policy() -> ResiliencePolicy:
    return ResiliencePolicy(
        "bench",
        retry=RetryPolicy(max_retries=2),
        limits=HUGE,
        breaker=BreakerPolicy(),
        hook=MetricsCollector(),
    )


async def _time(fn: Callable[[], Awaitable[Any]], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls


async def _noop_pair() -> tuple[float, float]:
    bare = _bare_composition()
    policy = _policy()
    best_bare = best_ours = float("inf")
    for _ in range(ROUNDS):
        best_bare = min(best_bare, await _time(lambda: bare(noop), CALLS))
        best_ours = min(best_ours, await _time(lambda: policy.run(noop), CALLS))
    return best_ours, best_bare


async def _chat_pair() -> tuple[float, float, float]:
    bare_sdk = openai.AsyncOpenAI(
        api_key="sk-bench",
        base_url="http://bench.invalid/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=_transport()),
    )
    bare = _bare_composition()
    config = ProviderConfig(
        name="bench",
        base_url="http://bench.invalid/v1",
        api_key="sk-bench",
        model="mock-gpt",
        limits=HUGE,
        retry=RetryPolicy(max_retries=2),
        breaker=BreakerPolicy(),
        http_client=httpx2.AsyncClient(transport=_transport()),
    )
    best_bare = best_ours = best_sdk = float("inf")
    async with AsyncLLMClient([config]) as client:

        async def ours() -> Any:
            return await client.chat(MESSAGES)

        async def plain() -> Any:
            return await bare(
                lambda: bare_sdk.chat.completions.create(messages=MESSAGES, model="mock-gpt")  # type: ignore[arg-type]
            )

        async def sdk_alone() -> Any:
            return await bare_sdk.chat.completions.create(messages=MESSAGES, model="mock-gpt")  # type: ignore[arg-type]

        for _ in range(ROUNDS):
            best_sdk = min(best_sdk, await _time(sdk_alone, CHAT_CALLS))
            best_bare = min(best_bare, await _time(plain, CHAT_CALLS))
            best_ours = min(best_ours, await _time(ours, CHAT_CALLS))
    await bare_sdk.close()
    return best_ours, best_bare, best_sdk


def _otel_stacks() -> dict[str, tuple[Any, Any]]:
    """Tracer and meter providers by name: the API's no-op ones, its defaults, the SDK's."""
    from opentelemetry import metrics, trace

    stacks: dict[str, tuple[Any, Any]] = {
        "noop_providers": (trace.NoOpTracerProvider(), metrics.NoOpMeterProvider()),
        "api_default": (None, None),  # the global providers, no SDK set: the API's proxies
    }
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:  # pragma: no cover -- the SDK is a test dependency only
        return stacks
    stacks["sdk"] = (
        TracerProvider(shutdown_on_exit=False),
        MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False),
    )
    return stacks


def _instrument(target: Any, stack: tuple[Any, Any]) -> None:
    from llm_rate_limiter.otel import instrument

    instrument(target, tracer_provider=stack[0], meter_provider=stack[1])


async def _otel_noop() -> dict[str, float]:
    """Per call: the noop policy uninstrumented, and instrumented on each stack, same run."""
    policies = {"plain": _policy()}
    for name, stack in _otel_stacks().items():
        policies[name] = _policy()
        _instrument(policies[name], stack)
    best = dict.fromkeys(policies, float("inf"))
    for _ in range(ROUNDS):
        for name, policy in policies.items():
            best[name] = min(best[name], await _time(functools.partial(policy.run, noop), CALLS))
    return best


async def _otel_chat() -> dict[str, float]:
    """Per call: ``chat()`` on the in-process transport, uninstrumented and instrumented."""

    def config() -> ProviderConfig:
        return ProviderConfig(
            name="openai",
            base_url="http://bench.invalid/v1",
            api_key="sk-bench",
            model="mock-gpt",
            limits=HUGE,
            retry=RetryPolicy(max_retries=2),
            breaker=BreakerPolicy(),
            http_client=httpx2.AsyncClient(transport=_transport()),
        )

    stacks = _otel_stacks()
    clients = {"plain": AsyncLLMClient([config()])}
    for name, stack in stacks.items():
        clients[name] = AsyncLLMClient([config()])
        _instrument(clients[name], stack)
    best = dict.fromkeys(clients, float("inf"))
    try:
        for _ in range(ROUNDS):
            for name, llm in clients.items():
                chat = functools.partial(llm.chat, MESSAGES)
                best[name] = min(best[name], await _time(chat, CHAT_CALLS))
    finally:
        for llm in clients.values():
            await llm.aclose()
    return best


def _otel_figures(noop: dict[str, float], chat: dict[str, float]) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "otel_noop_plain_us": round(noop["plain"] * 1e6, 2),
        "otel_chat_plain_us": round(chat["plain"] * 1e6, 1),
    }
    for name in noop:
        if name != "plain":
            figures[f"otel_noop_{name}_us"] = round(noop[name] * 1e6, 2)
            figures[f"otel_noop_{name}_ratio"] = round(noop[name] / noop["plain"], 3)
            figures[f"otel_chat_{name}_us"] = round(chat[name] * 1e6, 1)
            figures[f"otel_chat_{name}_ratio"] = round(chat[name] / chat["plain"], 3)
    figures["otel_target_ratio"] = OTEL_TARGET
    return figures


class _GcPauses:
    """The longest garbage-collector pause while active (a stall that is the interpreter's)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._start)

    def __enter__(self) -> _GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


async def _stall(in_flight: int = 1_000, *, bare: bool = False) -> tuple[float, float]:
    """Largest event-loop stall (and GC pause) while *in_flight* calls queue and complete."""
    policy = ResiliencePolicy(
        "stall",
        retry=RetryPolicy(max_retries=2),
        limits=RateLimits(requests_per_minute=600_000, max_concurrency=200),
        breaker=BreakerPolicy(),
        hook=MetricsCollector(),
    )
    composition = _bare_composition()
    runner = composition if bare else policy.run
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        loop = asyncio.get_running_loop()
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.005)
            worst = max(worst, loop.time() - before - 0.005)

    async def io() -> None:
        await asyncio.sleep(0.01)

    with _GcPauses() as pauses:
        tick = asyncio.create_task(ticker())
        await asyncio.wait_for(asyncio.gather(*(runner(io) for _ in range(in_flight))), 60)
        done.set()
        await tick
    return worst, pauses.longest


async def _main() -> dict[str, Any]:
    ours, bare = await _noop_pair()
    chat_ours, chat_bare, chat_sdk = await _chat_pair()
    otel = _otel_figures(await _otel_noop(), await _otel_chat())
    stall, gc_pause = max([await _stall() for _ in range(3)])
    bare_stall, bare_gc_pause = max([await _stall(bare=True) for _ in range(3)])
    gc.freeze()  # what an application does after start-up: old objects leave the GC's scans
    frozen_stall, frozen_gc_pause = max([await _stall() for _ in range(3)])
    gc.unfreeze()
    return {
        "noop_ours_us": round(ours * 1e6, 2),
        "noop_bare_us": round(bare * 1e6, 2),
        "noop_ratio": round(ours / bare, 3),
        "chat_ours_us": round(chat_ours * 1e6, 1),
        "chat_bare_us": round(chat_bare * 1e6, 1),
        "chat_ratio": round(chat_ours / chat_bare, 3),
        "chat_sdk_alone_us": round(chat_sdk * 1e6, 1),
        "chat_overhead_ours_us": round((chat_ours - chat_sdk) * 1e6, 1),
        "chat_overhead_bare_us": round((chat_bare - chat_sdk) * 1e6, 1),
        "max_stall_ms_1000_in_flight": round(stall * 1e3, 2),
        "longest_gc_pause_ms": round(gc_pause * 1e3, 2),
        "bare_max_stall_ms_1000_in_flight": round(bare_stall * 1e3, 2),
        "bare_longest_gc_pause_ms": round(bare_gc_pause * 1e3, 2),
        "max_stall_ms_after_gc_freeze": round(frozen_stall * 1e3, 2),
        "longest_gc_pause_ms_after_gc_freeze": round(frozen_gc_pause * 1e3, 2),
        "target_ratio": TARGET,
        "target_stall_ms": STALL_TARGET * 1e3,
        **otel,
    }


def run() -> dict[str, Any]:
    """Run the benchmark and return its figures."""
    return asyncio.run(_main())


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
