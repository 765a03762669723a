# SPDX-License-Identifier: MIT
"""The seed's function names, over a default client talking to the fault server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

import llm_rate_limiter as llmrl
from llm_rate_limiter import AsyncLLMClient, BreakerPolicy, ProviderConfig, RetryPolicy
from llm_rate_limiter.testing import FakeClock, FaultConfig, FaultServer

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def default_client() -> AsyncIterator[tuple[AsyncLLMClient, FaultServer]]:
    async with FaultServer(FaultConfig(seed=3)) as server:
        retry = RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.02)
        providers = [
            ProviderConfig.openai(
                api_key="sk-a", base_url=server.base_url, model="mock-gpt", retry=retry
            ),
            ProviderConfig.moonshot(
                api_key="sk-b",
                base_url=server.base_url,
                model="mock-gpt",
                breaker=BreakerPolicy(fail_max=1),
                environ={},
            ),
        ]
        client = AsyncLLMClient(providers, clock=FakeClock())
        llmrl.set_default_client(client)
        try:
            yield client, server
        finally:
            llmrl.set_default_client(None)
            await client.aclose()


async def test_seed_functions(
    default_client: tuple[AsyncLLMClient, FaultServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Every seed name works over the default client and reports what happened."""
    client, server = default_client
    reply = await llmrl.openai_chat_limited(MESSAGES, max_retries=2, temperature=0.4)
    assert reply.choices[0].message.content
    moonshot_reply = await llmrl.moonshot_chat_limited(MESSAGES)
    assert 2 == server.stats().succeeded
    health = llmrl.get_health_status()
    assert {"openai", "moonshot"} <= set(health["services"])
    assert "healthy" == llmrl.get_service_status("openai")["status"]
    assert 0 == llmrl.analyze_frequent_issues()["issues_found"]
    report = llmrl.get_system_performance_report()
    assert 1.0 == report["performance_metrics"]["success_rate"]
    assert {"openai", "moonshot"} <= set(llmrl.get_comprehensive_rate_limiter_stats())
    assert {"openai", "moonshot"} <= set(llmrl.get_comprehensive_circuit_breaker_stats())
    with caplog.at_level(logging.INFO, logger="llm_rate_limiter"):
        summary = llmrl.log_monitoring_summary()
    assert {
        "event": "monitoring_summary",
        "status": "healthy",
        "health_score": 100.0,
        "total_requests": 2,
        "success_rate": 1.0,
        "average_response_time": 0.0,  # the fake clock does not move during a call
        "p95_latency": 0.0,
        "retries": 0,
        "denials": 0,
        "breaker_openings": 0,
        "issues_found": 0,
        "issues": [],
    } == {k: v for k, v in summary.items() if k != "services"}
    assert reply.usage is not None
    assert moonshot_reply.usage is not None
    used = {"openai": reply.usage.total_tokens, "moonshot": moonshot_reply.usage.total_tokens}
    assert {
        name: {"status": "healthy", "requests": 1, "circuit_state": "closed", "tokens_used": n}
        for name, n in used.items()
    } == {
        name: {k: s[k] for k in ("status", "requests", "circuit_state", "tokens_used")}
        for name, s in summary["services"].items()
    }
    records = [r for r in caplog.records if r.name == "llm_rate_limiter"]
    assert [("INFO", summary)] == [(r.levelname, r.llmrl) for r in records]  # type: ignore[attr-defined]
    message = "llm_rate_limiter summary: status=healthy score=100.0 requests=2"
    assert f"{message} success_rate=1.000 issues=0" == records[0].getMessage()
    breaker = client.policy("moonshot").breaker
    assert breaker is not None
    breaker.force_open()
    llmrl.reset_circuit_breaker("moonshot")
    assert "closed" == breaker.state
    breaker.force_open()
    llmrl.reset_all_circuit_breakers()
    assert "closed" == breaker.state
    monitor = llmrl.start_monitoring(interval=60)
    assert monitor.running
    await monitor.stop()


async def test_rate_limited_decorator(default_client: tuple[AsyncLLMClient, FaultServer]) -> None:
    """@rate_limited("openai") runs any coroutine through the openai provider's policy."""
    client, _ = default_client

    @llmrl.rate_limited("openai")
    async def embed(text: str) -> int:
        return len(text)

    assert 5 == await embed("hello")
    assert 1 == client.metrics.service_metrics("openai")["successful_requests"]


def test_default_client_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a default client, one is built from the environment."""
    llmrl.set_default_client(None)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.delenv("MOONSHOT_API_KEY", raising=False)
    try:
        assert ["openai"] == llmrl.get_default_client().providers
    finally:
        llmrl.set_default_client(None)
