# SPDX-License-Identifier: MIT
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llm_rate_limiter.testing import FaultConfig, FaultServer


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with FaultServer(FaultConfig(seed=1)) as srv:
        yield srv


@pytest.fixture
async def backup() -> AsyncIterator[FaultServer]:
    async with FaultServer(FaultConfig(seed=2)) as srv:
        yield srv
