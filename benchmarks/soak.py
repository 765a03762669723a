# SPDX-License-Identifier: MIT
"""
Soak run: resident memory, asyncio tasks and the collector's counters over a long run.

Two phases, each in the same event loop, each with its own policy/client and collector:

- ``policy``: ``--calls`` (default 1,000,000) calls through `ResiliencePolicy`
  with every part on (`RetryPolicy` with attempt timeout and deadline,
  `BreakerPolicy`, `RateLimits` with requests + tokens + a concurrency cap that
  makes calls queue, a `MetricsCollector` hook) around an in-process coroutine
  that yields once and fails on a deterministic pattern with real openai errors
  (connection errors, 503s, 429s with ``retry-after-ms``, 400s, and bursts of
  500s that open the breaker), plus calls cancelled by the caller.
- ``sdk``: ``--sdk-calls`` (default 150,000) calls through `AsyncLLMClient`
  -> the real ``openai.AsyncOpenAI`` (``max_retries=0``) -> ``httpx2.ASGITransport``
  -> the fault server's starlette app in the same process (1-2 ms latency, seeded
  500s, 503s and malformed bodies, a 100 ms outage every 20,000 calls that opens
  the breaker, rate-limit headers on every reply, some 400s and some cancelled
  calls); one call in ten is a ``chat_stream`` read to its end, the rest ``chat``.
  SDK, transport and app cost 1.1-1.3 ms of CPU a call here, so 1,000,000 of
  them would take 20-30 minutes; 150,000 take 3-4 minutes on 2 idle cores.

Each phase runs a warm-up, then segments; between segments no call is in flight
and RSS (``VmRSS`` of /proc/self/status, after ``gc.collect()``) and the task
count are sampled (after giving the loop a few turns: a collection makes asyncio
start a task to close each async generator nobody closed, and the openai SDK's
streams leave three each). Bounds (exit status 1 if one breaks): RSS growth from the
end of the warm-up to the end under ``--max-growth-mb`` (20); the task count
back at its baseline after every segment and at the end; the collector's
``started == succeeded + failed + cancelled + shed`` with nothing in flight, its
outcomes equal to what the caller saw (and, in ``sdk``, no more attempts than
requests the server saw); every planned call made within
``--max-seconds``. Prints the figures as JSON, then a summary. Run
``python benchmarks/soak.py`` (``--calls 100000 --sdk-calls 10000`` for a short run)
or ``nox -s soak``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2
import openai

from llm_rate_limiter import (
    AsyncLLMClient,
    BreakerPolicy,
    MetricsCollector,
    ProviderConfig,
    RateLimits,
    ResiliencePolicy,
    RetryPolicy,
)
from llm_rate_limiter._clock import SYSTEM_CLOCK
from llm_rate_limiter.testing import FaultConfig
from llm_rate_limiter.testing._server_app import FaultApp
from llm_rate_limiter.testing._server_state import ServerState

SERVICE = "soak"
REQUEST = httpx2.Request("POST", "https://soak.invalid/v1/chat/completions")
MESSAGES = [{"role": "user", "content": "hi"}]

# -- measuring -------------------------------------------------------------------------


def rss_mib() -> float:
    """Resident memory now (``VmRSS``), in MiB; the peak from getrusage without /proc."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # pragma: no cover


#: Loop turns given to tasks that a collection starts: an async generator left
#: unclosed (the openai SDK's ``AsyncStream`` leaves three per stream) is closed
#: by a task asyncio creates when the collector finds it.
_SETTLE_TURNS = 20


class FinalizedGenerators:
    """Counts async generators closed by the garbage collector, by name (asyncio's hook)."""

    def __init__(self) -> None:
        self.names: Counter[str] = Counter()

    def install(self) -> None:
        """Wrap the running loop's finalizer hook (call inside the loop)."""
        firstiter, finalizer = sys.get_asyncgen_hooks()

        def count(agen: Any) -> None:
            self.names[getattr(agen, "__qualname__", "?")] += 1
            if finalizer is not None:
                finalizer(agen)

        sys.set_asyncgen_hooks(firstiter, count)

    def since(self, before: Counter[str]) -> dict[str, int]:
        """What was finalized since the snapshot *before*."""
        return dict(self.names - before)


FINALIZED = FinalizedGenerators()


async def sample() -> dict[str, Any]:
    """RSS and tasks with nothing in flight, after a full collection and its finalizers."""
    gc.collect()
    for _ in range(_SETTLE_TURNS):
        await asyncio.sleep(0)
    tasks = asyncio.all_tasks()
    others = [t for t in tasks if t is not asyncio.current_task()]
    return {
        "rss_mib": round(rss_mib(), 2),
        "tasks": len(tasks),
        "gc_objects": len(gc.get_objects()),
        "other_tasks": sorted(repr(t.get_coro())[:160] for t in others)[:5],
    }


def counters(collector: MetricsCollector) -> dict[str, Any]:
    """The collector's call and event counters for the soak service."""
    m = collector.service_metrics(SERVICE)
    keys = {
        "started": "total_requests",
        "succeeded": "successful_requests",
        "failed": "failed_requests",
        "cancelled": "cancelled_requests",
        "shed": "shed_requests",
        "in_flight": "in_flight",
        "peak_in_flight": "peak_in_flight",
        "attempts": "total_attempts",
        "failed_attempts": "failed_attempts",
        "retries": "retries",
        "retry_gave_up": "retry_gave_up",
        "breaker_openings": "breaker_openings",
        "breaker_transitions": "breaker_transitions",
        "breaker_rejections": "breaker_rejections",
        "rate_limit_violations": "rate_limit_violations",
        "cooldowns": "cooldowns",
        "limiter_admissions": "limiter_admissions",
    }
    out: dict[str, Any] = {name: int(m[key]) for name, key in keys.items()}
    out["limiter_total_wait_ms"] = round(float(m["total_wait_time"]) * 1e3, 1)
    out["errors"] = dict(m["error_patterns"])
    return out


# -- the phases' common driver ---------------------------------------------------------


class Driver:
    """Runs calls ``start..end`` on *workers* tasks, counting what the caller saw."""

    def __init__(
        self,
        one: Callable[[int], Awaitable[str]],
        workers: int,
        deadline: float,
    ) -> None:
        self.one = one
        self.workers = workers
        self.deadline = deadline
        self.seen: Counter[str] = Counter()
        self.made = 0

    async def segment(self, start: int, end: int) -> None:
        """Make calls *start* to *end* (exclusive); stop taking new ones past the deadline."""
        indices = iter(range(start, end))

        async def worker() -> None:
            for i in indices:  # shared: each index is taken once, by one worker
                if time.monotonic() > self.deadline:
                    return
                self.seen[await self.one(i)] += 1
                self.made += 1

        await asyncio.gather(*(worker() for _ in range(self.workers)))


async def drive(
    driver: Driver, calls: int, warmup: int, segments: int, limit: float
) -> dict[str, Any]:
    """Warm up, then run the rest in *segments*, sampling between them."""
    baseline = await sample()
    started, cpu_started = time.perf_counter(), time.process_time()
    async with asyncio.timeout(limit + 60.0):  # a hard bound over the cooperative one
        await driver.segment(0, warmup)
        warm = await sample()
        warm_done = time.perf_counter()
        samples = [warm]
        step = max(1, -(-(calls - warmup) // segments))
        for start in range(warmup, calls, step):
            await driver.segment(start, min(calls, start + step))
            samples.append(await sample())
    finished, cpu = time.perf_counter(), time.process_time() - cpu_started
    return {
        "baseline": baseline,
        "after_warmup": warm,
        "samples": samples,
        "seconds": round(finished - started, 1),
        "cpu_seconds": round(cpu, 1),
        "cpu_us_per_call": round(cpu / max(1, driver.made) * 1e6, 1),
        "calls_per_second": round(driver.made / (finished - started)),
        "calls_per_second_after_warmup": round(
            (driver.made - min(warmup, driver.made)) / max(1e-9, finished - warm_done)
        ),
    }


# -- phase 1: ResiliencePolicy around an in-process coroutine ----------------------------


def status_error(
    cls: type[openai.APIStatusError], status: int, headers: dict[str, str] | None = None
) -> openai.APIStatusError:
    """A fresh SDK status error, built the SDK's way from a real response."""
    body = {"error": {"message": "soak", "type": "error", "code": None}}
    response = httpx2.Response(status, json=body, headers=headers, request=REQUEST)
    return cls("soak", response=response, body=body["error"])


def connection_error() -> openai.APIConnectionError:
    """A fresh transient network error."""
    return openai.APIConnectionError(request=REQUEST)


def policy_pattern(i: int) -> str:
    """What call *i* does: mostly succeed; a deterministic mix of failures."""
    if i % 20_000 < 8:
        return "exhaust"  # 500 on every attempt: retries run out, the breaker opens
    if i % 1_000 == 500:
        return "cancel"  # the caller gives up while it runs
    if i % 1_000 == 250:
        return "permanent"  # 400: fails at once, never retried, not a breaker failure
    if i % 2_000 == 750:
        return "rate_limited"  # 429 with retry-after-ms: a limiter cooldown, then success
    if i % 5_000 == 1_234:
        return "twice"  # 503, then a connection error, then success
    if i % 100 == 10:
        return "transient"  # a connection error, then success
    if i % 100 == 60:
        return "server"  # 503, then success
    return "ok"


def failure(kind: str, attempt: int) -> BaseException | None:
    """The error attempt *attempt* (1-based) of a call of *kind* raises, if any."""
    if kind == "exhaust":
        return status_error(openai.InternalServerError, 500)
    if kind == "permanent":
        return status_error(openai.BadRequestError, 400)
    if attempt == 1:
        if kind == "rate_limited":
            return status_error(openai.RateLimitError, 429, {"retry-after-ms": "1"})
        if kind in ("server", "twice"):
            return status_error(openai.InternalServerError, 503)
        if kind == "transient":
            return connection_error()
    if attempt == 2 and kind == "twice":
        return connection_error()
    return None


async def policy_phase(args: argparse.Namespace) -> dict[str, Any]:
    """`ResiliencePolicy` (retry, breaker, limiter, metrics) around a flaky coroutine."""
    finalized = Counter(FINALIZED.names)
    collector = MetricsCollector()
    policy = ResiliencePolicy(
        SERVICE,
        retry=RetryPolicy(
            max_retries=2,
            base_delay=0.0005,
            max_delay=0.002,
            attempt_timeout=5.0,
            deadline=30.0,
            max_retry_after=0.01,
        ),
        limits=RateLimits(
            requests_per_minute=60 * args.policy_rps,
            tokens_per_minute=60 * 20 * args.policy_rps,
            max_concurrency=args.workers // 2,
        ),
        breaker=BreakerPolicy(fail_max=5, reset_timeout=0.01),
        hook=collector,
    )

    async def one(i: int) -> str:
        kind = policy_pattern(i)
        attempts = 0

        async def send() -> int:
            nonlocal attempts
            attempts += 1
            error = failure(kind, attempts)
            if error is not None:
                raise error
            await asyncio.sleep(0.05 if kind == "cancel" else 0)
            return i

        try:
            if kind == "cancel":
                async with asyncio.timeout(0.001):
                    await policy.run(send, tokens=20)
            else:
                await policy.run(send, tokens=20)
        except TimeoutError:
            return "cancelled"
        except Exception as exc:
            return f"failed:{type(exc).__name__}"
        return "ok"

    deadline = time.monotonic() + args.max_seconds
    driver = Driver(one, args.workers, deadline)
    figures = await drive(driver, args.calls, args.warmup, args.segments, args.max_seconds)
    expected = Counter(policy_pattern(i) for i in range(args.calls))
    figures.update(
        planned=args.calls,
        made=driver.made,
        caller_saw=dict(driver.seen),
        pattern=dict(expected),
        collector=counters(collector),
        after_close=await sample(),
        asyncgens_closed_by_gc=FINALIZED.since(finalized),
    )
    return figures


# -- phase 2: AsyncLLMClient -> openai SDK -> httpx2 ASGI transport -> fault server ------


async def sdk_phase(args: argparse.Namespace) -> dict[str, Any]:
    """`AsyncLLMClient.chat` over the real SDK onto the fault server's app, in-process."""
    faults = FaultConfig(
        rps=5_000,  # far above what 2 cores reach: rate-limit headers on every reply, no 429
        latency=0.001,  # 1-2 ms per reply: calls overlap, the concurrency cap binds
        latency_jitter=0.001,
        error_500_rate=0.004,
        error_503_rate=0.008,
        malformed_rate=0.002,
        seed=7,
    )
    state = ServerState(faults, SYSTEM_CLOCK.monotonic)
    app = FaultApp(state, SYSTEM_CLOCK, asyncio.Event())
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app.asgi))
    finalized = Counter(FINALIZED.names)
    collector = MetricsCollector()
    config = ProviderConfig(
        name=SERVICE,
        base_url="http://soak.invalid/v1",
        api_key="sk-soak",
        model="mock-gpt",
        limits=RateLimits(
            requests_per_minute=60 * 5_000,
            tokens_per_minute=60 * 5_000 * 200,
            max_concurrency=args.sdk_workers // 2,
        ),
        retry=RetryPolicy(
            max_retries=3, base_delay=0.002, max_delay=0.02, attempt_timeout=10.0, deadline=30.0
        ),
        breaker=BreakerPolicy(fail_max=5, reset_timeout=0.05),
        http_client=http,
    )
    seen_outages = 0

    async with AsyncLLMClient([config], metrics=collector) as client:

        async def one(i: int) -> str:
            nonlocal seen_outages
            if i % 20_000 == 10_000:
                state.outage(0.1)  # every call answered 503 for 100 ms: the breaker opens
                seen_outages += 1
            kwargs: dict[str, Any] = {"max_tokens": 16}
            if i % 5_000 == 2_500:
                kwargs["extra_body"] = {"messages": "not a list"}  # the server answers 400
            try:
                if i % 1_000 == 999:
                    async with asyncio.timeout(0.0005):  # the caller gives up mid-call
                        await client.chat(MESSAGES, **kwargs)
                elif i % 10 == 5:  # a stream holds its permit until it ends
                    async with contextlib.aclosing(client.chat_stream(MESSAGES, **kwargs)) as s:
                        async for _ in s:
                            pass
                else:
                    await client.chat(MESSAGES, **kwargs)
            except TimeoutError:
                return "cancelled"
            except Exception as exc:
                return f"failed:{type(exc).__name__}"
            return "ok"

        deadline = time.monotonic() + args.max_seconds
        driver = Driver(one, args.sdk_workers, deadline)
        figures = await drive(
            driver, args.sdk_calls, args.sdk_warmup, args.segments, args.max_seconds
        )
    figures.update(
        planned=args.sdk_calls,
        made=driver.made,
        caller_saw=dict(driver.seen),
        outages_triggered=seen_outages,
        collector=counters(collector),
        server={
            k: v
            for k, v in state.stats.snapshot().as_dict().items()
            if k not in ("timeline", "rate_limited_by_type")
        },
        after_close=await sample(),
        asyncgens_closed_by_gc=FINALIZED.since(finalized),
    )
    return figures


# -- bounds and report ------------------------------------------------------------------


def check(name: str, phase: dict[str, Any], max_growth: float) -> tuple[list[str], list[str]]:
    """Add the derived figures to *phase*; return (passed, broken) bound descriptions."""
    ok: list[str] = []
    bad: list[str] = []

    def bound(holds: bool, text: str) -> None:
        (ok if holds else bad).append(f"{name}: {text}")

    growth = phase["samples"][-1]["rss_mib"] - phase["after_warmup"]["rss_mib"]
    phase["rss_growth_mib"] = round(growth, 2)
    phase["gc_objects_growth"] = (
        phase["samples"][-1]["gc_objects"] - phase["after_warmup"]["gc_objects"]
    )
    bound(growth < max_growth, f"RSS growth after warm-up {growth:.2f} MiB < {max_growth:g} MiB")
    base = phase["baseline"]["tasks"]
    counts = [s["tasks"] for s in phase["samples"]] + [phase["after_close"]["tasks"]]
    bound(all(c == base for c in counts), f"task count {counts} back at baseline {base}")
    c = phase["collector"]
    total = c["succeeded"] + c["failed"] + c["cancelled"] + c["shed"]
    bound(
        c["started"] == total and c["in_flight"] == 0,
        f"started {c['started']} == succeeded {c['succeeded']} + failed {c['failed']}"
        f" + cancelled {c['cancelled']} + shed {c['shed']} ({total}), in flight {c['in_flight']}",
    )
    seen = phase["caller_saw"]
    shed = seen.get("failed:CircuitOpenError", 0)  # turned away by the open breaker, unsent
    failed = sum(v for k, v in seen.items() if k.startswith("failed:")) - shed
    caller = (seen.get("ok", 0), failed, seen.get("cancelled", 0), shed)
    collected = (c["succeeded"], c["failed"], c["cancelled"], c["shed"])
    bound(
        caller == collected,
        f"caller saw ok/failed/cancelled/shed {'/'.join(map(str, caller))}"
        f" == collector {'/'.join(map(str, collected))}",
    )
    if "server" in phase:  # every attempt the collector counts reached the server once
        requests = phase["server"]["requests"]
        bound(
            c["attempts"] <= requests,
            f"collector attempts {c['attempts']} <= requests the server saw {requests}",
        )
    bound(phase["made"] == phase["planned"], f"{phase['made']} of {phase['planned']} calls made")
    return ok, bad


def summary(name: str, phase: dict[str, Any]) -> str:
    """A readable block for one phase."""
    c = phase["collector"]
    rss = " -> ".join(f"{s['rss_mib']:.1f}" for s in phase["samples"])
    tasks = [s["tasks"] for s in phase["samples"]]
    return "\n".join(
        [
            f"[{name}] {phase['made']:,} calls in {phase['seconds']} s: "
            f"{phase['calls_per_second']:,} calls/s "
            f"({phase['calls_per_second_after_warmup']:,} after warm-up); "
            f"CPU {phase['cpu_seconds']} s = {phase['cpu_us_per_call']} µs a call",
            f"  RSS MiB: baseline {phase['baseline']['rss_mib']:.1f}, after warm-up "
            f"{phase['after_warmup']['rss_mib']:.1f}, end {phase['samples'][-1]['rss_mib']:.1f} "
            f"(growth {phase['rss_growth_mib']:+.2f}); per segment {rss}",
            f"  gc objects growth after warm-up: {phase['gc_objects_growth']:+,}",
            f"  tasks: baseline {phase['baseline']['tasks']}, per segment "
            f"{tasks}, after close {phase['after_close']['tasks']}",
            f"  collector: started {c['started']:,} = succeeded {c['succeeded']:,} + failed "
            f"{c['failed']:,} + cancelled {c['cancelled']:,}; attempts {c['attempts']:,}, "
            f"retries {c['retries']:,}, gave up {c['retry_gave_up']:,}",
            f"  breaker: {c['breaker_openings']:,} openings, {c['breaker_transitions']:,} "
            f"transitions, {c['breaker_rejections']:,} rejections; limiter: "
            f"{c['limiter_admissions']:,} admissions, waited {c['limiter_total_wait_ms']:,} ms "
            f"in all, {c['cooldowns']:,} cooldowns, {c['rate_limit_violations']:,} 429s",
            f"  errors by kind: {c['errors']}",
            f"  caller saw: {phase['caller_saw']}",
            f"  async generators closed by the GC (not by their owner): "
            f"{phase['asyncgens_closed_by_gc'] or 'none'}",
            *(
                [
                    f"  server: {phase['server']['requests']:,} requests "
                    f"(collector attempts {c['attempts']:,}), "
                    f"{phase['server']['server_errors']:,} 5xx, "
                    f"{phase['server']['malformed']:,} malformed, "
                    f"{phase['server']['bad_requests']:,} 400s, "
                    f"{phase['outages_triggered']} outages of 100 ms"
                ]
                if "server" in phase
                else []
            ),
        ]
    )


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    p.add_argument("--calls", type=int, default=1_000_000, help="policy phase calls")
    p.add_argument("--warmup", type=int, default=50_000, help="policy phase warm-up calls")
    p.add_argument("--workers", type=int, default=64, help="policy phase concurrent callers")
    p.add_argument(
        "--policy-rps", type=float, default=1_000_000.0, help="policy phase limiter rate"
    )
    p.add_argument("--sdk-calls", type=int, default=150_000, help="SDK phase calls (0: skip)")
    p.add_argument("--sdk-warmup", type=int, default=20_000, help="SDK phase warm-up calls")
    p.add_argument("--sdk-workers", type=int, default=16, help="SDK phase concurrent callers")
    p.add_argument("--segments", type=int, default=10, help="samples after the warm-up")
    p.add_argument("--max-seconds", type=float, default=900.0, help="time bound of each phase")
    p.add_argument("--max-growth-mb", type=float, default=20.0, help="RSS growth bound (MiB)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    for name in ("calls", "warmup", "sdk_calls", "sdk_warmup"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.warmup >= args.calls or (args.sdk_calls and args.sdk_warmup >= args.sdk_calls):
        p.error("each warm-up must be smaller than its phase's calls")
    return args


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run both phases, one after the other, in this event loop."""
    FINALIZED.install()
    phases: dict[str, Any] = {"policy": await policy_phase(args)}
    if args.sdk_calls:
        phases["sdk"] = await sdk_phase(args)
    return phases


def run(argv: list[str] | None = None) -> int:
    """Run the soak; print JSON and a summary; return the exit status."""
    args = parse(sys.argv[1:] if argv is None else argv)
    phases = asyncio.run(main(args))
    passed: list[str] = []
    broken: list[str] = []
    for name, phase in phases.items():
        ok, bad = check(name, phase, args.max_growth_mb)
        passed += ok
        broken += bad
    report = {
        "python": sys.version.split()[0],
        "openai": openai.__version__,
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "phases": phases,
        "passed": passed,
        "broken": broken,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print()
    for name, phase in phases.items():
        print(summary(name, phase))
    print()
    for line in passed:
        print(f"PASS {line}")
    for line in broken:
        print(f"FAIL {line}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(run())
