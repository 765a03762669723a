# SPDX-License-Identifier: MIT
"""
pytest plugin of llm_rate_limiter (registered through the ``pytest11`` entry point).

It gives every test suite that installs the library a ``fault_server``
fixture: a `FaultServer` with the default `FaultConfig` (no limits, no
faults), running on a free loopback port for one test. Change its behaviour
with ``fault_server.set_faults(...)``. The fixture is async: use it from
tests run by the anyio plugin (``@pytest.mark.anyio``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._server import FaultServer

__all__ = ["fault_server"]


@pytest.fixture
async def fault_server() -> AsyncIterator[FaultServer]:
    """
    A running fault server for one test; it closes when the test ends.

    .. versionadded:: 0.1.0
    """
    from ._server import FaultServer

    async with FaultServer() as server:
        yield server
