# SPDX-License-Identifier: MIT
"""``llm-rate-limiter bench``: this library against its peers, under load, on one fault server."""

from __future__ import annotations

from ._command import register

__all__ = ["register"]
