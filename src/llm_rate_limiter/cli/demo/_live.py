# SPDX-License-Identifier: MIT
"""
The demo's progress output: a live rich view on a terminal, a few plain lines otherwise.

Imports rich: only the ``demo`` command's handler imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ._run import DemoRun
from ._scenario import Phase

__all__ = ["LiveDisplay", "PlainDisplay", "display_for", "phase_line"]

_STATE_STYLE = {"closed": "green", "half_open": "yellow", "open": "bold red", "none": "dim"}


def phase_line(summary: dict[str, Any]) -> str:
    """One line saying what each provider did in a phase."""
    parts = []
    for name, row in summary["providers"].items():
        text = f"{name} served {row['served']}"
        if "server_429" in row:
            text += f", 429s {row['server_429']}, 5xx {row['server_errors']}"
        text += f", breaker {'->'.join(row['breaker_states'])}"
        parts.append(text)
    parts.append(f"shed calls {summary['shed']}, failed calls {summary['failures']}")
    return "; ".join(parts)


class PlainDisplay:
    """Plain lines, one when each phase starts and one when it ends: no progress bar."""

    refresh_interval: float | None = None

    def __init__(self, console: Console, run: DemoRun) -> None:
        self._console = console
        self._run = run

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def phase_started(self, phase: Phase) -> None:
        """Say which phase begins and what it does."""
        self._console.print(
            f"[{self._run.elapsed:5.1f}s] phase {phase.name}: {phase.description} "
            f"(offered load {phase.rate:g} requests/s)",
            highlight=False,
        )

    def phase_ended(self, phase: Phase, summary: dict[str, Any]) -> None:
        """Say what the phase did."""
        self._console.print(
            f"[{self._run.elapsed:5.1f}s] {phase.name} done: {phase_line(summary)}", highlight=False
        )

    def refresh(self) -> None:
        """Nothing to redraw."""


class LiveDisplay:
    """A progress bar over the duration and a table of each provider's state, redrawn 4x/s."""

    refresh_interval: float | None = 0.25

    def __init__(self, console: Console, run: DemoRun) -> None:
        self._console = console
        self._run = run
        self._progress = Progress(
            TextColumn("[bold]{task.description:<18}"),
            BarColumn(),
            TextColumn("{task.completed:>5.1f}/{task.total:.0f} s"),
            TimeRemainingColumn(),
            console=console,
        )
        self._task = self._progress.add_task("starting", total=run.settings.duration)
        self._live = Live(console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveDisplay:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()

    def _table(self) -> Table:
        run = self._run
        last = run.timeline[-1] if run.timeline else None
        table = Table(
            title=f"phase: {run.phase.name} - {run.phase.description}", title_justify="left"
        )
        for column in ("provider", "breaker", "req/s", "served", "429s (server)", "5xx (server)"):
            table.add_column(
                column, justify="left" if column in ("provider", "breaker") else "right"
            )
        counters = run.counters()
        for name, row in counters["providers"].items():
            state = run.breaker_state(name)
            rate = last["providers"][name]["served"] / max(last["dt"], 1e-9) if last else 0.0
            table.add_row(
                name,
                f"[{_STATE_STYLE.get(state, '')}]{state}[/]",
                f"{rate:.1f}",
                str(row["served"]),
                str(row.get("server_429", "-")),
                str(row.get("server_errors", "-")),
            )
        stats = run.load.stats
        shed = stats.shed_served + stats.shed_failed
        table.caption = (
            f"offered {run.phase.rate:g} req/s - in flight {stats.in_flight} - "
            f"served after fallback {stats.fallbacks} - shed {shed} - "
            f"failed {sum(stats.failures.values()) - stats.shed_failed}"
        )
        return table

    def phase_started(self, phase: Phase) -> None:
        """Show the new phase in the bar."""
        self.refresh()

    def phase_ended(self, phase: Phase, summary: dict[str, Any]) -> None:
        """Print the phase's line above the live view."""
        self._live.console.print(
            f"[bold]{phase.name}[/] done: {phase_line(summary)}", highlight=False
        )

    def refresh(self) -> None:
        """Redraw the bar and the table."""
        run = self._run
        self._progress.update(
            self._task,
            completed=min(run.elapsed, run.settings.duration),
            description=f"phase {run.phase.name}",
        )
        self._live.update(Group(self._progress, self._table()), refresh=True)


def display_for(console: Console, *, live: bool) -> Callable[[DemoRun], LiveDisplay | PlainDisplay]:
    """The display factory for `run_demo`: the live view if *live*, plain lines otherwise."""

    def make(run: DemoRun) -> LiveDisplay | PlainDisplay:
        if live:
            return LiveDisplay(console, run)
        return PlainDisplay(console, run)

    return make
