# SPDX-License-Identifier: MIT
"""
``llm-rate-limiter demo``: the library under real pressure, explained, in under a minute.

Two fault servers on 127.0.0.1 (a primary and a fallback) play a script:
calm, rate-limit pressure, an outage of the primary, recovery. Concurrent chat
calls go through one `AsyncLLMClient`; the demo shows live progress, then
prints the health, the issues found with their recommendations and the
performance report, and writes a PNG timeline and a JSON report.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...exceptions import ConfigurationError

if TYPE_CHECKING:
    from rich.console import Console

    from ._scenario import DemoSettings

__all__ = ["exit_code", "register", "run", "run_async"]

_EXTRA_HINT = "pip install 'llm-rate-limiter[cli]'"


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand to *subparsers*."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="show rate limiting, circuit breaking and fallbacks under load",
        description=(
            "Run concurrent chat calls through an AsyncLLMClient against two embedded "
            "fault servers (calm, rate-limit pressure, an outage, recovery), then print "
            "the health, the issues found and the performance report, and write a PNG "
            "timeline and a JSON report. With --base-url it runs a small steady load "
            "against a real OpenAI-compatible provider instead."
        ),
    )
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds of load (default: 30)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=20, help="concurrent calls at most (default: 20)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("demo-output"),
        help="folder for demo-timeline.png and demo-report.json (default: ./demo-output)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the servers' fault draws (default: 0)"
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="a real provider's API root, usually ending in /v1 (e.g. https://api.openai.com/v1)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="the real provider's key (default: $OPENAI_API_KEY; never printed)",
    )
    parser.add_argument(
        "--model", default=None, help="the real provider's model (default: gpt-4o-mini)"
    )
    parser.set_defaults(handler=run)


def _settings(args: argparse.Namespace) -> DemoSettings:
    from ._scenario import DemoSettings

    api_key = args.api_key
    if args.base_url is not None and not api_key:
        api_key = os.environ.get("OPENAI_API_KEY") or None
    return DemoSettings(
        duration=args.duration,
        concurrency=args.concurrency,
        output=args.output,
        seed=args.seed,
        base_url=args.base_url,
        api_key=api_key,
        model=args.model,
    )


def _missing_extra() -> str | None:
    for module in ("rich", "matplotlib", "starlette", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            return module
    return None


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 on success, 2 on bad settings, 1 on failure."""
    missing = _missing_extra()
    if missing is not None:
        print(
            f"llm-rate-limiter demo needs {missing!r}, part of the 'cli' extra: {_EXTRA_HINT}",
            file=sys.stderr,
        )
        return 1
    try:
        settings = _settings(args)
    except ConfigurationError as exc:
        print(f"llm-rate-limiter demo: {exc}", file=sys.stderr)
        return 2
    from rich.console import Console

    live = sys.stdout.isatty()
    console = Console(highlight=False, soft_wrap=not live)
    try:
        report = asyncio.run(run_async(settings, console, live=live))
    except KeyboardInterrupt:
        print("llm-rate-limiter demo: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"llm-rate-limiter demo: {exc}", file=sys.stderr)
        return 1
    return exit_code(report)


def exit_code(report: dict[str, Any]) -> int:
    """0 if at least one call was answered, else 1 (with a message on stderr)."""
    calls = report["calls"]
    if sum(calls["served_by"].values()) > 0:
        return 0
    errors = ", ".join(f"{n} x {name}" for name, n in calls["failures"].items()) or "none ended"
    print(f"llm-rate-limiter demo: no call was answered ({errors})", file=sys.stderr)
    return 1


async def run_async(settings: DemoSettings, console: Console, *, live: bool) -> dict[str, Any]:
    """
    Run the demo, print its summary on *console*, write its files; return the report.

    Args:
        settings: What to run.
        console: Where progress and the summary go.
        live: Show the live progress view (on a terminal) instead of plain lines.
    """
    from ._live import display_for
    from ._plot import plot_timeline
    from ._report import build_report, print_summary, write_report
    from ._run import run_demo

    settings.output.mkdir(parents=True, exist_ok=True)
    where = "two embedded fault servers on 127.0.0.1" if settings.embedded else "a real provider"
    console.print(
        f"llm-rate-limiter demo: {settings.duration:g}s of load, {settings.concurrency} "
        f"concurrent calls, against {where}",
        highlight=False,
    )
    result = await run_demo(settings, display_for(console, live=live))
    report = build_report(result)
    json_path = settings.output / "demo-report.json"
    png_path = settings.output / "demo-timeline.png"
    write_report(report, json_path)
    plot_timeline(report, png_path)
    print_summary(console, report, [png_path, json_path])
    return report
