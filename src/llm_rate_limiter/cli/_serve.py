# SPDX-License-Identifier: MIT
"""``llm-rate-limiter serve-mock``: run the fault server until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    from ..testing import FaultConfig

__all__ = ["register", "run"]

# (flag, FaultConfig field, type, help)
_OPTIONS: tuple[tuple[str, str, type, str], ...] = (
    ("--rpm", "rpm", float, "requests per minute per API key"),
    ("--rps", "rps", float, "requests per second per API key"),
    ("--tpm", "tpm", float, "tokens per minute per API key"),
    ("--tps", "tps", float, "tokens per second per API key"),
    ("--request-burst", "request_burst", float, "requests bucket size (default: 1 s worth)"),
    ("--token-burst", "token_burst", float, "tokens bucket size (default: 1 s worth)"),
    ("--concurrency", "max_concurrency", int, "concurrent requests per API key"),
    ("--completion-tokens", "completion_tokens", int, "completion tokens per reply"),
    ("--latency", "latency", float, "fixed delay of each reply, in seconds"),
    ("--latency-jitter", "latency_jitter", float, "extra random delay, up to this many seconds"),
    ("--error-rate", "error_500_rate", float, "probability of a 500"),
    ("--error-502-rate", "error_502_rate", float, "probability of a 502"),
    ("--error-503-rate", "error_503_rate", float, "probability of a 503"),
    ("--hang-rate", "hang_rate", float, "probability of never answering"),
    ("--drop-rate", "drop_rate", float, "probability of closing the connection"),
    ("--stream-failure-rate", "stream_failure_rate", float, "probability of a broken stream"),
    ("--malformed-rate", "malformed_rate", float, "probability of a broken JSON body"),
    ("--seed", "seed", int, "seed of the fault draws"),
)


def register(subparsers: Any) -> None:
    """Add the ``serve-mock`` subcommand to *subparsers*."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve-mock",
        help="run the fault-injecting OpenAI-compatible server",
        description=(
            "Serve an OpenAI-compatible API that rate-limits and fails on purpose. "
            "The first line printed is the base URL for the SDK."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one")
    for flag, dest, kind, text in _OPTIONS:
        metavar = flag[2:].upper().replace("-", "_")
        parser.add_argument(flag, dest=dest, type=kind, default=None, metavar=metavar, help=text)
    parser.add_argument("--dialect", choices=("openai", "moonshot"), default=None)
    parser.add_argument(
        "--outage",
        dest="outages",
        action="append",
        metavar="START:DURATION",
        help="a scheduled outage, seconds after start (repeatable)",
    )
    parser.add_argument("--insufficient-quota", action="store_true", default=None)
    parser.add_argument("--unauthorized", action="store_true", default=None)
    parser.set_defaults(handler=run)


def _config(args: argparse.Namespace) -> FaultConfig:
    from ..testing import FaultConfig

    fields = [dest for _, dest, _, _ in _OPTIONS] + [
        "dialect",
        "insufficient_quota",
        "unauthorized",
    ]
    settings: dict[str, Any] = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    outages = []
    for text in args.outages or ():
        start, sep, duration = text.partition(":")
        try:
            outages.append((float(start), float(duration)))
        except ValueError:
            sep = ""
        if not sep:
            msg = f"expected START:DURATION in seconds, got {text!r}"
            raise ConfigurationError("outage", msg)
    settings["outages"] = tuple(outages)
    return FaultConfig(**settings)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; return the exit code."""
    try:
        config = _config(args)
    except ConfigurationError as exc:
        print(f"llm-rate-limiter serve-mock: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except OSError as exc:
        print(f"llm-rate-limiter serve-mock: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: FaultConfig, host: str, port: int) -> None:
    from ..testing import FaultServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    async with FaultServer(config, host=host, port=port) as server:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            print(server.base_url, flush=True)
            print("serving; stop with Ctrl+C", file=sys.stderr, flush=True)
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
