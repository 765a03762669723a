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

from ._scenarios import ALL_CLIENTS, CLIENT_NAMES, SCENARIOS

_SCENARIOS = tuple(SCENARIOS)
_CLIENTS = CLIENT_NAMES


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
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="load benchmarks against the openai SDK and tenacity + aiolimiter",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "--scenarios",
        type=_names(_SCENARIOS),
        default=_SCENARIOS,
        help=f"comma list (default: all: {','.join(_SCENARIOS)})",
    )
    parser.add_argument(
        "--clients",
        type=_names(ALL_CLIENTS),
        default=_CLIENTS,
        help=(
            f"comma list (default: {','.join(_CLIENTS)}; also ours_wait_open: ours, "
            "with the caller waiting out an open breaker instead of failing)"
        ),
    )
    parser.add_argument("--calls", type=_positive, default=None, help="calls per client")
    parser.add_argument("--concurrency", type=_positive, default=None, help="calls in flight")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a first look")
    parser.add_argument(
        "--output", type=Path, default=Path("bench-output"), help="default: ./bench-output"
    )
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="skip PNGs")
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
