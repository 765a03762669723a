# SPDX-License-Identifier: MIT
"""Whatever fails, the API key appears in no log, repr, exception, report or metric."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import pytest
from prometheus_client import CollectorRegistry, generate_latest

import llm_rate_limiter as llmrl
from llm_rate_limiter import (
    AsyncLLMClient,
    BreakerPolicy,
    CallInfo,
    ConfigurationError,
    ProviderConfig,
    RateLimits,
    RetryPolicy,
    register_prometheus,
)
from llm_rate_limiter.testing import FaultConfig, FaultServer, FaultServerStatistics

pytestmark = pytest.mark.anyio

MARKER = f"sk-SECRET-{uuid.uuid4().hex}"
#: The key, its Authorization header, and its random part alone (a key cut at its prefix).
NEEDLES = (MARKER, f"Bearer {MARKER}", MARKER.removeprefix("sk-SECRET-"))
LOGGERS = ("llm_rate_limiter", "openai", "httpx2", "httpx", "httpcore2", None)
FORMAT = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
MESSAGES = [{"role": "user", "content": "Say hello"}]
#: Each fault, set on both servers (a call fails at the end of its chain), and what it raises.
FAULTS: dict[str, tuple[dict[str, Any], str]] = {
    "5xx": ({"error_500_rate": 1.0}, "InternalServerError"),
    "hang": ({"hang_rate": 1.0}, "AttemptTimeoutError"),
    "dropped": ({"drop_rate": 1.0}, "APIConnectionError"),
    "malformed": ({"malformed_rate": 1.0}, "JSONDecodeError"),
    "401": ({"unauthorized": True}, "AuthenticationError"),
    "insufficient_quota": ({"insufficient_quota": True}, "RateLimitError"),
    "stream": ({"stream_failure_rate": 1.0}, "StreamInterruptedError"),
}
#: What the other calls raise: an outage, then its open breakers; bad calls; a closed client.
OTHER_ERRORS = {
    "outage": "InternalServerError",
    "breaker_open": "CircuitOpenError",
    "call:provider": "ConfigurationError",
    "call:max_retries": "ConfigurationError",
    "call:messages": "TypeError",
    "closed": "ClientClosedError",
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The scenario runs once for the module, on asyncio."""
    return "asyncio"


class KeepAll(logging.Handler):
    """Keep every record once, however many of the watched loggers it passed through."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.summary = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if not any(record is kept for kept in self.records):
            self.records.append(record)
        if isinstance(record.msg, str) and record.msg.startswith("llm_rate_limiter summary"):
            self.summary.set()


@contextmanager
def capture() -> Iterator[KeepAll]:
    handler = KeepAll()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def record_texts(record: logging.LogRecord) -> list[str]:
    """The record formatted (exc_info, stack_info), and every attribute: args, extra fields."""
    return [FORMAT.format(record), repr(record.__dict__), json.dumps(record.__dict__, default=str)]


def exception_texts(exc: BaseException) -> list[str]:
    """The traceback and, for the exception and each one chained to it, str, repr and notes."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        texts += [str(current), repr(current), repr(getattr(current, "__notes__", None))]
        todo += [current.__cause__, current.__context__]
    return texts


def leaks(places: Mapping[str, Iterable[str]]) -> list[str]:
    """The places one of whose texts holds a needle."""
    return [name for name, texts in places.items() if any(n in t for t in texts for n in NEEDLES)]


@dataclass
class Scenario:
    records: list[logging.LogRecord]
    errors: dict[str, BaseException | None] = field(default_factory=dict)
    objects: dict[str, object] = field(default_factory=dict)
    reports: dict[str, object] = field(default_factory=dict)
    exposition: str = ""
    sent: list[str] = field(default_factory=list)
    seen: list[FaultServerStatistics] = field(default_factory=list)


def config(server: FaultServer, name: str, sent: list[str]) -> ProviderConfig:
    async def record(request: httpx2.Request) -> None:
        sent.append(request.headers.get("authorization", ""))

    return ProviderConfig(
        name=name,
        base_url=server.base_url,
        api_key=MARKER,
        model="mock-gpt",
        limits=RateLimits(requests_per_minute=60_000, tokens_per_minute=1_000_000, max_wait=0.5),
        retry=RetryPolicy(
            max_retries=1,
            base_delay=0.01,
            max_delay=0.02,
            attempt_timeout=1.0,
            max_retry_after=0.05,
            wait_for_breaker=False,
        ),
        breaker=BreakerPolicy(fail_max=2, reset_timeout=30.0),
        timeout=10.0,
        http_client=httpx2.AsyncClient(event_hooks={"request": [record]}),
    )


async def failure(call: Awaitable[object]) -> BaseException | None:
    try:
        await call
    except Exception as exc:
        return exc
    return None


async def drain(stream: AsyncIterator[object]) -> list[object]:
    return [chunk async for chunk in stream]


def config_errors(client: AsyncLLMClient, good: ProviderConfig) -> dict[str, BaseException | None]:
    """Settings refused at construction, each naming the provider's settings."""
    bad: dict[str, Callable[[], object]] = {
        "base_url": lambda: ProviderConfig(name="p", base_url="ftp://x", api_key=MARKER),
        "timeout": lambda: ProviderConfig(name="primary", api_key=MARKER, timeout=-1.0),
        "with_options": lambda: good.with_options(base_url="ftp://primary.invalid"),
        "duplicate": lambda: AsyncLLMClient([good, good]),
        "fallbacks": lambda: AsyncLLMClient([good], fallbacks={"primary": ["nowhere"]}),
        "service_status": lambda: client.service_status("nowhere"),
        "policy": lambda: client.policy("nowhere"),
    }
    errors: dict[str, BaseException | None] = {}
    for name, build in bad.items():
        with pytest.raises(ConfigurationError) as caught:
            build()
        errors[f"config:{name}"] = caught.value
    return errors


async def run_faults(
    client: AsyncLLMClient, servers: tuple[FaultServer, FaultServer], out: Scenario
) -> None:
    for phase in ("clean", "fallback"):
        servers[0].set_faults(error_503_rate=float(phase == "fallback"))
        out.objects[f"info:{phase}"] = info = CallInfo()
        assert await failure(client.chat(MESSAGES, call_info=info)) is None
    servers[0].set_faults(error_503_rate=0.0)
    for phase, (faults, _) in FAULTS.items():
        for server in servers:
            server.set_faults(**faults)
        out.objects[f"info:{phase}"] = info = CallInfo()
        call = (
            drain(client.chat_stream(MESSAGES, call_info=info))
            if phase == "stream"
            else client.chat(MESSAGES, call_info=info)
        )
        out.errors[phase] = await failure(call)
        clean = {name: getattr(FaultConfig(), name) for name in faults}
        for server in servers:
            server.set_faults(**clean)
        client.reset_all_breakers()
    for server in servers:
        server.set_faults(outages=[(0.0, 3600.0)])
    out.errors["outage"] = await failure(client.chat(MESSAGES))
    out.errors["breaker_open"] = await failure(client.chat(MESSAGES))
    client.reset_all_breakers()
    for server in servers:
        server.set_faults(outages=[], rpm=1.0, request_burst=1.0)
    storm = await asyncio.gather(*(client.chat(MESSAGES) for _ in range(5)), return_exceptions=True)
    out.errors |= {f"429_storm:{i}": e for i, e in enumerate(storm) if isinstance(e, Exception)}
    out.errors["call:provider"] = await failure(client.chat(MESSAGES, provider="nowhere"))
    out.errors["call:max_retries"] = await failure(client.chat(MESSAGES, max_retries=-1))
    out.errors["call:messages"] = await failure(client.chat("Say hello"))


def observe(client: AsyncLLMClient, configs: list[ProviderConfig], out: Scenario) -> None:
    """Every view of the client: its parts' reprs, its reports, the seed's functions."""
    out.objects["client"] = client
    for cfg in configs:
        policy = client.policy(cfg.name)
        breaker, retrier = policy.breaker, policy.retrier
        assert breaker is not None
        parts = {"config": cfg, "policy": policy, "breaker": breaker, "limiter": policy.limiter}
        parts |= {"retrier": retrier, "retry_stats": retrier.statistics(), "limits": cfg.limits}
        parts |= {"breaker_stats": breaker.statistics(), "retry": cfg.retry, "bp": cfg.breaker}
        out.objects |= {f"{cfg.name}:{k}": v for k, v in parts.items()}
        out.reports[f"service_status:{cfg.name}"] = client.service_status(cfg.name)
        out.reports[f"service_metrics:{cfg.name}"] = client.metrics.service_metrics(cfg.name)
    out.reports |= {
        "health": client.health(),
        "analyze_issues": client.analyze_issues(),
        "performance_report": client.performance_report(),
        "rate_limiter_stats": client.rate_limiter_stats(),
        "circuit_breaker_stats": client.circuit_breaker_stats(),
        "log_monitoring_summary": client.log_monitoring_summary(),
    }
    llmrl.set_default_client(client)
    try:
        out.reports |= {
            "seed:get_health_status": llmrl.get_health_status(),
            "seed:get_service_status": llmrl.get_service_status("primary"),
            "seed:analyze_frequent_issues": llmrl.analyze_frequent_issues(),
            "seed:get_system_performance_report": llmrl.get_system_performance_report(),
            "seed:rate_limiter": llmrl.get_comprehensive_rate_limiter_stats(),
            "seed:circuit_breaker": llmrl.get_comprehensive_circuit_breaker_stats(),
            "seed:log_monitoring_summary": llmrl.log_monitoring_summary(),
        }
    finally:
        llmrl.set_default_client(None)
    registry = CollectorRegistry()
    register_prometheus(client.metrics, registry=registry)
    out.exposition = generate_latest(registry).decode()


@pytest.fixture(scope="module")
async def scenario() -> Scenario:
    """One client, a primary and a backup, through every fault; everything it said, kept."""
    with capture() as handler, anyio.fail_after(40):
        out = Scenario(handler.records)
        async with FaultServer(FaultConfig(seed=1)) as primary, FaultServer() as backup:
            configs = [config(primary, "primary", out.sent), config(backup, "backup", out.sent)]
            async with AsyncLLMClient(configs, fallbacks={"primary": ["backup"]}) as client:
                await run_faults(client, (primary, backup), out)
                out.errors |= config_errors(client, configs[0])
                client.start_monitoring(interval=0.01)
                await handler.summary.wait()
                observe(client, configs, out)
            out.errors["closed"] = await failure(client.chat(MESSAGES))
            out.seen = [primary.stats(), backup.stats()]
    return out


async def test_the_scanner_finds_a_planted_key() -> None:
    """The scanner finds the key in a string, a record's extra field, a chained exception's note."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", ("ok",), None)
    record.llmrl = {"deep": [MARKER]}
    cause = ValueError("cause")
    cause.add_note(f"Bearer {MARKER}")
    chained = RuntimeError("outer")
    chained.__cause__ = cause
    places = {
        "string": [f"key={MARKER}."],
        "record": record_texts(record),
        "exception": exception_texts(chained)[1:],  # without the whole traceback
        "clean": ["sk-SECRET-", *exception_texts(RuntimeError("outer"))],
    }
    assert ["string", "record", "exception"] == leaks(places)


async def test_the_key_was_sent_on_every_request(scenario: Scenario) -> None:
    """Every request the servers saw, every fault among them, carried the key as its bearer."""
    reached = sum(s.requests for s in scenario.seen)
    faults = ("succeeded", "hangs", "drops", "malformed", "stream_failures", "auth_errors")
    missed = [f for f in faults if not sum(getattr(s, f) for s in scenario.seen)]
    statuses = {k for s in scenario.seen for k in s.server_errors_by_status}
    refusals = {k for s in scenario.seen for k in s.rate_limited_by_type}
    assert [f"Bearer {MARKER}"] * reached == scenario.sent
    assert ([], {"500", "503"}) == (missed, statuses)
    assert {"requests", "insufficient_quota"} == refusals
    assert 0 < min(s.outage_rejections for s in scenario.seen)


async def test_no_log_record_holds_the_key(scenario: Scenario) -> None:
    """No record of the library, the SDK, httpx2 or the root holds the key, formatted or raw."""
    names = {record.name.split(".")[0] for record in scenario.records}
    places = {f"{i}:{r.name}": record_texts(r) for i, r in enumerate(scenario.records)}
    assert {"llm_rate_limiter", "openai", "httpx2", "httpcore2"} <= names
    assert [] == leaks(places)


async def test_no_exception_holds_the_key(scenario: Scenario) -> None:
    """No exception raised by any fault, its notes, causes or traceback holds the key."""
    kinds = {name: type(exc).__name__ for name, exc in scenario.errors.items()}
    storm = [kinds.pop(name) for name in list(kinds) if name.startswith("429_storm")]
    settings = {kinds.pop(name) for name in list(kinds) if name.startswith("config:")}
    places = {name: exception_texts(exc) for name, exc in scenario.errors.items() if exc}
    assert {**{k: kind for k, (_, kind) in FAULTS.items()}, **OTHER_ERRORS} == kinds
    assert (["RateLimitTimeoutError"] * 3, {"ConfigurationError"}) == (storm, settings)
    assert [] == leaks(places)


async def test_no_repr_holds_the_key(scenario: Scenario) -> None:
    """No repr() or str() of the client, its configs, policies, breakers or limiters holds it."""
    places = {name: [repr(obj), str(obj)] for name, obj in scenario.objects.items()}
    assert [] == leaks(places)


async def test_no_report_holds_the_key(scenario: Scenario) -> None:
    """No health, status, issues, performance, service metrics or seed report holds the key."""
    places = {name: [json.dumps(r, default=str), repr(r)] for name, r in scenario.reports.items()}
    assert [] == leaks(places)


async def test_prometheus_exposition_holds_no_key(scenario: Scenario) -> None:
    """The Prometheus exposition of the client's metrics holds no key."""
    assert 'provider="backup"' in scenario.exposition
    assert [] == leaks({"exposition": [scenario.exposition]})
