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
from collections.abc import Sequence
from importlib import import_module

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

#: Modules (relative to this package) that each register one subcommand.
SUBCOMMANDS: tuple[str, ...] = (".demo", "._serve", ".bench")


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
    return parser


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
    code: int = args.handler(args)
    return code
