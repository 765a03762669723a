# SPDX-License-Identifier: MIT
"""
The benchmark's report: a Markdown table, the targets, JSON, and PNG plots.

``bench.md`` (also printed), ``bench.json`` (everything, timelines included)
and the plots of `._plots`. A scenario that fails by design shows its expected
outcome (calls failed at once) beside "ok"; a target the run could not measure
reads "not measured", with the reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ._plots import write_plots
from ._steady import SETTLE_SECONDS

__all__ = ["markdown", "write_plots", "write_report"]

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("successes", "ok"),
    ("failures", "failed"),
    ("server_requests", "server reqs"),
    ("server_429", "429s"),
    ("goodput", "goodput run/steady"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("outage_requests", "reqs in outage"),
    ("outage_max_per_second", "max/s in outage"),
    ("recovery_seconds", "recovery s"),
    ("quota_retries", "quota retries"),
    ("wall_seconds", "wall s"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e6 else f"{value:.3g}"
    return str(value)


def _result_cell(key: str, s: Mapping[str, Any], by_design: bool) -> str:
    if key == "goodput":
        if s["goodput"] is None and s.get("goodput_steady") is None:
            return "–"
        return f"{_cell(s['goodput'])}/{_cell(s.get('goodput_steady'))}"
    if by_design and key == "successes":
        return f"{s['successes']} (none expected)"
    if by_design and key == "failures" and s.get("failed_at_once") is not None:
        return f"{s['failures']} ({s['failed_at_once']} at once)"
    return _cell(s[key])


def _verdict(verdict: Mapping[str, Any] | None) -> str:
    if verdict is None:
        return "–"
    if verdict["met"] is None:
        return "not measured"
    mark = "met" if verdict["met"] else "**missed**"
    return f"{_cell(verdict['value'])} {mark}"


def markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: the results table, then the targets per client."""
    lines = ["| scenario | client | " + " | ".join(t for _, t in _COLUMNS) + " |"]
    lines.append("|" + "---|" * (len(_COLUMNS) + 2))
    clients: list[str] = []
    for name, scenario in report["scenarios"].items():
        by_design = bool(scenario.get("fails_by_design"))
        for client, s in scenario["clients"].items():
            if client not in clients:
                clients.append(client)
            cells = " | ".join(_result_cell(key, s, by_design) for key, _ in _COLUMNS)
            lines.append(f"| {name} | {client} | {cells} |")
    out = ["## Load benchmark", ""]
    out += [f"- **{n}**: {s['description']}" for n, s in report["scenarios"].items()]
    out += ["", *lines, ""]
    if report["targets"]:
        out += ["### Targets", "", "| scenario | target | " + " | ".join(clients) + " |"]
        out.append("|" + "---|" * (len(clients) + 2))
        for target in report["targets"]:
            verdicts = " | ".join(_verdict(target["clients"].get(c)) for c in clients)
            text = target["target"]
            if target.get("note"):
                text += f"; {target['note']}"
            out.append(f"| {target['scenario']} | {text} | {verdicts} |")
        out.append("")
    out.append(
        "Latencies are of successful calls, from send to reply, retries and waits included. "
        "429s, requests and outage figures are counted by the fault server. Goodput is "
        "successes over what the server could admit while the client ran (burst + rate x "
        "wall time; tokens when they bind): a client that fails calls fast ends early, so "
        "read it with the failures. Steady goodput, which the targets judge: from "
        f"{SETTLE_SECONDS:g} s after the client got past the server's burst to its last "
        "admitted request (its HTTP log), what the server admitted over what it could (its "
        "rate times that span, plus what its bucket gave up from storage): a client's "
        "warm-up and its last reply's latency are left out, so a short run measures the "
        "rate a long one does. Recovery: from the outage's end to the first success that "
        "starts a 1 s window holding 80% of the offered rate. A scenario that fails by "
        "design (insufficient_quota) expects no success: its check is calls failed at once "
        "(one request, refused) and zero retries. --quick runs the same measurements, "
        "smaller; a target a run's sizes cannot show reads not measured, with the reason."
    )
    return "\n".join(out) + "\n"


def write_report(
    report: Mapping[str, Any], output: Path, *, plots: bool, say: Callable[[str], None]
) -> None:
    """Print the Markdown table; write ``bench.md``, ``bench.json`` and (if asked) the plots."""
    output.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    say("")
    say(text)
    (output / "bench.md").write_text(text, encoding="utf-8")
    (output / "bench.json").write_text(
        json.dumps(report, indent=1, default=_json_default), encoding="utf-8"
    )
    if plots:
        for path in write_plots(report, output):
            say(f"wrote {path}")


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)
