# SPDX-License-Identifier: MIT
"""The ``bench``subcommand (being written)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser("bench", help="(not yet available)")
    parser.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    print("llm-rate-limiter bench: not yet available")
    return 1
