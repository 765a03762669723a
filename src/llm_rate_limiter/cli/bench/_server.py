# SPDX-License-Identifier: MIT
"""
The fault server of a benchmark run, in its own process.

``python -m llm_rate_limiter.cli serve-mock --port 0`` is started as a child
process (never in the benchmark's interpreter, so the server's CPU does not
slow the clients' event loop), listening on 127.0.0.1 only. Only that child is
ever stopped, by its PID: SIGTERM, then SIGKILL if it does not exit.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from typing import Any

import httpx2

__all__ = ["BenchServer"]

_START_TIMEOUT = 30.0


class BenchServer:
    """
    A ``serve-mock`` child process and a control channel to it.

    Use as a context manager: the process is stopped on exit, whatever happened.
    """

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self._control: httpx2.Client | None = None

    def __enter__(self) -> BenchServer:
        command = [sys.executable, "-m", "llm_rate_limiter.cli", "serve-mock"]
        command += ["--host", "127.0.0.1", "--port", "0"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            self.base_url = self._read_url(self.process)
            root = self.base_url.removesuffix("/v1")
            self._control = httpx2.Client(base_url=root, timeout=10.0)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @staticmethod
    def _read_url(process: subprocess.Popen[str]) -> str:
        assert process.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()))  # type: ignore[union-attr]
        reader.daemon = True
        reader.start()
        reader.join(_START_TIMEOUT)
        url = lines[0].strip() if lines else ""
        if not url.startswith("http://127.0.0.1:"):
            msg = f"serve-mock did not print its loopback URL within {_START_TIMEOUT:g} s ({url!r})"
            raise RuntimeError(msg)
        return url

    def configure(self, settings: dict[str, Any]) -> None:
        """Apply *settings* (`FaultConfig` fields) through ``POST /_control``."""
        assert self._control is not None
        response = self._control.post("/_control", json=settings)
        if response.status_code != 200:
            msg = f"the fault server refused the settings: {response.text}"
            raise RuntimeError(msg)

    def reset(self) -> None:
        """Zero the counters, refill the buckets and restart the timeline (``POST /_reset``)."""
        assert self._control is not None
        self._control.post("/_reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        """The server's counters and per-second timeline (``GET /_stats``)."""
        assert self._control is not None
        response = self._control.get("/_stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def stop(self) -> None:
        """Stop the child process (only it, by its PID) and close the control channel."""
        if self._control is not None:
            self._control.close()
            self._control = None
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        finally:
            if process.stdout is not None:
                process.stdout.close()
