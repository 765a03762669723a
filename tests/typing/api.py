# SPDX-License-Identifier: MIT
"""Type-only use of every public signature: checked by mypy --strict, never run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

import llm_rate_limiter as llmrl
from llm_rate_limiter.exceptions import (
    CircuitOpenError,
    ConfigurationError,
    RateLimitTimeoutError,
    StreamInterruptedError,
)
from llm_rate_limiter.testing import FakeClock, FaultConfig, FaultServer, FaultServerStatistics


def classify(exc: Exception) -> bool:
    kind: llmrl.RetryErrorType = llmrl.classify_error(exc)
    same: llmrl.RetryErrorType = llmrl.classify_error_for_retry(exc)
    status: llmrl.RetryErrorType = llmrl.classify_status(429, code="insufficient_quota")
    return llmrl.is_retryable(kind) and same is status and llmrl.is_quota_error(exc)


def headers(h: dict[str, str]) -> float | None:
    parsed: llmrl.RateLimitHeaders = llmrl.parse_rate_limit_headers(h)
    delay: float | None = llmrl.parse_retry_after(h)
    duration: float | None = llmrl.parse_duration("6m0s")
    groq = llmrl.parse_rate_limit_headers(h, dialect="groq")
    window: float | None = groq.request_window
    body: float | None = llmrl.parse_retry_delay({"error": {"details": []}})
    dialects: frozenset[str] | tuple[str, ...] = llmrl.RATE_LIMIT_DIALECTS
    assert window is None or body is None or dialects
    return parsed.remaining_requests if delay is None else (duration or delay)


def policies() -> llmrl.ResiliencePolicy:
    retry = llmrl.RetryPolicy(
        max_retries=3,
        base_delay=0.5,
        max_delay=10.0,
        deadline=30.0,
        attempt_timeout=5.0,
        budget=llmrl.RetryBudget(ratio=0.2),
    )
    limits = llmrl.RateLimits(requests_per_minute=600, tokens_per_minute=100_000, max_wait=5)
    breaker = llmrl.BreakerPolicy(fail_max=5, reset_timeout=30, half_open_max_calls=1)
    clock: llmrl.Clock = FakeClock()
    return llmrl.ResiliencePolicy(
        "svc",
        retry=retry,
        limits=limits,
        breaker=breaker,
        hook=llmrl.MetricsCollector(clock=clock),
        clock=clock,
    )


policy = policies()


@policy
async def search(query: str, limit: int = 10) -> list[str]:
    return [query] * limit


async def use_policy() -> list[str]:
    found: list[str] = await search("x", limit=2)
    also: list[str] = await policy.call(search, "y")
    retrier = llmrl.Retrier(llmrl.RetryPolicy(), service="svc")
    third: list[str] = await retrier.call(search, "z", limit=1)
    seed: int = await llmrl.retry_with_backoff(lambda: _one(), max_retries=2, timeout=5.0)
    delay: float = llmrl.calculate_backoff_delay(2, 1.0, 30.0, jitter=True)
    _ = (seed, delay)
    return found + also + third


async def _one() -> int:
    return 1


async def use_client() -> None:
    providers = [
        llmrl.ProviderConfig.openai(api_key="sk-..."),
        llmrl.ProviderConfig.moonshot(api_key="..."),
        llmrl.ProviderConfig.compatible("local", "http://127.0.0.1:8000/v1", api_key="x"),
        llmrl.ProviderConfig(name="x", api_key="k", timeout=30.0),
    ]
    async with llmrl.AsyncLLMClient(providers, fallbacks={"openai": ["moonshot"]}) as client:
        info = llmrl.CallInfo()
        reply: ChatCompletion = await client.chat(
            [{"role": "user", "content": "hi"}], provider="openai", model="m", call_info=info
        )
        served: str | None = info.provider
        records: list[llmrl.FallbackRecord] = info.fallbacks
        async for chunk in client.chat_stream([{"role": "user", "content": "hi"}]):
            c: ChatCompletionChunk = chunk
            _ = c
        health: dict[str, Any] = client.health()
        status: dict[str, Any] = client.service_status("openai")
        issues: dict[str, Any] = client.analyze_issues()
        report: dict[str, Any] = client.performance_report()
        client.reset_breaker("openai")
        client.reset_all_breakers()
        monitor: llmrl.Monitor = client.start_monitoring(interval=300)
        await monitor.stop()
        _ = llmrl.unregister_prometheus(client.metrics, registry=None)
        p: llmrl.ResiliencePolicy = client.policy("openai")
        _ = (reply, served, records, health, status, issues, report, p)
    env_client: llmrl.AsyncLLMClient = llmrl.AsyncLLMClient.from_env({"OPENAI_API_KEY": "k"})
    _ = env_client


async def use_seed_functions() -> None:
    reply: ChatCompletion = await llmrl.openai_chat_limited([], max_retries=2)
    other: ChatCompletion = await llmrl.moonshot_chat_limited([], max_retries=3)
    health: dict[str, Any] = llmrl.get_health_status()
    svc: dict[str, Any] = llmrl.get_service_status("openai")
    issues: dict[str, Any] = llmrl.analyze_frequent_issues()
    report: dict[str, Any] = llmrl.get_system_performance_report()
    rl: dict[str, dict[str, Any]] = llmrl.get_comprehensive_rate_limiter_stats()
    cb: dict[str, dict[str, Any]] = llmrl.get_comprehensive_circuit_breaker_stats()
    summary: dict[str, Any] = llmrl.log_monitoring_summary()
    llmrl.reset_circuit_breaker("openai")
    llmrl.reset_all_circuit_breakers()
    monitor: llmrl.Monitor = llmrl.start_monitoring(interval=300)

    @llmrl.rate_limited("openai")
    async def embed(text: str) -> int:
        return len(text)

    n: int = await embed("x")
    _ = (reply, other, health, svc, issues, report, rl, cb, summary, monitor, n)


async def parts() -> None:
    limiter = llmrl.ProviderLimiter(llmrl.RateLimits(requests_per_minute=60), service="s")
    async with limiter.acquire(100) as permit:
        permit.settle(used_tokens=90, headers={"x-ratelimit-remaining-requests": "5"})
    stats: llmrl.LimiterStatistics = limiter.statistics()
    learning = llmrl.ProviderLimiter(llmrl.RateLimits(adaptive=True), service="t", dialect="groq")
    working: float | None = learning.statistics().working_requests_per_minute
    fixed = llmrl.RateLimits(requests_per_minute=60, adaptive=False)
    assert working is None or fixed.adaptive is False
    breaker = llmrl.AsyncCircuitBreaker(llmrl.BreakerPolicy(), service="s")
    async with breaker.guard():
        pass
    bstats: llmrl.BreakerStatistics = breaker.statistics()
    llmrl.reset_all([breaker])
    tokens: int = llmrl.estimate_request_tokens([{"role": "user", "content": "x"}], max_tokens=5)
    _ = (stats, bstats, tokens, llmrl.estimate_tokens("text"))


def errors() -> None:
    try:
        pass
    except CircuitOpenError as exc:
        seconds: float = exc.retry_after
        service: str = exc.service
        _ = (seconds, service)
    except RateLimitTimeoutError as exc:
        waited: float = exc.predicted_wait
        _ = waited
    except StreamInterruptedError as exc:
        chunks: int = exc.chunks
        _ = chunks
    except ConfigurationError as exc:
        setting: str = exc.setting
        _ = setting


async def testing_api() -> None:
    async with FaultServer(FaultConfig(rps=10, error_503_rate=0.1, seed=1)) as server:
        url: str = server.base_url
        server.set_faults(latency=0.1)
        server.outage(timedelta(seconds=5))
        stats: FaultServerStatistics = server.stats()
        _ = (url, stats)


async def distributed() -> None:
    from llm_rate_limiter.distributed import (
        RedisRateLimiter,
        SharedCircuitBreaker,
        redis_from_env,
        shared_policy,
    )

    redis = await redis_from_env()
    limits = llmrl.RateLimits(requests_per_minute=600)
    limiter = RedisRateLimiter(redis, limits, service="openai")
    async with limiter.acquire(10) as permit:
        permit.settle(used_tokens=8)
    breaker = SharedCircuitBreaker(
        llmrl.BreakerPolicy(), redis=redis, service="openai", redis_failure="closed"
    )
    shared: bool = breaker.shared_state_available
    await breaker.aclose()
    policy: llmrl.ResiliencePolicy = shared_policy(
        "openai", redis=redis, limits=limits, redis_timeout=0.5, api_key="k"
    )
    custom = llmrl.ResiliencePolicy("x", limiter=limiter, circuit_breaker=breaker)
    client = llmrl.AsyncLLMClient(
        [llmrl.ProviderConfig(name="a", api_key="k")],
        redis=redis,
        redis_failure="open",
        redis_lease=5.0,
    )
    _ = (policy, custom, client, shared)


async def opentelemetry() -> None:
    from llm_rate_limiter.otel import instrument, uninstrument

    client = llmrl.AsyncLLMClient([llmrl.ProviderConfig(name="a", api_key="k")])
    instrument(client, tracer_provider=None, meter_provider=None, capture_message_content=False)
    instrument(client.policy("a"))
    uninstrument(client)
    thresholds = llmrl.HealthThresholds(window_seconds=30.0, window_min_calls=5)
    trend: str = client.health()["services"]["a"]["trend"]
    _ = (thresholds, trend)
