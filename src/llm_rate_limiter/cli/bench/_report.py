# SPDX-License-Identifier: MIT
"""
The benchmark's report: a Markdown table, the targets, JSON, and PNG plots.

``bench.md`` (also printed), ``bench.json`` (everything, timelines included),
``bench-summary.png`` (bars per scenario and client) and one
``bench-timeline-<scenario>.png`` per scenario (the server's arrivals and
accepted requests per second, per client; the outage window shaded).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["markdown", "write_plots", "write_report"]

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("successes", "ok"),
    ("failures", "failed"),
    ("server_requests", "server reqs"),
    ("server_429", "429s"),
    ("goodput", "goodput"),
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


def markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: the results table, then the targets per client."""
    lines = ["| scenario | client | " + " | ".join(t for _, t in _COLUMNS) + " |"]
    lines.append("|" + "---|" * (len(_COLUMNS) + 2))
    clients: list[str] = []
    for name, scenario in report["scenarios"].items():
        for client, s in scenario["clients"].items():
            if client not in clients:
                clients.append(client)
            cells = " | ".join(_cell(s[key]) for key, _ in _COLUMNS)
            lines.append(f"| {name} | {client} | {cells} |")
    out = ["## Load benchmark", ""]
    out += [f"- **{n}**: {s['description']}" for n, s in report["scenarios"].items()]
    out += ["", *lines, ""]
    if report["targets"]:
        out += ["### Targets", "", "| scenario | target | " + " | ".join(clients) + " |"]
        out.append("|" + "---|" * (len(clients) + 2))
        for target in report["targets"]:
            verdicts = []
            for client in clients:
                verdict = target["clients"].get(client)
                if verdict is None:
                    verdicts.append("–")
                else:
                    mark = "met" if verdict["met"] else "**missed**"
                    verdicts.append(f"{_cell(verdict['value'])} {mark}")
            lines_text = " | ".join(verdicts)
            out.append(f"| {target['scenario']} | {target['target']} | {lines_text} |")
        out.append("")
    out.append(
        "Latencies are of successful calls, from send to reply, retries and waits included. "
        "429s, requests and outage figures are counted by the fault server. Goodput is "
        "successes over what the server could admit while the client ran (burst + rate x "
        "wall time; tokens when they bind): a client that fails calls fast ends early, so "
        "read it with the failures. Recovery: from the outage's end to the first success "
        "that starts a 1 s window holding 80% of the offered rate."
    )
    return "\n".join(out) + "\n"


def _bars(ax: Any, report: Mapping[str, Any], key: str, title: str, log: bool = False) -> None:
    scenarios = list(report["scenarios"])
    clients = list(next(iter(report["scenarios"].values()))["clients"]) if scenarios else []
    width = 0.8 / max(1, len(clients))
    for i, client in enumerate(clients):
        values = []
        for name in scenarios:
            s = report["scenarios"][name]["clients"].get(client, {})
            value = s.get(key)
            if key == "successes" and s:
                value = s["successes"] / max(1, s["calls"])
            values.append(0.0 if value is None else float(value))
        xs = [x + i * width for x in range(len(scenarios))]
        ax.bar(xs, values, width, label=client)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(scenarios))])
    ax.set_xticklabels(scenarios, rotation=20, fontsize=8)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("symlog")


def _timeline(plt: Any, name: str, scenario: Mapping[str, Any], path: Path) -> None:
    clients = scenario["clients"]
    info = scenario["scenario"]
    fig, axes = plt.subplots(len(clients), 1, figsize=(9, 1.9 * len(clients) + 0.8), sharex=True)
    axes = list(axes) if len(clients) > 1 else [axes]
    for ax, (client, s) in zip(axes, clients.items(), strict=True):
        by_second = {row["t"]: row for row in s["timeline"]}
        span = range(max(by_second, default=0) + 2)
        ts = list(span)
        for key, style, colour, label in (
            ("arrivals", "--", "grey", "arrivals"),
            ("accepted", "-", "tab:blue", "accepted"),
            ("rate_limited", "-", "red", "429s"),
        ):
            ys = [by_second.get(t, {}).get(key, 0) for t in span]
            ax.step(ts, ys, style, where="post", color=colour, label=label)
        if info.get("rps"):
            ax.axhline(info["rps"], color="black", lw=0.8, ls=":", label="limit")
        if info.get("outage"):
            start, duration = info["outage"]
            ax.axvspan(start, start + duration, color="orange", alpha=0.2, label="outage")
        ax.set_ylabel("req/s")
        ax.set_title(client, fontsize=9, loc="left")
    axes[0].legend(fontsize=7, ncol=5, loc="upper right")
    axes[-1].set_xlabel("seconds since start (server timeline, per whole second)")
    fig.suptitle(f"{name}: requests per second at the server", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_plots(report: Mapping[str, Any], output: Path) -> list[Path]:
    """
    Write the PNG plots of *report* into *output*.

    Returns:
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    _bars(axes[0][0], report, "successes", "calls succeeded (fraction)")
    _bars(axes[0][1], report, "server_429", "429s at the server", log=True)
    _bars(axes[1][0], report, "p95_ms", "p95 latency of successes (ms)", log=True)
    _bars(axes[1][1], report, "server_requests", "requests that reached the server", log=True)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.95))
    path = output / "bench-summary.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    for name, scenario in report["scenarios"].items():
        path = output / f"bench-timeline-{name}.png"
        _timeline(plt, name, scenario, path)
        written.append(path)
    return written


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
