# SPDX-License-Identifier: MIT
"""
Test helpers for users of llm_rate_limiter (and for its own tests).

- `FakeClock`: inject into any policy part so time advances without sleeping.
"""

from __future__ import annotations

from ._clock import FakeClock

__all__ = ["FakeClock"]
