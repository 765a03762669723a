# SPDX-License-Identifier: MIT
from __future__ import annotations

import pytest

from llm_rate_limiter.testing import FakeClock


@pytest.fixture
def anyio_backend() -> str:
    """Run every anyio-marked test on asyncio only: the library is asyncio-native."""
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()
