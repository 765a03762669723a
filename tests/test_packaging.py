# SPDX-License-Identifier: MIT
from __future__ import annotations

import fnmatch
import json
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import llm_rate_limiter


def test_version() -> None:
    """__version__ is the installed distribution's version."""
    assert metadata.version("llm-rate-limiter") == llm_rate_limiter.__version__


def test_unknown_attribute() -> None:
    """Unknown attributes raise AttributeError naming them."""
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = llm_rate_limiter.no_such_thing  # type: ignore[attr-defined]


ROOT = Path(__file__).resolve().parent.parent


def _matches(patterns: list[str], path: str) -> list[str]:
    """The gitignore-style patterns (hatch's include/exclude syntax) that match *path*."""
    parts = path.split("/")
    found = []
    for pattern in patterns:
        bare = pattern.strip().rstrip("/")
        if not bare or bare.startswith("#"):
            continue
        if "/" in bare.lstrip("/"):
            bare = bare.lstrip("/")
            hit = fnmatch.fnmatchcase(path, bare) or path.startswith(f"{bare}/")
        else:
            hit = any(fnmatch.fnmatchcase(part, bare) for part in parts)
        if hit:
            found.append(pattern)
    return found


def test_py_typed_in_the_wheel_config() -> None:
    """py.typed exists in the package, and hatch's wheel target takes it: the package
    directory is listed and no exclude or .gitignore pattern drops it."""
    path = "src/llm_rate_limiter/py.typed"
    assert (ROOT / path).is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    build = config["tool"]["hatch"]["build"]
    wheel = build["targets"]["wheel"]
    assert ["src/llm_rate_limiter"] == wheel["packages"]
    for table in (build, wheel):
        assert [] == _matches(table.get("exclude", []), path)
        for key in ("include", "only-include"):
            if key in table:
                assert _matches(table[key], path), key
    gitignore = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert [] == _matches(gitignore, path)
    assert "Typing :: Typed" in config["project"]["classifiers"]


def test_py_typed_installed() -> None:
    """The imported package has py.typed; a non-editable install also lists it in RECORD."""
    assert (Path(llm_rate_limiter.__file__).parent / "py.typed").is_file()
    dist = metadata.distribution("llm-rate-limiter")
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct_url.get("dir_info", {}).get("editable"):
        # An editable install runs the checkout: the package is the one in src/.
        assert ROOT / "src" / "llm_rate_limiter" == Path(llm_rate_limiter.__file__).parent
    else:
        assert "llm_rate_limiter/py.typed" in {str(f) for f in dist.files or []}


def test_layout_stays_small() -> None:
    """At most 12 modules at the package root and no module above 350 lines (CONTRIBUTING.md)."""
    root = Path(llm_rate_limiter.__file__).parent
    at_root = sorted(p.name for p in root.glob("*.py"))
    assert len(at_root) <= 12, at_root
    lines = {
        str(p.relative_to(root)): len(p.read_text(encoding="utf-8").splitlines())
        for p in root.rglob("*.py")
    }
    assert {} == {name: n for name, n in lines.items() if n > 350}
