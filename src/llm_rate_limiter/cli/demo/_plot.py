# SPDX-License-Identifier: MIT
"""
The demo's PNG timeline, drawn from the JSON report with matplotlib's Agg backend.

Three panels over time, phases shaded: each provider's throughput against the
primary's limit, the 429s and 5xx the servers sent, and each breaker's state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_timeline"]

_PHASE_COLORS = {
    "calm": "#e8f4ea",
    "pressure": "#fff4d6",
    "outage": "#fbe0e0",
    "recovery": "#e3edf9",
    "load": "#f2f2f2",
}
_STATE_LEVEL = {"closed": 0, "half_open": 1, "open": 2}
_ERROR_COLORS = ("#d62728", "#555555", "#ff9896", "#aaaaaa")
_PROVIDER_COLORS = {"primary": "#1f77b4", "fallback": "#ff7f0e"}


def _breaker_steps(
    report: dict[str, Any], service: str, end: float
) -> tuple[list[float], list[int]]:
    """The breaker's level over time, from its exact transitions."""
    times, levels = [0.0], [0]
    for t in report["breaker_transitions"]:
        if t["service"] == service:
            times.append(t["t"])
            levels.append(_STATE_LEVEL.get(t["to"], 0))
    times.append(end)
    levels.append(levels[-1])
    return times, levels


def plot_timeline(report: dict[str, Any], path: Path) -> None:
    """Draw *report*'s timeline into the PNG file *path*."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    timeline = report["timeline"]
    phases = report["phases"]
    end = max([phases[-1]["end"], *(row["t"] for row in timeline)])
    providers = [p["name"] for p in report["config"]["providers"]]
    starts = [row["t"] - row["dt"] for row in timeline]
    widths = [row["dt"] for row in timeline]

    fig = Figure(figsize=(11, 8), dpi=100, layout="constrained")
    ax_rate, ax_err, ax_brk = fig.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4, 1]}
    )
    for ax in (ax_rate, ax_err, ax_brk):
        for phase in phases:
            ax.axvspan(
                phase["start"], phase["end"], color=_PHASE_COLORS.get(phase["name"], "#eee"), lw=0
            )
    for phase in phases:
        ax_rate.text(
            (phase["start"] + phase["end"]) / 2,
            1.01,
            phase["name"],
            transform=ax_rate.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=10,
        )

    # Throughput: calls served per second by each provider, the offered load, the limit.
    mids = [s + w / 2 for s, w in zip(starts, widths, strict=True)]
    for name in providers:
        rates = [row["providers"][name]["served"] / max(row["dt"], 1e-9) for row in timeline]
        ax_rate.plot(
            mids,
            rates,
            marker="o",
            ms=3,
            label=f"{name}: calls served/s",
            color=_PROVIDER_COLORS.get(name),
        )
    offered_x = [x for p in phases for x in (p["start"], p["end"])]
    offered_y = [p["offered_rate"] for p in phases for _ in (0, 1)]
    ax_rate.plot(offered_x, offered_y, ls="--", color="grey", label="offered load")
    limit = report["config"]["servers"].get("primary", {}).get("requests_per_second")
    if limit:
        ax_rate.axhline(limit, color="red", lw=1.2, label=f"primary server limit ({limit:g}/s)")
    ax_rate.set_ylabel("requests / s")
    ax_rate.set_ylim(bottom=0)
    ax_rate.legend(loc="upper right", fontsize=8)
    ax_rate.grid(alpha=0.3)

    # Errors the servers sent, per second.
    has_server = any("server_429" in row["providers"][n] for row in timeline for n in providers)
    if has_server:
        slots = 2 * len(providers)
        for i, name in enumerate(providers):
            for j, (key, label) in enumerate((("server_429", "429"), ("server_errors", "5xx"))):
                counts = [row["providers"][name].get(key, 0) for row in timeline]
                k = 2 * i + j
                ax_err.bar(
                    [s + k * w / slots for s, w in zip(starts, widths, strict=True)],
                    counts,
                    width=[w / slots for w in widths],
                    align="edge",
                    color=_ERROR_COLORS[k % len(_ERROR_COLORS)],
                    label=f"{name} {label}",
                )
        totals = []
        for name in providers:
            stats = report["server_stats"].get(name, {})
            totals.append(
                f"{name}: {stats.get('rate_limited', 0)} × 429, "
                f"{stats.get('server_errors', 0)} × 5xx of {stats.get('requests', 0)} requests"
            )
        ax_err.text(
            0.01,
            0.95,
            "\n".join(totals),
            transform=ax_err.transAxes,
            va="top",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
        )
        ax_err.legend(loc="upper right", fontsize=8, ncol=2)
    else:
        ax_err.text(
            0.5,
            0.5,
            "no server statistics: the provider is real",
            transform=ax_err.transAxes,
            ha="center",
            va="center",
            color="grey",
        )
    ax_err.set_ylabel("server errors")
    ax_err.grid(alpha=0.3)

    for i, name in enumerate(providers):
        x, levels = _breaker_steps(report, name, end)
        y = [level - 0.08 * i for level in levels]  # keep overlapping lines visible
        ax_brk.step(x, y, where="post", lw=2, label=name, color=_PROVIDER_COLORS.get(name))
    ax_brk.set_yticks([0, 1, 2], ["closed", "half-open", "open"])
    ax_brk.set_ylim(-0.3, 2.3)
    ax_brk.set_ylabel("breaker")
    ax_brk.set_xlabel("seconds since start")
    ax_brk.set_xlim(0, end)
    ax_brk.legend(loc="upper right", fontsize=8)
    ax_brk.grid(alpha=0.3)

    fig.suptitle("llm-rate-limiter demo: throughput, server errors and breaker state")
    fig.savefig(path)
