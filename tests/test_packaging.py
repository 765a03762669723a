# SPDX-License-Identifier: MIT
from __future__ import annotations

from importlib import metadata

import pytest

import llm_rate_limiter


def test_version() -> None:
    """__version__ is the installed distribution's version."""
    assert metadata.version("llm-rate-limiter") == llm_rate_limiter.__version__


def test_unknown_attribute() -> None:
    """Unknown attributes raise AttributeError naming them."""
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = llm_rate_limiter.no_such_thing  # type: ignore[attr-defined]


def test_py_typed_shipped() -> None:
    """The package ships py.typed."""
    files = metadata.files("llm-rate-limiter") or []
    assert any(str(f).endswith("py.typed") for f in files) or _editable()


def _editable() -> bool:
    from pathlib import Path

    return (Path(llm_rate_limiter.__file__).parent / "py.typed").exists()


def test_layout_stays_small() -> None:
    """At most 12 modules at the package root and no module above 350 lines (CONTRIBUTING.md)."""
    from pathlib import Path

    root = Path(llm_rate_limiter.__file__).parent
    at_root = sorted(p.name for p in root.glob("*.py"))
    assert len(at_root) <= 12, at_root
    lines = {
        str(p.relative_to(root)): len(p.read_text(encoding="utf-8").splitlines())
        for p in root.rglob("*.py")
    }
    assert {} == {name: n for name, n in lines.items() if n > 350}
