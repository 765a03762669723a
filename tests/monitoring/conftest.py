# SPDX-License-Identifier: MIT
"""Fixtures shared by the monitoring tests."""

from __future__ import annotations

import pytest

from llm_rate_limiter.monitoring import MetricsCollector
from llm_rate_limiter.testing import FakeClock


@pytest.fixture
def collector(clock: FakeClock) -> MetricsCollector:
    """
    A collector on the test's fake clock.

    ``clock`` is tests/conftest.py's (standing still at 0 unless a test
    advances it) or the module's own, started on a bucket or minute boundary.
    """
    return MetricsCollector(clock=clock)
