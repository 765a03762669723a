# SPDX-License-Identifier: MIT
"""
The LiteLLM ``Router`` peer of ``bench_outage_recovery``, run in a child process.

LiteLLM is never a dependency of the project: installing it into the project's
venv would downgrade python-dateutil and add httpx 0.28, so it lives in a venv
of its own (``/tmp/litellm-venv``, or ``$LITELLM_PYTHON``; the project's own
interpreter when ``import litellm`` works there). The child imports the
library the parent imported and `_outage_load` (``PYTHONPATH``), configures and
resets the fault server itself, runs the same closed loop and writes its
records as JSON. LiteLLM's remote catalogue fetches are switched off
(``LITELLM_OFFLINE_MODE``), so all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import llm_rate_limiter

HERE = Path(__file__).resolve().parent
NAME = "litellm_router"
_VENV_PYTHON = Path("/tmp/litellm-venv/bin/python")
_OFFLINE = {"LITELLM_OFFLINE_MODE": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "true"}


def litellm_python() -> tuple[str | None, str]:
    """The interpreter that can ``import litellm``, and where it was found (or why not)."""
    if importlib.util.find_spec("litellm") is not None:
        return sys.executable, "the project's venv"
    candidate = Path(os.environ.get("LITELLM_PYTHON", _VENV_PYTHON))
    if not candidate.exists():
        return None, f"litellm is not importable here and {candidate} does not exist"
    probe = subprocess.run(  # find_spec, not import: importing litellm takes ~4 s
        [str(candidate), "-c", "import importlib.util as u; assert u.find_spec('litellm')"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        return None, f"litellm is not importable here nor in {candidate}"
    return str(candidate), str(candidate.parent.parent)


def run_litellm(python: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run the LiteLLM load in a child *python*; return its records and unfinished count."""
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        # The library the parent imported (this checkout's src/, or an export on PYTHONPATH).
        src = Path(llm_rate_limiter.__file__).resolve().parent.parent
        env = {**os.environ, **_OFFLINE, "PYTHONPATH": f"{src}{os.pathsep}{HERE}"}
        subprocess.run(
            [python, str(Path(__file__)), str(spec_path), str(out_path)],
            env=env,
            cwd=tmp,
            check=True,
            timeout=spec["plan"]["cap"] + 120,
        )
        result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
        return result


class LiteLLMRouter:
    """``litellm.Router`` with one deployment on the fault server, ``num_retries=8``."""

    name = NAME

    def __init__(self, base_url: str, api_key: str, model: str, attempt_timeout: float) -> None:
        from litellm import Router  # type: ignore[import-not-found,unused-ignore]

        deployment = {"model": f"openai/{model}", "api_base": base_url, "api_key": api_key}
        self.model = model
        self.router = Router(
            model_list=[{"model_name": model, "litellm_params": deployment}],
            num_retries=8,
            timeout=attempt_timeout,
        )

    async def call(self, request: Any) -> None:
        await self.router.acompletion(
            model=self.model, messages=request.messages, max_tokens=request.max_tokens
        )

    async def aclose(self) -> None:
        pass


def _child(spec_path: str, out_path: str) -> None:
    from _outage_load import Control, Plan, measure

    from llm_rate_limiter.cli.bench._clients import API_KEY, MODEL
    from llm_rate_limiter.cli.bench._scenarios import build_requests

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    plan = Plan(**{**spec["plan"], "outage": tuple(spec["plan"]["outage"])})
    requests = build_requests(plan.calls)
    client = LiteLLMRouter(spec["base_url"], API_KEY, MODEL, spec["attempt_timeout"])
    control = Control(spec["base_url"])
    try:
        records, unfinished = asyncio.run(
            measure(client, control, spec["settings"], spec["warm_up"], requests, plan)
        )
    finally:
        control.close()
    out = {"records": [asdict(r) for r in records], "unfinished": unfinished}
    Path(out_path).write_text(json.dumps(out), encoding="utf-8")


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
