# SPDX-License-Identifier: MIT
"""
The ``llm-rate-limiter`` command.

Each subcommand lives in its own module (``demo/``, ``_serve.py``, ``bench/``) that defines
``register(subparsers)``: it adds its parser and sets ``handler`` (a function
from the parsed arguments to an exit code) as a default. Adding a subcommand
is one more entry in `SUBCOMMANDS`. Subcommand modules import their heavy
dependencies inside the handler, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import Any

__all__ = ["SUBCOMMANDS", "build_parser", "main", "otel_instrument"]

#: Modules (relative to this package) that each register one subcommand.
SUBCOMMANDS: tuple[str, ...] = (".demo", "._serve", ".bench")

#: The tracer and meter providers of this run's ``--otel`` (empty: no OpenTelemetry).
_OTEL: dict[str, tuple[Any, Any]] = {}
_OTEL_HINT = "pip install 'llm-rate-limiter[otel]' opentelemetry-sdk"


def build_parser() -> argparse.ArgumentParser:
    """
    Build the argument parser with every registered subcommand.

    .. versionadded:: 0.1.0
    """
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="llm-rate-limiter",
        description="Rate limiting, retries and health monitoring for LLM APIs.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__}",
        help="print the version and exit",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        import_module(name, __package__).register(subparsers)
    subparsers.choices["demo"].add_argument(
        "--otel",
        choices=["console"],
        default=None,
        help="trace and measure the calls with OpenTelemetry, printed to stderr (console)",
    )
    return parser


def otel_instrument(client: Any) -> None:
    """
    Instrument *client* with the providers of ``--otel``, if the command line gave it.

    .. versionadded:: 0.3.0
    """
    providers = _OTEL.get("providers")
    if providers is not None:
        from ..otel import instrument

        instrument(client, tracer_provider=providers[0], meter_provider=providers[1])


def _run_with_otel(args: argparse.Namespace) -> int:
    """Run the subcommand with console exporters; flush and stop them at its end."""
    try:
        from ..otel._console import console_providers

        providers = console_providers(sys.stderr)
    except ImportError as exc:
        msg = f"llm-rate-limiter: --otel needs {exc.name or 'opentelemetry'}: {_OTEL_HINT}"
        print(msg, file=sys.stderr)
        return 1
    _OTEL["providers"] = providers
    try:
        code: int = args.handler(args)
    finally:
        del _OTEL["providers"]
        for provider in providers:
            provider.shutdown()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line and return its exit code.

    Args:
        argv: Arguments without the program name; None reads ``sys.argv``.

    Returns:
        0 on success, 2 on bad usage or settings, 1 on failure.

    .. versionadded:: 0.1.0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "otel", None) is not None:
        return _run_with_otel(args)
    code: int = args.handler(args)
    return code
