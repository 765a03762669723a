# SPDX-License-Identifier: MIT
"""``llm-rate-limiter serve-mock``: run the fault server until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from ..testing._server_config import DIALECTS, FAULT_RATE_FIELDS

if TYPE_CHECKING:
    from ..testing import FaultConfig

__all__ = ["register", "run"]

_PROG = "llm-rate-limiter serve-mock"
_UNLIMITED = "unlimited"

# (flag, FaultConfig field, type, help, what an unset option means): the help
# ends with the field's default, read from FaultConfig, or with the last column
# when that default is None. The flag is the field's name, except where noted.
_OPTIONS: tuple[tuple[str, str, type, str, str], ...] = (
    ("--rpm", "rpm", float, "requests per minute per API key", _UNLIMITED),
    ("--rps", "rps", float, "requests per second per API key", _UNLIMITED),
    ("--tpm", "tpm", float, "tokens per minute per API key", _UNLIMITED),
    ("--tps", "tps", float, "tokens per second per API key", _UNLIMITED),
    ("--request-burst", "request_burst", float, "requests bucket size", "1 s worth"),
    ("--token-burst", "token_burst", float, "tokens bucket size", "1 s worth"),
    ("--concurrency", "max_concurrency", int, "concurrent requests per API key", _UNLIMITED),
    ("--completion-tokens", "completion_tokens", int, "completion tokens per reply", ""),
    ("--latency", "latency", float, "fixed delay of each reply", ""),
    (
        "--latency-jitter",
        "latency_jitter",
        float,
        "extra random delay, up to this much",
        "",
    ),
    ("--error-500-rate", "error_500_rate", float, "probability of a 500", ""),
    ("--error-502-rate", "error_502_rate", float, "probability of a 502", ""),
    ("--error-503-rate", "error_503_rate", float, "probability of a 503", ""),
    ("--hang-rate", "hang_rate", float, "probability of never answering", ""),
    ("--drop-rate", "drop_rate", float, "probability of closing the connection", ""),
    ("--stream-failure-rate", "stream_failure_rate", float, "probability of a broken stream", ""),
    ("--malformed-rate", "malformed_rate", float, "probability of a broken JSON body", ""),
    ("--seed", "seed", int, "seed of the fault draws", ""),
)

#: Old spellings still accepted: alias -> the option it stands for.
DEPRECATED_ALIASES: dict[str, str] = {"--error-rate": "--error-500-rate"}

#: FaultConfig field -> the option that sets it.
_FLAGS: dict[str, str] = {dest: flag for flag, dest, *_ in _OPTIONS} | {
    "outages": "--outage",
    "outage": "--outage",
    "dialect": "--dialect",
}


class _Setting(argparse.Action):
    """Store the value, and remember the spelling typed (errors quote it)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        typed = dict(getattr(namespace, "typed_options", None) or {})
        typed[self.dest] = option_string
        namespace.typed_options = typed
        new = DEPRECATED_ALIASES.get(option_string or "")
        if new is not None:
            print(f"{_PROG}: {option_string} is deprecated, use {new}", file=sys.stderr)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        msg = f"expected a port number from 0 to 65535 (0 picks a free one), got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _metavar(dest: str, kind: type) -> str:
    if dest.endswith("_rate"):
        return "P"
    if dest.startswith("latency"):
        return "SECONDS"
    return "N"


def _default_text(value: object, unset: str) -> str:
    if value is None:
        return unset
    return f"{value:g}" if isinstance(value, float) else str(value)


def register(subparsers: Any) -> None:
    """Add the ``serve-mock`` subcommand to *subparsers*."""
    from ..testing._server_config import FaultConfig

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve-mock",
        help="run the fault-injecting OpenAI-compatible server",
        description=(
            "Serve an OpenAI-compatible API that rate-limits and fails on purpose. "
            "The first line printed is the base URL for the SDK. Options are the "
            "FaultConfig fields of the same name (--concurrency is max_concurrency); "
            "the fault probabilities may add up to 1 at most."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=8000, help="port; 0 picks a free one (default: 8000)"
    )
    defaults = {f.name: f.default for f in dataclasses.fields(FaultConfig)}
    for flag, dest, kind, text, unset in _OPTIONS:
        metavar = _metavar(dest, kind)
        help_text = f"{text} (default: {_default_text(defaults[dest], unset)})"
        parser.add_argument(
            flag,
            dest=dest,
            type=kind,
            default=None,
            metavar=metavar,
            help=help_text,
            action=_Setting,
        )
        for alias in (a for a, new in DEPRECATED_ALIASES.items() if new == flag):
            parser.add_argument(
                alias,
                dest=dest,
                type=kind,
                default=None,
                metavar=metavar,
                help=f"deprecated alias of {flag}",
                action=_Setting,
            )
    parser.add_argument(
        "--dialect",
        choices=DIALECTS,
        default=None,
        help="rate-limit headers and error bodies in this provider's style: openai sends "
        "all six x-ratelimit-* headers, moonshot and plain x-ratelimit-limit/-remaining/-reset "
        "(moonshot's error bodies have a type, no code), groq requests per day, together "
        "per-second limits, azure remaining counts and x-ms-retry-after-ms, ietf "
        "RateLimit/RateLimit-Policy, gemini no header but a retryDelay in its 429 body "
        "(default: openai)",
    )
    parser.add_argument(
        "--outage",
        dest="outages",
        action="append",
        metavar="START:DURATION",
        help="a scheduled outage (503s), seconds after start (repeatable; default: none)",
    )
    parser.add_argument(
        "--insufficient-quota",
        action="store_true",
        default=None,
        help="answer every request with a 429 insufficient_quota (a billing error, not a rate)",
    )
    parser.add_argument(
        "--unauthorized",
        action="store_true",
        default=None,
        help="answer every request with a 401 invalid_api_key",
    )
    parser.set_defaults(handler=run, typed_options=None)


def _config(args: argparse.Namespace) -> FaultConfig:
    from ..testing import FaultConfig

    fields = [dest for _, dest, *_ in _OPTIONS] + ["dialect", "insufficient_quota", "unauthorized"]
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


def explain(exc: ConfigurationError, typed: Mapping[str, str] | None = None) -> str:
    """
    *exc* in the command line's words: each setting named by the option the user typed.

    Args:
        exc: An error of `FaultConfig` (its ``setting`` is a field name).
        typed: Field name -> the option spelling given on the command line.
    """
    typed = typed or {}

    def flag(name: str) -> str:
        return typed.get(name) or _FLAGS.get(name, name)

    text = str(exc)
    message = text.removeprefix(f"{exc.setting}: ")
    if exc.setting == "error_rates":
        given = [flag(name) for name in FAULT_RATE_FIELDS if name in typed]
        return f"{', '.join(given) or 'the fault probabilities'}: {message}"
    pattern = r"(?<![\w-])(" + "|".join(sorted(map(re.escape, _FLAGS), key=len)[::-1]) + r")\b"
    message = re.sub(pattern, lambda m: flag(m.group(1)), message)
    return f"{flag(exc.setting)}: {message}"


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; return the exit code."""
    try:
        config = _config(args)
    except ConfigurationError as exc:
        print(f"{_PROG}: {explain(exc, args.typed_options)}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            reason = exc.strerror or str(exc)
            print(
                f"{_PROG}: cannot listen on {where}: {reason}; "
                "choose another port with --port, or --port 0 to pick a free one",
                file=sys.stderr,
            )
            return 2
        print(f"{_PROG}: cannot listen on {where}: {exc}", file=sys.stderr)
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
