# SPDX-License-Identifier: MIT
"""
The benchmark's PNG plots.

- ``bench-summary.png``: bars per scenario and client on linear axes, every bar
  annotated with its value; a zero bar is drawn as a coloured tick on the axis
  with a "0", a missing value (no success to time) reads "n/a".
- ``bench-timeline-<scenario>.png``: per client, the requests it sent per
  second (its HTTP log, in bins of 1 s, or 0.25 s with ``--quick``), by the
  server's reply: accepted, 429, 5xx, no reply (a fault series a client never
  drew is left out of its panel). The server's sustained limit is
  a dotted line; above it, the burst allowance (its bucket's capacity, what a
  full bucket admits at once) is a labelled band; the outage window is shaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["bars", "summary_value", "timeline_figure", "write_plots"]

#: Timeline series: column, line style, colour, label.
_SERIES: tuple[tuple[str, str, str, str], ...] = (
    ("sent", "--", "grey", "sent"),
    ("accepted", "-", "tab:blue", "accepted (200)"),
    ("rate_limited", "-", "red", "429"),
    ("server_errors", "-", "tab:purple", "5xx"),
    ("no_reply", ":", "tab:brown", "no reply"),
)


def summary_value(scenario: Mapping[str, Any], figures: Mapping[str, Any], key: str) -> Any:
    """
    The value a summary bar shows: the figure, or a fraction for ``"ended_as_intended"``.

    Calls ended as intended: the share that succeeded or, in a scenario that fails
    by design, the share that failed at once (one request, refused).
    """
    if key != "ended_as_intended":
        return figures.get(key)
    calls = max(1, int(figures["calls"]))
    if scenario.get("fails_by_design"):
        done = figures.get("failed_at_once")
        return None if done is None else done / calls
    return figures["successes"] / calls


def _label(value: float, key: str) -> str:
    if key == "ended_as_intended":
        return f"{value:.2f}"
    return f"{value:.0f}"


def bars(ax: Any, report: Mapping[str, Any], key: str, title: str) -> None:
    """Bars of *key* (see `summary_value`) per scenario and client on *ax*, annotated."""
    scenarios = list(report["scenarios"])
    clients = list(next(iter(report["scenarios"].values()))["clients"]) if scenarios else []
    width = 0.8 / max(1, len(clients))
    top = 0.0
    for i, client in enumerate(clients):
        colour, label = f"C{i}", client
        for x, name in enumerate(scenarios):
            scenario = report["scenarios"][name]
            figures = scenario["clients"].get(client)
            value = None if figures is None else summary_value(scenario, figures, key)
            pos = x + i * width
            if value is None:
                ax.text(pos, 0, "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
                continue
            value = float(value)
            top = max(top, value)
            ax.bar(pos, value, width, color=colour, label=label)
            label = None  # once per client, in the legend
            if value == 0.0:
                ax.plot([pos - width / 2, pos + width / 2], [0, 0], color=colour, lw=4)
            ax.annotate(
                _label(value, key),
                (pos, value),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=6,
                rotation=90,
            )
    ax.set_ylim(0, (top or 1.0) * 1.3)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(scenarios))])
    ax.set_xticklabels(scenarios, rotation=20, fontsize=8)
    ax.set_title(title, fontsize=10)


def _limits(ax: Any, info: Mapping[str, Any], bin_seconds: float) -> None:
    """The server's sustained limit (a line) and burst allowance (a band above it)."""
    # (rate, bucket, the rate's unit, the bucket's contents), in requests
    lines: list[tuple[float, float, str, str]] = []
    if info.get("rps"):
        bucket = float(info.get("request_burst") or info["rps"])
        lines.append((float(info["rps"]), bucket, "", f"{bucket:g} requests"))
    if info.get("tps"):
        per = float(info.get("mean_request_tokens") or 1.0)
        bucket = float(info.get("token_burst") or info["tps"])
        unit = f" ({info['tps']:g} tokens/s at ~{per:.0f} per request)"
        lines.append((float(info["tps"]) / per, bucket / per, unit, f"{bucket:g} tokens"))
    if not lines:
        return
    rate, bucket, unit, contents = min(lines)  # the limit that binds
    for other, _, other_unit, _ in lines:
        if other != rate:
            label = f"limit {other:.3g}/s{other_unit}"
            ax.axhline(other, color="black", lw=0.6, ls="--", label=label)
    ax.axhline(rate, color="black", lw=0.8, ls=":", label=f"limit {rate:.3g}/s{unit}")
    most = rate + bucket / bin_seconds
    label = f"burst allowance: a full bucket of {contents} (up to {most:.0f} req/s in one bin)"
    ax.axhspan(rate, most, color="green", alpha=0.08, label=label)


def timeline_figure(plt: Any, name: str, scenario: Mapping[str, Any], bin_seconds: float) -> Any:
    """The timeline figure of one scenario (a panel per client), not yet saved."""
    clients = scenario["clients"]
    info = scenario["scenario"]
    fig, axes = plt.subplots(len(clients), 1, figsize=(9, 1.9 * len(clients) + 1.0), sharex=True)
    axes = list(axes) if len(clients) > 1 else [axes]
    for ax, (client, s) in zip(axes, clients.items(), strict=True):
        rows = list(s.get("http_timeline") or [])
        ts = [float(row["t"]) for row in rows]
        if rows:
            ts.append(ts[-1] + bin_seconds)
        peak = float(info.get("rps") or 0.0)
        for key, style, colour, label in _SERIES:
            ys = [row[key] / bin_seconds for row in rows]
            if key not in ("sent", "accepted") and not any(ys):
                continue
            peak = max(peak, *ys) if ys else peak
            ax.step(ts, [*ys, ys[-1]] if ys else ys, style, where="post", color=colour, label=label)
        _limits(ax, info, bin_seconds)
        ax.set_ylim(0, (peak or 1.0) * 1.15)  # the data, not the burst band's top
        if info.get("outage"):
            start, duration = info["outage"]
            ax.axvspan(start, start + duration, color="orange", alpha=0.2, label="outage")
        ax.set_ylabel("req/s")
        ax.set_title(client, fontsize=9, loc="left")
    legend: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), fontsize=7, ncol=4, loc="lower center")
    axes[-1].set_xlabel(
        f"seconds since start (the client's HTTP log, {bin_seconds:g} s bins), by the reply"
    )
    fig.suptitle(f"{name}: requests per second sent to the server", fontsize=11)
    fig.tight_layout(rect=(0.0, 0.07, 1.0, 1.0))
    return fig


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
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    bars(
        axes[0][0],
        report,
        "ended_as_intended",
        "calls ended as intended (fraction): succeeded,\n"
        "or failed at once where failure is by design",
    )
    bars(axes[0][1], report, "server_429", "429s at the server")
    bars(axes[1][0], report, "p95_ms", "p95 latency of successes (ms)")
    bars(axes[1][1], report, "server_requests", "requests that reached the server")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=max(1, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.95))
    path = output / "bench-summary.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    bin_seconds = float(report.get("settings", {}).get("timeline_bin") or 1.0)
    for name, scenario in report["scenarios"].items():
        path = output / f"bench-timeline-{name}.png"
        fig = timeline_figure(plt, name, scenario, bin_seconds)
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
