# SPDX-License-Identifier: MIT
from __future__ import annotations

import llm_rate_limiter
import llm_rate_limiter.distributed
import llm_rate_limiter.exceptions
import llm_rate_limiter.testing


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists exactly the public names, sorted (constants first, as ruff sorts)."""
    public = {n for n in dir(llm_rate_limiter) if not n.startswith("_")} - {"annotations"}
    modules = {
        name for name in public if type(getattr(llm_rate_limiter, name)).__name__ == "module"
    }
    assert set(llm_rate_limiter.__all__) == public - modules
    assert len(set(llm_rate_limiter.__all__)) == len(llm_rate_limiter.__all__)


def test_every_export_resolves() -> None:
    """Every name in each public __all__ resolves."""
    for module in (
        llm_rate_limiter,
        llm_rate_limiter.distributed,
        llm_rate_limiter.exceptions,
        llm_rate_limiter.testing,
    ):
        for name in module.__all__:
            assert getattr(module, name) is not None, name


def test_exceptions_share_one_base() -> None:
    """Every library exception derives from LLMRateLimiterError."""
    base = llm_rate_limiter.exceptions.LLMRateLimiterError
    for name in llm_rate_limiter.exceptions.__all__:
        assert issubclass(getattr(llm_rate_limiter.exceptions, name), base)


def test_distributed_surface() -> None:
    """The Redis subpackage exports exactly its public names."""
    assert [
        "DEFAULT_REDIS_URL",
        "RedisPermit",
        "RedisRateLimiter",
        "SharedCircuitBreaker",
        "redis_from_env",
        "shared_policy",
    ] == llm_rate_limiter.distributed.__all__
