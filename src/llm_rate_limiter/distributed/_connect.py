# SPDX-License-Identifier: MIT
"""`redis_from_env`: a `redis.asyncio` client from ``REDIS_URL``, checked at once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
import redis.exceptions

from .._validate import check_number
from ..exceptions import ConfigurationError

__all__ = ["DEFAULT_REDIS_URL", "redis_from_env"]

#: Where the Redis backends connect when ``REDIS_URL`` is not set.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _redact(url: str) -> str:
    """*url* without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + host))


async def redis_from_env(
    url: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    socket_timeout: float = 5.0,
    socket_connect_timeout: float = 2.0,
) -> aioredis.Redis:
    """
    Connect to Redis at *url*, else ``REDIS_URL``, else ``redis://127.0.0.1:6379/0``.

    The client has socket timeouts, and it is pinged once here, so a wrong
    URL or a server that is down fails now, with a message naming
    ``REDIS_URL``, instead of on the first call (or never).

    Args:
        url: The Redis URL; None reads ``REDIS_URL``.
        environ: Where to read ``REDIS_URL`` (default `os.environ`).
        socket_timeout: Seconds any command may take on the socket.
        socket_connect_timeout: Seconds a connection may take to open.

    Returns:
        The connected client; close it with ``await client.aclose()``.

    Raises:
        ConfigurationError: The URL is malformed, the timeouts are not > 0,
            or the server cannot be reached or refuses the credentials.

    .. versionadded:: 0.1.0
    """
    check_number("socket_timeout", socket_timeout, inclusive=False)
    check_number("socket_connect_timeout", socket_connect_timeout, inclusive=False)
    env = os.environ if environ is None else environ
    url = url or env.get("REDIS_URL") or DEFAULT_REDIS_URL
    try:
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            health_check_interval=30,
        )
    except ValueError as exc:
        msg = f"{_redact(url)!r} is not a Redis URL ({exc})"
        raise ConfigurationError("REDIS_URL", msg) from None
    try:
        await client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        await client.aclose()
        msg = f"cannot connect to Redis at {_redact(url)}: {exc}"
        raise ConfigurationError("REDIS_URL", msg) from exc
    return client
