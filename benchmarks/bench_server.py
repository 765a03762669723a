# SPDX-License-Identifier: MIT
"""
Throughput of the fault server, so load benchmarks can show it is not their bottleneck.

Starts ``llm-rate-limiter serve-mock --port 0`` (no limits, no faults) in its
own process, then sends ``REQUESTS`` trivial chat completions, ``CONCURRENCY``
at a time, with a raw ``httpx2.AsyncClient`` (no SDK, so the client costs as
little as possible), stopping early after ``MAX_SECONDS``. Reports requests
per second and the p50/p99 latency seen by the client. The client and the
server share the machine's cores, so the figure is a lower bound for the
server alone; ``server_cpu_ms_per_request`` (Linux only) is the server's own
CPU time per request during the timed window, the better measure of its cost.
Run ``python benchmarks/bench_server.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx2

REQUESTS = 3000
CONCURRENCY = 50
MAX_SECONDS = 10.0
BODY = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def _start_server() -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "llm_rate_limiter.cli", "serve-mock", "--port", "0"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http"):
        process.kill()
        msg = f"serve-mock did not print its URL (got {base_url!r})"
        raise RuntimeError(msg)
    return process, base_url


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process *pid*, from /proc (None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(base_url: str, pid: int) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0
    queue = iter(range(REQUESTS))
    limits = httpx2.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    headers = {"authorization": "Bearer sk-bench"}
    async with httpx2.AsyncClient(base_url=base_url, limits=limits, headers=headers) as client:
        # Warm up: open the connections before timing.
        await asyncio.gather(*(client.get("/models") for _ in range(CONCURRENCY)))
        cpu_before = _cpu_seconds(pid)
        started = time.perf_counter()
        deadline = started + MAX_SECONDS

        async def worker() -> None:
            nonlocal failures
            for _ in queue:
                if time.perf_counter() > deadline:
                    return
                sent = time.perf_counter()
                response = await client.post("/chat/completions", json=BODY)
                latencies.append(time.perf_counter() - sent)
                if response.status_code != 200:
                    failures += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        cpu_after = _cpu_seconds(pid)
    server_cpu = None
    if cpu_before is not None and cpu_after is not None and latencies:
        server_cpu = round((cpu_after - cpu_before) / len(latencies) * 1000, 3)
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "failures": failures,
        "concurrency": CONCURRENCY,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "server_cpu_ms_per_request": server_cpu,
    }


def run() -> dict[str, Any]:
    """Start the server process, run the load, stop the server; return the figures."""
    process, base_url = _start_server()
    try:
        return asyncio.run(_load(base_url, process.pid))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
