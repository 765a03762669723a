# SPDX-License-Identifier: MIT
"""
Load benchmarks against the peers: what ``llm-rate-limiter bench`` runs.

Starts the fault server in its own process and runs every scenario
(rate-limited, flaky, outage, insufficient_quota, token-limited) with the same
request set for each client: ours, the openai SDK with its default retries,
the SDK with ``max_retries=8``, and tenacity + aiolimiter by hand. Writes
``bench.md``, ``bench.json`` and PNG plots to ``bench-output/`` at the
repository root. Takes a few minutes; run ``python benchmarks/bench_load.py``
(``--quick`` for small sizes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from llm_rate_limiter.cli.bench._run import BenchOptions, run_bench

OUTPUT = Path(__file__).resolve().parent.parent / "bench-output"


def run(*, quick: bool = False, output: Path = OUTPUT) -> dict[str, Any]:
    """Run every scenario and client; return the figures (timelines left out)."""
    report = run_bench(BenchOptions(quick=quick, output=output))
    for scenario in report["scenarios"].values():
        for figures in scenario["clients"].values():
            figures.pop("timeline", None)
    return report


if __name__ == "__main__":
    result = run(quick="--quick" in sys.argv[1:])
    print(json.dumps(result["targets"], indent=1))
