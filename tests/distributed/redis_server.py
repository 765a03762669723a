# SPDX-License-Identifier: MIT
"""
`RedisServer`: a ``redis-server`` of a test's own on a loopback port.

No persistence, so a restart on the same port loses every key, as a real
server without persistence does. A test starts it (again), kills it
(SIGKILL, by PID), stalls it (SIGSTOP / SIGCONT); its log is drained by a
thread, and the wait for ``Ready to accept connections`` is bounded. Without
a ``redis-server`` binary the tests that use it fail (they never skip).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from collections.abc import Sequence

import anyio


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """
    A ``redis-server`` on *port* (a free one by default), not started yet.

    Args:
        port: Its port; a free loopback port when None.
        password: Its ``requirepass`` (and in `url`), if any.
        args: More ``redis-server`` arguments (cluster settings, say).
        directory: Its working directory (``--dir``), if any.
        timeout: Longest wait for it to accept connections, seconds.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        password: str | None = None,
        args: Sequence[str] = (),
        directory: str | None = None,
        timeout: float = 20.0,
    ) -> None:
        self.port = free_port() if port is None else port
        self.password = password
        self.url = f"redis://{f':{password}@' if password else ''}127.0.0.1:{self.port}/0"
        self.timeout = timeout
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        if directory is not None:
            argv += ["--dir", directory]
        if password:
            argv += ["--requirepass", password]
        self.argv = argv + list(args)
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Start it and wait (at most `timeout`) until it says it accepts connections."""
        proc = self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, text=True)
        ready = threading.Event()
        out = proc.stdout
        assert out is not None

        def drain() -> None:  # read the log until the server exits, then close the pipe
            with out:
                for line in out:
                    if "Ready to accept connections" in line:
                        ready.set()

        self._reader = threading.Thread(target=drain, daemon=True)
        self._reader.start()
        if not ready.wait(self.timeout):
            self.kill()
            msg = f"redis-server did not start on port {self.port}"
            raise RuntimeError(msg)

    async def astart(self) -> None:
        """`start` from async code, in a worker thread."""
        await anyio.to_thread.run_sync(self.start)

    @property
    def alive(self) -> bool:
        """Started and not killed since."""
        return self.proc is not None

    def kill(self) -> None:
        """SIGKILL it (its data is gone); nothing if it is not running."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            if self._reader is not None:
                self._reader.join(10)
            assert proc.stdout is not None
            proc.stdout.close()

    def stall(self, stop: bool = True) -> None:
        """SIGSTOP it: connections stay open, nothing answers (or SIGCONT it again)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP if stop else signal.SIGCONT)
