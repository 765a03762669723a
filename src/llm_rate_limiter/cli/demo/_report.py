# SPDX-License-Identifier: MIT
"""
The demo's JSON report, the findings it states, and the text printed at the end.

Everything here is computed from what was measured; API keys are never in it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._scenario import fault_configs

if TYPE_CHECKING:
    from rich.console import Console

    from ._run import DemoRun

__all__ = ["build_report", "findings", "jsonable", "print_summary", "write_report"]

_PROVIDER_FIELDS = ("name", "base_url", "model", "limits", "retry", "breaker", "timeout")


def jsonable(value: Any) -> Any:
    """*value* as plain JSON data: dataclasses, enums, sets, paths; non-finite floats as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _config(run: DemoRun) -> dict[str, Any]:
    settings = run.settings
    providers = [{f: getattr(p, f) for f in _PROVIDER_FIELDS} for p in run.providers]
    servers = {}
    if settings.embedded:
        for name, config in fault_configs(settings).items():
            servers[name] = {
                "requests_per_second": config.request_rate,
                "latency": config.latency,
                "latency_jitter": config.latency_jitter,
                "seed": config.seed,
            }
    return {
        "mode": "embedded" if settings.embedded else "real provider",
        "duration": settings.duration,
        "concurrency": settings.concurrency,
        "seed": settings.seed,
        "fallbacks": {"primary": ["fallback"]} if settings.embedded else {},
        "providers": providers,
        "servers": servers,
    }


def build_report(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON report of a `run_demo` result."""
    run: DemoRun = result["run"]
    phases = [p.as_dict() | {"summary": run.phase_summaries.get(p.name, {})} for p in run.phases]
    server_stats = {
        name: {k: v for k, v in stats.items() if k != "timeline"}
        for name, stats in result["server_stats"].items()
    }
    report: dict[str, Any] = {
        "config": _config(run),
        "phases": phases,
        "timeline": run.timeline,
        "breaker_transitions": [
            {"t": round(t, 3), "service": s, "from": old, "to": new}
            for t, s, old, new in run.metrics.transitions
        ],
        "calls": run.load.stats.as_dict() | {"cancelled_at_end": result["cancelled"]},
        "server_stats": server_stats,
        "health": result["health"],
        "issues": result["issues"],
        "performance_report": result["performance"],
        "elapsed_seconds": round(result["elapsed"], 3),
    }
    report = jsonable(report)
    report["findings"] = findings(report)
    return report


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write *report* as indented JSON (strict: no NaN or Infinity)."""
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _phase(report: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((p for p in report["phases"] if p["name"] == name), None)


def findings(report: dict[str, Any]) -> list[str]:
    """What happened, phase by phase, in sentences built from the measured numbers."""
    out: list[str] = []
    servers = report["config"]["servers"]
    limit = servers.get("primary", {}).get("requests_per_second")
    pressure = _phase(report, "pressure")
    if pressure and limit and pressure["summary"]:
        primary = pressure["summary"]["providers"]["primary"]
        seconds = pressure["end"] - pressure["start"]
        share = (
            primary["server_429"] / primary["server_requests"] if primary["server_requests"] else 0
        )
        out.append(
            f"pressure: {pressure['offered_rate']:g} requests/s offered against a server limit of "
            f"{limit:g}/s; the primary served {primary['served'] / seconds:.1f}/s, and "
            f"{primary['server_429']} of its {primary['server_requests']} requests got a 429 "
            f"({share:.1%}): the excess waited in the limiter's queue"
        )
    transitions = [t for t in report["breaker_transitions"] if t["service"] == "primary"]
    outage = _phase(report, "outage")
    if outage and outage["summary"]:
        opened = next((t["t"] for t in transitions if t["to"] == "open"), None)
        primary = outage["summary"]["providers"]["primary"]
        backup = outage["summary"]["providers"].get("fallback", {})
        if opened is None:
            out.append("outage: the primary's breaker never opened")
        else:
            out.append(
                f"outage from {outage['start']:.1f}s: the primary's breaker opened at "
                f"{opened:.1f}s; {primary['server_requests']} requests reached the dead primary "
                f"during the outage, the fallback served {backup.get('served', 0)} calls"
            )
        closed = [t["t"] for t in transitions if t["to"] == "closed" and t["t"] >= outage["start"]]
        if closed:
            out.append(
                f"recovery: the breaker closed again at {closed[0]:.1f}s, "
                f"{closed[0] - outage['end']:.1f}s after the outage ended"
            )
        elif opened is not None:
            out.append("recovery: the primary's breaker had not closed by the end")
    out.append(_calls_line(report["calls"]))
    out.append(_now_line(report))
    return out


def _calls_line(calls: dict[str, Any]) -> str:
    """Every call once: served, shed by the primary's open breaker, failed, cancelled."""
    kinds = {k: n for k, n in calls["failures"].items() if k != "CircuitOpenError"}
    kinds_text = ", ".join(f"{n} x {kind}" for kind, n in sorted(kinds.items()))
    return (
        f"calls: {calls['calls_started']} started: {calls['calls_served']} served"
        + (
            f" ({calls['served_after_fallback']} by the fallback after the primary failed them)"
            if calls["served_after_fallback"]
            else ""
        )
        + f", {calls['calls_shed']} shed by the primary's open breaker "
        f"({calls['shed_served_by_fallback']} then served by the fallback, "
        f"{calls['shed_failed']} returned as CircuitOpenError), {calls['calls_failed']} failed"
        + (f" ({kinds_text})" if kinds_text and calls["calls_failed"] else "")
        + f", {calls['calls_cancelled']} cancelled at the end"
    )


def _now_line(report: dict[str, Any]) -> str:
    """Where each provider stands at the end, as health and issues judge it."""
    health, issues = report["health"], report["issues"]["issues"]
    states = report["performance_report"]["services"]
    parts = []
    for name, service in health["services"].items():
        since = service.get("seconds_since_change")
        parts.append(
            f"{name} {service['status']}"
            + (f" for {since:.1f}s" if since is not None else "")
            + (f" (trend {service['trend']})" if service.get("trend") else "")
            + (f", breaker {states[name]['circuit_state']}" if name in states else "")
        )
    found = ", ".join(f"{i['type']} ({i['severity']})" for i in issues) or "none"
    return f"now: {'; '.join(parts)}; issues: {found}"


def print_summary(console: Console, report: dict[str, Any], paths: list[Path]) -> None:
    """Print what happened, the health, the issues with their advice, the performance summary."""
    console.print("\n[bold]What happened[/]")
    for line in report["findings"]:
        console.print(f"  - {line}", highlight=False)
    health = report["health"]
    console.print(
        f"\n[bold]Health[/]: {health['status']} (score {health['health_score']})", highlight=False
    )
    for name, service in health["services"].items():
        reasons = "; ".join(service.get("reasons") or []) or "no problems"
        trend = f", {service['trend']}" if service.get("trend") else ""
        console.print(
            f"  {name}: {service['status']} ({service['health_score']}{trend}) - {reasons}",
            highlight=False,
        )
    issues = report["issues"]
    console.print(f"\n[bold]Issues found[/]: {issues['issues_found']}", highlight=False)
    for issue in issues["issues"]:
        console.print(
            f"  [{issue['severity']}] {issue['service']}: {issue['type']} - {issue['detail']}",
            highlight=False,
            markup=False,
        )
        console.print(f"      -> {issue['recommendation']}", highlight=False, markup=False)
    perf = report["performance_report"]
    metrics, latency = perf["performance_metrics"], perf["latency"]
    console.print("\n[bold]Performance report[/]")
    console.print(
        f"  provider calls {metrics['total_requests']} (counted per provider: a call the "
        f"primary shed and the fallback served counts at both): served "
        f"{metrics['successful_requests']}, failed {metrics['failed_requests']}, shed by an "
        f"open breaker {metrics['shed_requests']} ({metrics['shed_to_fallback']} to a fallback)",
        highlight=False,
    )
    p50, p95 = latency["p50"], latency["p95"]
    console.print(
        f"  attempts {metrics['total_attempts']}, retries {metrics['retries']}, "
        f"429s seen {metrics['rate_limit_violations']}, fallbacks {metrics['fallbacks_taken']}, "
        f"breaker openings {metrics['breaker_openings']}; latency p50 "
        f"{_ms(p50)}, p95 {_ms(p95)}",
        highlight=False,
    )
    for name, service in perf["services"].items():
        console.print(
            f"  {name}: {service['requests']} calls, success {_pct(service['success_rate'])}, "
            f"p95 {_ms(service['p95_latency'])}, breaker {service['circuit_state']}",
            highlight=False,
        )
    console.print(f"\nElapsed {report['elapsed_seconds']:.1f}s. Wrote:", highlight=False)
    for path in paths:
        console.print(f"  {path}", highlight=False)


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"
