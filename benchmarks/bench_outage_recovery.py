# SPDX-License-Identifier: MIT
"""
Outage recovery under a closed loop (the issue 13 scenario): who keeps hammering a
dead provider, who comes back fast, and whose calls still fail after it recovered.

The fault server (``serve-mock``, its own process) answers in 400-600 ms
(``latency=0.4, latency_jitter=0.2``), has no rate limit, and answers every
request with 503 during a scheduled outage (``outages=[(start, duration)]``,
seconds after ``/_reset``). Each client runs against a freshly reset server,
one after another, after one warm-up call on a fault-free server.

- **A**: 400 calls from 40 closed-loop callers (each sends its next call when
  the last one ended), a 5 s outage from 3 s. Clients: ours (`AsyncLLMClient`,
  ``BreakerPolicy(fail_max=5, reset_timeout=1, half_open_max_calls=1)``,
  ``RetryPolicy(max_retries=8, base_delay=0.5, max_delay=8)``, no client-side
  rate limit), the openai SDK (default retries; ``max_retries=8``), tenacity
  (+ aiolimiter, which has no limit to apply here) and LiteLLM's ``Router``
  (``num_retries=8``) when a venv with litellm exists (see `_outage_litellm`).
- **B**: 400 calls from 50 callers, a 2 s outage from 3 s; ours only
  (``--peers-b`` adds the peers). The figure that matters: calls that fail
  after the provider recovered (target 0).

Every call has a 60 s deadline and every client run a 60 s cap (calls still in
flight then are cancelled and counted as unfinished). Figures per client: see
`_outage_load.figures`. No assertions, just figures. Writes
``bench-output/outage_recovery.json`` (``outage_recovery_quick.json`` with
``--quick``: A with 100 calls from 20 callers and a 2 s outage from 1.5 s, B with
200 calls and a 1 s outage, 6-7 s caps; about 45 s).
Run ``python benchmarks/bench_outage_recovery.py [--quick] [--peers-b]``.
"""

from __future__ import annotations

import asyncio
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _outage_litellm import NAME as LITELLM
from _outage_litellm import litellm_python, run_litellm
from _outage_load import BIN, STEADY_FROM, Plan, figures, measure

import llm_rate_limiter
from llm_rate_limiter.cli.bench._clients import BREAKER, make_client
from llm_rate_limiter.cli.bench._metrics import CallRecord
from llm_rate_limiter.cli.bench._scenarios import (
    CLIENT_NAMES,
    WARM_UP_SETTINGS,
    Scenario,
    build_requests,
    server_settings,
)
from llm_rate_limiter.cli.bench._server import BenchServer

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "bench-output"
PEERS = (*CLIENT_NAMES, LITELLM)

PLANS = {
    "A": Plan("A", calls=400, callers=40, outage=(3.0, 5.0), call_deadline=60.0, cap=60.0),
    "B": Plan("B", calls=400, callers=50, outage=(3.0, 2.0), call_deadline=60.0, cap=60.0),
}
QUICK = {
    "A": Plan("A", calls=100, callers=20, outage=(1.5, 2.0), call_deadline=7, cap=7, late_after=3),
    "B": Plan("B", calls=200, callers=50, outage=(1.5, 1.0), call_deadline=7, cap=6, late_after=3),
}


def _scenario(plan: Plan) -> Scenario:
    latency, jitter = plan.latency
    return Scenario(
        f"outage_recovery_{plan.name}",
        calls=plan.calls,
        concurrency=plan.callers,
        faults={"latency": latency, "latency_jitter": jitter},
        outage=plan.outage,
        call_deadline=plan.call_deadline,
        max_seconds=plan.cap,
    )


async def _in_process(
    server: BenchServer, name: str, scenario: Scenario, plan: Plan
) -> tuple[list[CallRecord], int]:
    client = make_client(name, server.base_url, scenario)
    requests = build_requests(plan.calls)
    try:
        return await measure(
            client, server, server_settings(scenario), WARM_UP_SETTINGS, requests, plan
        )
    finally:
        await client.aclose()


def _run_plan(server: BenchServer, plan: Plan, clients: tuple[str, ...]) -> dict[str, Any]:
    scenario = _scenario(plan)
    results: dict[str, Any] = {}
    for name in clients:
        started = time.perf_counter()
        if name == LITELLM:
            python, where = litellm_python()
            if python is None:
                print(f"  {plan.name} {name:<20} skipped: {where}")
                results[name] = {"skipped": where}
                continue
            spec = {
                "base_url": server.base_url,
                "settings": server_settings(scenario),
                "warm_up": WARM_UP_SETTINGS,
                "plan": asdict(plan),
                "attempt_timeout": min(10.0, plan.call_deadline),
            }
            try:
                out = run_litellm(python, spec)
            except subprocess.SubprocessError as exc:
                print(f"  {plan.name} {name:<20} failed: {exc}")
                results[name] = {"skipped": f"the child process failed: {exc}"}
                continue
            records = [CallRecord(**r) for r in out["records"]]
            results[name] = figures(records, out["unfinished"], server.stats(), plan)
            results[name]["interpreter"] = where
        else:
            records, unfinished = asyncio.run(_in_process(server, name, scenario, plan))
            results[name] = figures(records, unfinished, server.stats(), plan)
        f = results[name]
        print(
            f"  {plan.name} {name:<20} ok {f['ok']:>4}/{f['calls']:<4} failed {f['failed']:>4} "
            f"after recovery {f['failed_after_recovery']:>4}  "
            f"({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
    return {"plan": asdict(plan), "description": _describe(plan), "clients": results}


def _describe(plan: Plan) -> str:
    start, length = plan.outage
    return (
        f"{plan.calls} calls, {plan.callers} closed-loop callers, replies in "
        f"{plan.latency[0] * 1000:.0f}-{sum(plan.latency) * 1000:.0f} ms, every request 503 "
        f"from {start:g} s to {start + length:g} s, no rate limit; "
        f"per-call deadline {plan.call_deadline:g} s, run cap {plan.cap:g} s"
    )


def _git() -> dict[str, Any]:
    """The commit of the library measured (its own checkout: this one, or a clone on PYTHONPATH)."""
    library = Path(llm_rate_limiter.__file__).resolve().parent

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=library, capture_output=True, text=True, timeout=30, check=False
        )
        return done.stdout.strip()

    return {
        "library": str(library),
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "library_dirty": bool(git("status", "--porcelain", "--", ".")),
    }


_COLUMNS = (  # title, figure, format, width
    ("ok", "ok", "{}", 4),
    ("failed", "failed", "{}", 6),
    ("unfin@cap", "unfinished_at_cap", "{}", 9),
    ("wall s", "wall_s", "{:.1f}", 6),
    ("reqs in outage", "outage_503s", "{}", 14),
    ("pre-outage ok/s", "pre_outage_per_s", "{:.1f}", 15),
    ("recovery s", "recovery_s", "{}", 10),
    ("left at end", "left_at_outage_end", "{}", 11),
    ("unfin@end+{late:g}s", "unfinished_late", "{}", 14),
    ("fails after recovery", "failed_after_recovery", "{}", 20),
)


def _cell(f: dict[str, Any], key: str, fmt: str) -> str:
    value = f[key]
    if key == "recovery_s" and value is None:
        return "never" if f["left_at_outage_end"] else "none left"
    return fmt.format(value)


def _table(name: str, scenario: dict[str, Any]) -> str:
    late = scenario["plan"]["late_after"]
    lines = [f"Scenario {name}: {scenario['description']}", ""]
    titles = [t.format(late=late) for t, _, _, _ in _COLUMNS]
    lines.append(
        f"{'client':>20} | "
        + " | ".join(f"{t:>{c[3]}}" for t, c in zip(titles, _COLUMNS, strict=True))
    )
    lines.append("-" * 20 + "-|-" + "-|-".join("-" * c[3] for c in _COLUMNS))
    clients = scenario["clients"]
    for client, f in clients.items():
        if "skipped" in f:
            lines.append(f"{client:>20} | skipped: {f['skipped']}")
            continue
        cells = [f"{_cell(f, key, fmt):>{w}}" for _, key, fmt, w in _COLUMNS]
        lines.append(f"{client:>20} | " + " | ".join(cells))
    lines.append("")
    for client, f in clients.items():
        if "skipped" in f:
            continue
        offsets = f["failed_after_recovery_offsets_s"]
        spread = f" ({min(offsets):.2f}..{max(offsets):.2f} s after the end)" if offsets else ""
        arrivals = ", ".join(f"{t}s: {n}" for t, n in f["arrivals_by_second"].items())
        first = f["first_ok_after_s"]
        best, pre = f["best_bin_after_per_s"], f["pre_outage_per_s"]
        share = f" = {best / pre:.0%} of pre-outage" if pre else ""
        lines.append(
            f"{client}: failures {f['failures_by_type'] or '-'}; after recovery "
            f"{f['failed_after_recovery_by_type'] or '-'}{spread}; server requests "
            f"{f['server_requests']}, arrivals per second of the outage [{arrivals}]; after it: "
            f"first success +{'n/a' if first is None else f'{first:.2f} s'}, "
            f"best bin {best:.0f}/s{share}"
        )
    lines += ["", *_timeline(scenario)]
    return "\n".join(lines)


def _timeline(scenario: dict[str, Any]) -> list[str]:
    clients = {c: f["timeline_per_s"] for c, f in scenario["clients"].items() if "skipped" not in f}
    start, length = scenario["plan"]["outage"]
    last = max((i for rates in clients.values() for i, v in enumerate(rates) if v), default=0)
    head = "   t s  " + " ".join(f"{c[:12]:>12}" for c in clients)
    lines = [f"Successes per second in {BIN:g} s bins (* = outage):", head]
    for i in range(last + 2):
        t = i * BIN
        mark = "*" if start <= t < start + length else " "
        cells = " ".join(f"{(r[i] if i < len(r) else 0.0):>12.0f}" for r in clients.values())
        lines.append(f"{t:>6.1f}{mark}  {cells}")
    return lines


def run(*, quick: bool = False, peers_b: bool = False, output: Path = OUTPUT) -> dict[str, Any]:
    """Run scenarios A and B; print the tables, write the JSON; return the figures."""
    plans = QUICK if quick else PLANS
    git = _git()
    dirty = ", with uncommitted changes" if git["library_dirty"] else ""
    print(f"library {git['library']} at {git['commit']}{dirty}", flush=True)
    started = time.perf_counter()
    with BenchServer() as server:
        scenarios = {
            "A": _run_plan(server, plans["A"], PEERS),
            "B": _run_plan(server, plans["B"], PEERS if peers_b else ("ours",)),
        }
    report = {
        "benchmark": "outage_recovery",
        "settings": {
            "quick": quick,
            "breaker": BREAKER,
            "retry": {"max_retries": 8, "base_delay": 0.5, "max_delay": 8.0},
            "client_rate_limit": None,
            "bin_s": BIN,
            "steady_from_s": STEADY_FROM,
            **git,
        },
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "seconds": round(time.perf_counter() - started, 1),
        "scenarios": scenarios,
    }
    for name, scenario in scenarios.items():
        print("\n" + _table(name, scenario), flush=True)
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"outage_recovery{'_quick' if quick else ''}.json"
    path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"\nwrote {path}")
    for scenario in scenarios.values():
        for f in scenario["clients"].values():
            f.pop("timeline_per_s", None)
    return report


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:], peers_b="--peers-b" in sys.argv[1:])
