# SPDX-License-Identifier: MIT
"""
Run every ``benchmarks/bench_*.py`` module's ``run()`` in turn (what ``nox -s bench`` does).

Each module's ``run()`` is called with no arguments in a fresh interpreter
(so no benchmark inherits another's heap or garbage-collector state); a
module that fails is reported and the others still run. Writes
``bench-output/results.json`` (``{module: {"seconds", "result"} or {"error"}}``)
at the repository root and prints a one-line summary per module. Exits 1 if
any module failed. Run ``python benchmarks/run_all.py [NAME ...]`` to run only
some (``python benchmarks/run_all.py limiter breaker``); a partial run updates
the entries it ran in an existing ``results.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE.parent / "bench-output"
_SUMMARY_CHARS = 160


_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
import importlib
result = importlib.import_module(sys.argv[2]).run()
with open(sys.argv[3], "w", encoding="utf-8") as f:
    json.dump(result, f, default=str)
"""


def _run_isolated(path: Path) -> Any:
    """Run one module's ``run()`` in a fresh interpreter, so no benchmark inherits another's
    heap, garbage-collector state or event loop; return its result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(HERE), path.stem, str(out)],
            cwd=HERE.parent,
            check=False,
            timeout=1800,
        )
        if done.returncode != 0:
            msg = f"{path.stem} exited with {done.returncode}"
            raise RuntimeError(msg)
        return json.loads(out.read_text(encoding="utf-8"))


def _summary(result: Any) -> str:
    if isinstance(result, dict) and "targets" in result:
        missed = [
            f"{t['scenario']}/{client}"
            for t in result["targets"]
            for client, verdict in t["clients"].items()
            if client == "ours" and not verdict["met"]
        ]
        return f"see bench-output/bench.md; our client missed: {', '.join(missed) or 'nothing'}"
    if isinstance(result, dict) and result.get("benchmark") == "outage_recovery":
        ours = [
            f"{name} {scenario['clients']['ours']['failed_after_recovery']}"
            for name, scenario in result["scenarios"].items()
        ]
        return (
            f"see bench-output/outage_recovery.json; ours failed after recovery: {', '.join(ours)}"
        )
    text = json.dumps(result, default=str)
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 3] + "..."


def main(names: list[str]) -> int:
    """Run the selected benchmark modules (all when *names* is empty); return the exit code."""
    paths = sorted(HERE.glob("bench_*.py"))
    if names:
        paths = [p for p in paths if p.stem.removeprefix("bench_") in names or p.stem in names]
    results: dict[str, Any] = {}
    for path in paths:
        print(f"== {path.stem}", flush=True)
        started = time.perf_counter()
        try:
            result = _run_isolated(path)
        except Exception as exc:
            traceback.print_exc()
            results[path.stem] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        seconds = round(time.perf_counter() - started, 1)
        results[path.stem] = {"seconds": seconds, "result": result}
    OUTPUT.mkdir(parents=True, exist_ok=True)
    out = OUTPUT / "results.json"
    saved = dict(results)
    if names and out.exists():  # a partial run updates the last full one
        try:
            saved = {**json.loads(out.read_text(encoding="utf-8")), **results}
        except ValueError:
            saved = dict(results)
    out.write_text(json.dumps(saved, indent=1, default=str), encoding="utf-8")
    print("\n== summary")
    for name, entry in results.items():
        if "error" in entry:
            print(f"{name:<16} FAILED  {entry['error']}")
        else:
            print(f"{name:<16} {entry['seconds']:>6.1f} s  {_summary(entry['result'])}")
    print(f"wrote {out}")
    return 1 if any("error" in entry for entry in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
