# SPDX-License-Identifier: MIT
"""`FaultServer`: the fault-injecting OpenAI-compatible server, run in-process by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Any

import uvicorn

from .._clock import SYSTEM_CLOCK, Clock
from .._validate import check_int, check_number
from ..exceptions import ConfigurationError
from ._server_app import FaultApp
from ._server_config import FaultConfig, apply_changes
from ._server_state import ServerState
from ._server_stats import FaultServerStatistics

__all__ = ["FaultServer"]

_SHUTDOWN_GRACE = 2.0


class FaultServer:
    """
    An OpenAI-compatible HTTP server that rate-limits and fails on command.

    ``async with FaultServer(config) as server:`` serves on a free loopback
    port until the block ends; point ``openai.AsyncOpenAI(base_url=server.base_url)``
    at it. Closing is prompt: hanging requests drop their connections.

    Args:
        config: Limits and faults; the default enforces nothing and never fails.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.
        clock: Where the server reads monotonic time and sleeps its latency.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        config: FaultConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._config = config or FaultConfig()
        self._host = host
        self._port = check_int("port", port)
        if port > 65535:
            msg = f"must be <= 65535, got {port}"
            raise ConfigurationError("port", msg)
        self._clock = clock
        self._state = ServerState(self._config, clock.monotonic)
        self._release = asyncio.Event()
        self._app = FaultApp(self._state, clock, self._release)
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        if self._socket is None:
            msg = "the fault server is not running"
            raise RuntimeError(msg)
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:8123``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The ``base_url`` for the openai SDK (the root URL plus ``/v1``)."""
        return f"{self.url}/v1"

    @property
    def config(self) -> FaultConfig:
        """The settings in force."""
        return self._state.config

    async def start(self) -> None:
        """Bind the port and start serving; returns once uvicorn accepts connections."""
        if self._server is not None:
            msg = "the fault server is already running"
            raise RuntimeError(msg)
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # proto must say TCP: asyncio disables Nagle only on sockets that do, and with
        # Nagle on, a reply written as headers + body waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        config = uvicorn.Config(
            self._app.asgi,
            lifespan="off",
            access_log=False,
            log_level="warning",
            log_config=None,
            timeout_graceful_shutdown=int(_SHUTDOWN_GRACE),
        )
        server = uvicorn.Server(config)
        config.load()
        server.lifespan = config.lifespan_class(config)
        self._socket, self._server = sock, server
        self._release.clear()
        await server.startup(sockets=[sock])

    async def close(self) -> None:
        """Stop serving: drop hanging requests and close every connection."""
        server, sock = self._server, self._socket
        if server is None or sock is None:
            return
        self._server = None
        self._release.set()
        for listener in server.servers:
            listener.close()
        for connection in list(server.server_state.connections):
            connection.shutdown()
        tasks = list(server.server_state.tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=_SHUTDOWN_GRACE)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for connection in list(server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        for listener in server.servers:
            await listener.wait_closed()
        sock.close()
        self._socket = None

    async def __aenter__(self) -> FaultServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def stats(self) -> FaultServerStatistics:
        """A snapshot of the counters (what ``GET /_stats`` returns)."""
        return self._state.stats.snapshot()

    def set_faults(self, **changes: Any) -> FaultConfig:
        """
        Change settings while running, validated like `FaultConfig`.

        Args:
            changes: `FaultConfig` fields and their new values.

        Returns:
            The settings now in force.

        Raises:
            ConfigurationError: An unknown field or a bad value; nothing changes.
        """
        config = apply_changes(self._state.config, changes)
        self._state.set_config(config)
        return config

    def outage(self, seconds: float | timedelta) -> None:
        """Answer every chat request with 503 for the next *seconds*."""
        duration = check_number("seconds", seconds)
        assert duration is not None
        self._state.outage(duration)

    def reset(self) -> None:
        """Zero the counters and the timeline, refill every bucket and end outages."""
        self._state.reset()

    async def wait_until(
        self, predicate: Callable[[FaultServerStatistics], bool]
    ) -> FaultServerStatistics:
        """
        Wait until the statistics satisfy *predicate* (e.g. two requests hang).

        Bound the wait with ``asyncio.timeout`` or ``anyio.fail_after``.

        Returns:
            The first snapshot that satisfied *predicate*.
        """
        while True:
            changed = self._state.stats.changed
            changed.clear()
            snapshot = self.stats()
            if predicate(snapshot):
                return snapshot
            await changed.wait()
