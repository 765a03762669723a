# SPDX-License-Identifier: MIT
"""
Every Python block of the README runs as written, against the fault server.

Each block runs in its own interpreter with ``OPENAI_BASE_URL`` and
``MOONSHOT_BASE_URL`` pointing at a fault server in this test's event loop
(the README says so), so no block needs an API key or the network. The
pytest example runs under pytest with the library's plugin.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from llm_rate_limiter.testing import FaultServer

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def blocks() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


async def run(*argv: str, env: dict[str, str], cwd: Path | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(90):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def environment(fault_server: FaultServer) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OPENAI_BASE_URL=fault_server.base_url, MOONSHOT_BASE_URL=fault_server.base_url)
    for name in ("OPENAI_API_KEY", "MOONSHOT_API_KEY"):
        env.pop(name, None)
    return env


def test_the_readme_has_the_blocks_this_file_runs() -> None:
    """Six Python blocks: quickstart, configuration, policy, Redis, OpenTelemetry, pytest."""
    found = blocks()
    assert 6 == len(found)
    assert "asyncio.run(main())" in found[0]
    assert "@pytest.mark.anyio" in found[5]


@pytest.mark.parametrize(
    "index", [0, 1, 2, 4], ids=["quickstart", "configuration", "policy", "opentelemetry"]
)
async def test_block_runs(index: int, fault_server: FaultServer) -> None:
    """The block exits 0 and prints what it promises, with no error output."""
    code, out = await run(sys.executable, "-c", blocks()[index], env=environment(fault_server))
    assert 0 == code, out
    assert "Traceback" not in out
    if index == 0:
        lines = out.splitlines()
        assert "served by openai after 1 attempts" in lines[0]
        assert lines[2].startswith("{'status': 'healthy'")  # the stream ended its own line
        assert 2 == fault_server.stats().requests
    if index == 2:
        assert ["['result for llm rate limits']"] * 2 == out.splitlines()


@pytest.mark.redis
async def test_redis_block_runs(fault_server: FaultServer) -> None:
    """The Redis block connects to REDIS_URL, shares the limits and gets its reply."""
    env = environment(fault_server)
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    code, out = await run(sys.executable, "-c", blocks()[3], env=env)
    assert 0 == code, out
    assert out.strip()
    assert 1 == fault_server.stats().requests


async def test_pytest_example_passes(fault_server: FaultServer, tmp_path: Path) -> None:
    """The testing example, saved as a test file, passes under pytest with the plugin."""
    (tmp_path / "test_example.py").write_text(blocks()[5], encoding="utf-8")
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"]
    code, out = await run(*argv, env=environment(fault_server), cwd=tmp_path)
    assert 0 == code, out
    assert "1 passed" in out
