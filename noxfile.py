# SPDX-License-Identifier: MIT
"""Development sessions: tests, lint, typecheck (default), bench and soak."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_external_run = True
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON = "3.11"


def _install(session: nox.Session, *groups: str, extras: str = "all") -> None:
    requirements: list[str] = []
    for group in groups:
        requirements.extend(nox.project.dependency_groups(PYPROJECT, group))
    session.install("-e", f".[{extras}]", *requirements)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite under coverage and report it."""
    _install(session, "tests")
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report", "--fail-under=95")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check and the import-linter layering contracts."""
    session.install("-e", ".", *nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src and the typing API file."""
    _install(session, "typing", "tests")
    session.run("mypy", "src", "tests/typing", "noxfile.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Micro and load benchmarks; writes bench-output/ (not part of the default run)."""
    _install(session, "bench")
    session.run("python", "benchmarks/run_all.py", *session.posargs)


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """Soak run: memory, tasks and counters over 1,000,000 calls (not part of the default run)."""
    _install(session, "bench")
    session.run("python", "benchmarks/soak.py", *session.posargs)
