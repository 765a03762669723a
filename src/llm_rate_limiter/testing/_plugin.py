# SPDX-License-Identifier: MIT
"""pytest plugin of llm_rate_limiter (registered through the ``pytest11`` entry point)."""

from __future__ import annotations
