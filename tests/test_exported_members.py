# SPDX-License-Identifier: MIT
from __future__ import annotations

import importlib
import inspect
import re
import sys
from types import ModuleType

import llm_rate_limiter
import llm_rate_limiter.distributed
import llm_rate_limiter.exceptions
import llm_rate_limiter.testing

#: The modules whose ``__all__`` the top-level names come from.
HOMES = (
    "_clock",
    "_errors",
    "_headers",
    "_hooks",
    "_policy",
    "exceptions",
    "breaker",
    "client",
    "distributed",
    "limiter",
    "monitoring",
    "retry",
    "testing",
)
#: The public modules: the package, its public subpackages and the exceptions.
PUBLIC = (
    "llm_rate_limiter",
    "llm_rate_limiter.breaker",
    "llm_rate_limiter.cli",
    "llm_rate_limiter.client",
    "llm_rate_limiter.distributed",
    "llm_rate_limiter.exceptions",
    "llm_rate_limiter.limiter",
    "llm_rate_limiter.monitoring",
    "llm_rate_limiter.otel",
    "llm_rate_limiter.retry",
    "llm_rate_limiter.testing",
)


def _isort_key(name: str) -> tuple[int, list[int | str]]:
    """
    The order of ruff's RUF022 (isort-style): constants, then classes, then the rest.

    Within a group the sort is natural (digit runs compare as numbers) and case-sensitive.
    """
    if len(name) > 1 and name.isupper():
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    return group, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _home(name: str) -> list[ModuleType]:
    """The modules of HOMES whose __all__ lists *name*."""
    modules = [importlib.import_module(f"llm_rate_limiter.{m}") for m in HOMES]
    return [m for m in modules if name in m.__all__]


def test_isort_key_is_rufs_order() -> None:
    """The sort key orders constants, classes and the rest as ruff's RUF022 does."""
    names = ["zeta", "Alpha", "item10", "NULL_HOOK", "item2", "LLMError", "Limits", "A_B", "a"]
    expected = ["A_B", "NULL_HOOK", "Alpha", "LLMError", "Limits", "a", "item2", "item10", "zeta"]
    assert expected == sorted(names, key=_isort_key)


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists exactly the public names, sorted (constants first, as ruff sorts)."""
    public = {n for n in dir(llm_rate_limiter) if not n.startswith("_")} - {"annotations"}
    modules = {
        name for name in public if type(getattr(llm_rate_limiter, name)).__name__ == "module"
    }
    assert set(llm_rate_limiter.__all__) == public - modules
    assert len(set(llm_rate_limiter.__all__)) == len(llm_rate_limiter.__all__)
    for name in PUBLIC:
        exported = importlib.import_module(name).__all__
        assert sorted(exported, key=_isort_key) == exported, name


def test_every_export_resolves() -> None:
    """Each top-level name is its home module's object, and each class or function comes
    from inside the library, from the subpackage that exports it."""
    for name in llm_rate_limiter.__all__:
        homes = _home(name)
        assert 1 == len(homes), (name, homes)
        assert getattr(homes[0], name) is getattr(llm_rate_limiter, name), name
    for module_name in PUBLIC:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if (
                not (inspect.isclass(obj) or inspect.isfunction(obj))
                or obj.__module__ == "builtins"
            ):
                continue  # constants, and aliases of builtins (breaker.Ticket is int)
            origin = obj.__module__
            home = module_name if module_name != "llm_rate_limiter" else _home(name)[0].__name__
            assert origin == home or origin.startswith(f"{home}._"), (module_name, name, origin)
            assert getattr(sys.modules[origin], obj.__qualname__) is obj, (module_name, name)


def test_exceptions_share_one_base() -> None:
    """Every library exception derives from LLMRateLimiterError."""
    base = llm_rate_limiter.exceptions.LLMRateLimiterError
    for name in llm_rate_limiter.exceptions.__all__:
        assert issubclass(getattr(llm_rate_limiter.exceptions, name), base)


def test_distributed_surface() -> None:
    """The Redis subpackage exports exactly its public names."""
    assert [
        "DEFAULT_REDIS_URL",
        "RedisClient",
        "RedisPermit",
        "RedisRateLimiter",
        "SharedCircuitBreaker",
        "redis_from_env",
        "redis_from_url",
        "shared_policy",
    ] == llm_rate_limiter.distributed.__all__
