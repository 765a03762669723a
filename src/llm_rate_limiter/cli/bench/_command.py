# SPDX-License-Identifier: MIT
"""
``llm-rate-limiter bench``: load benchmarks of our client against its peers.

Starts the fault server in its own process on 127.0.0.1 and runs each scenario
(rate-limited, flaky, outage, insufficient_quota, token-limited) with the same
request set for every client (ours, the openai SDK with its default retries,
the SDK with ``max_retries=8``, tenacity + aiolimiter by hand). Prints a
Markdown table and writes it, a JSON report and PNG plots to ``--output``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

from ._scenarios import ALL_CLIENTS, CLIENT_NAMES, SCENARIOS, quick_scenario

_SCENARIOS = tuple(SCENARIOS)
_CLIENTS = CLIENT_NAMES

#: Wall-clock minutes of a full run and of a --quick one, with the default clients.
#: Measured on a busy 2-core machine: 3.5 min and 56 s. The floor is the scenarios'
#: own pace, per client: rate_limited 400 calls at 50/s (8 s), outage 400 arrivals at
#: 30/s (13 s), token_limited ~140 tokens a call at 3000/s (9 s), each capped at 60 s;
#: with --quick the outage's 60 arrivals at 8/s (7.4 s) dominate.
FULL_MINUTES = 4
QUICK_MINUTES = 1

_DESCRIPTION = (
    "Load benchmarks of our client against its peers. Starts the fault server in its own "
    "process on 127.0.0.1 and runs each scenario ({scenarios}) with the same request set "
    "for every client: ours, the openai SDK with its default retries (sdk_default), the SDK "
    "with max_retries=8 (sdk_retries8), and tenacity + aiolimiter by hand "
    "(tenacity_aiolimiter). Prints a Markdown table and writes it, a JSON report and PNG "
    "plots to --output. A full run takes about {full} minutes ({calls_full} calls per "
    "client and scenario, with the default clients); --quick runs every scenario small "
    "({calls_quick} calls, {quick_s:g} s at most per client) in about {quick} minute."
)


def _range(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def _sizes(attribute: str) -> tuple[str, str]:
    """The range of *attribute* over the scenarios, full and --quick."""
    full = [getattr(s, attribute) for s in SCENARIOS.values()]
    quick = [getattr(quick_scenario(s), attribute) for s in SCENARIOS.values()]
    return _range(full), _range(quick)


def _names(known: tuple[str, ...]) -> Any:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            msg = f"unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(known)}"
            raise argparse.ArgumentTypeError(msg)
        return names

    return parse


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected an integer >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def register(subparsers: Any) -> None:
    """Add the ``bench`` subcommand to *subparsers*."""
    calls_full, calls_quick = _sizes("calls")
    concurrency_full, concurrency_quick = _sizes("concurrency")
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="load benchmarks against the openai SDK and tenacity + aiolimiter",
        description=_DESCRIPTION.format(
            scenarios=", ".join(_SCENARIOS),
            full=FULL_MINUTES,
            quick=QUICK_MINUTES,
            calls_full=calls_full,
            calls_quick=calls_quick,
            quick_s=max(quick_scenario(s).max_seconds for s in SCENARIOS.values()),
        ),
    )
    parser.add_argument(
        "--scenarios",
        type=_names(_SCENARIOS),
        default=_SCENARIOS,
        metavar="NAMES",
        help=f"comma-separated (default: all: {', '.join(_SCENARIOS)})",
    )
    parser.add_argument(
        "--clients",
        type=_names(ALL_CLIENTS),
        default=_CLIENTS,
        metavar="NAMES",
        help=(
            f"comma-separated (default: {', '.join(_CLIENTS)}; also ours_wait_open: ours, "
            "with the caller waiting out an open breaker instead of failing)"
        ),
    )
    parser.add_argument(
        "--calls",
        type=_positive,
        default=None,
        metavar="N",
        help=(
            "calls per client, in every scenario (default: each scenario's own, "
            f"{calls_full}; with --quick {calls_quick})"
        ),
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        default=None,
        metavar="N",
        help=(
            "calls in flight at most, in every scenario (default: each scenario's own, "
            f"{concurrency_full}; with --quick {concurrency_quick})"
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            f"every scenario small ({calls_quick} calls per client), for a first look: "
            f"about {QUICK_MINUTES} minute instead of {FULL_MINUTES}. The same measurements, "
            "smaller (finer timelines); a target its sizes cannot show reads 'not measured'"
        ),
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        default=Path("bench-output"),
        help="folder for bench.md, bench.json and the plots (default: ./bench-output)",
    )
    parser.add_argument(
        "--no-plots", dest="plots", action="store_false", help="do not write the PNG plots"
    )
    parser.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    from ._run import BenchOptions, run_bench

    options = BenchOptions(
        scenarios=args.scenarios,
        clients=args.clients,
        calls=args.calls,
        concurrency=args.concurrency,
        quick=args.quick,
        output=args.output,
        plots=args.plots,
    )
    try:
        run_bench(options, say=lambda line: print(line, flush=True))
    except ImportError as exc:
        print(f"llm-rate-limiter bench: {exc} (install the 'cli' extra)", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"llm-rate-limiter bench: {exc}", file=sys.stderr)
        return 1
    return 0
