# SPDX-License-Identifier: MIT
"""
The ``llm-rate-limiter`` command line: ``demo``, ``bench`` and ``serve-mock``.

Application code over the library: it may import everything below it, and
nothing in the library imports it.
"""

from __future__ import annotations

from ._main import SUBCOMMANDS, build_parser, main

__all__ = ["SUBCOMMANDS", "build_parser", "main"]
