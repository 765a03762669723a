# SPDX-License-Identifier: MIT
"""``llm-rate-limiter demo``: calm, pressure, outage and recovery on embedded fault servers."""

from __future__ import annotations

from ._command import register

__all__ = ["register"]
