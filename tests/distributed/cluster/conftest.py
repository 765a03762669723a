# SPDX-License-Identifier: MIT
"""
Fixtures that start real Redis Clusters (see `helpers.Cluster`).

``cluster`` (3 primaries) is shared by a module's tests, which never break
it; ``make_cluster`` builds one a test may kill, stall or fail over, stopped
(by PID) when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .helpers import Cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A 3-primary cluster (no replicas, cluster-require-full-coverage no) for the module."""
    made = Cluster(3)
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., Cluster]]:
    """Build clusters of the test's own (`Cluster`'s arguments), stopped at its end."""
    made: list[Cluster] = []

    def make(*args: Any, **kwargs: Any) -> Cluster:
        made.append(Cluster(*args, **kwargs))
        return made[-1]

    try:
        yield make
    finally:
        for one in made:
            one.stop()
