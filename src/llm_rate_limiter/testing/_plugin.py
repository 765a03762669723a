# SPDX-License-Identifier: MIT
"""
pytest plugin of llm_rate_limiter (registered through the ``pytest11`` entry point).

It gives every test suite that installs the library a ``fault_server``
fixture: a `FaultServer` with the default `FaultConfig` (no limits, no
faults), running on a free loopback port for one test. Change its behaviour
with ``fault_server.set_faults(...)``. The fixture is async: use it from
tests run by the anyio plugin (``@pytest.mark.anyio``); a test that is not
gets an error saying so, not pytest's generic one about async fixtures.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._server import FaultServer

__all__ = ["fault_server", "pytest_fixture_setup"]


@pytest.fixture
async def fault_server() -> AsyncIterator[FaultServer]:
    """
    A running fault server for one test; it closes when the test ends.

    .. versionadded:: 0.1.0
    """
    from ._server import FaultServer

    async with FaultServer() as server:
        yield server


def _is_ours(fixturedef: Any) -> bool:
    func = getattr(fixturedef, "func", None)
    return getattr(func, "__module__", None) == __name__ and fixturedef.argname == "fault_server"


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> None:
    """Fail a test that uses ``fault_server`` without anyio running it, saying what to add."""
    if "anyio_backend" in request.fixturenames or not _is_ours(fixturedef):
        return
    test = request.node.name
    if inspect.iscoroutinefunction(getattr(request.node, "function", None)):
        fix = "add @pytest.mark.anyio to it (or pytestmark = pytest.mark.anyio in its module)"
    else:
        fix = "make it an `async def` test and add @pytest.mark.anyio to it"
    msg = (
        f"{test!r} uses the async fixture 'fault_server', but anyio does not run it: {fix}. "
        "The anyio pytest plugin (installed with anyio) then runs the test and the fixture "
        "in one event loop."
    )
    try:
        pytest.fail(msg, pytrace=False)
    except pytest.fail.Exception as exc:
        # Cache the failure as pytest does for a fixture that raises: teardown then
        # runs this fixture's finalizers, and the next test can set it up afresh.
        fixturedef.cached_result = (None, fixturedef.cache_key(request), (exc, exc.__traceback__))
        raise
