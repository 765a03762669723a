# SPDX-License-Identifier: MIT
"""
Every HTTP request a benchmark client sends: the client's own HTTP log.

The fault server counts per whole second, and a ``--quick`` run lasts a few
seconds, so the timelines and the per-call figures come from here. Every client
talks through an ``httpx2.AsyncClient`` (the SDK's defaults) whose event hooks
note when each request was sent, which call it belongs to (the ``#<index>:``
its prompt starts with) and the status of its reply (None: no reply, a dropped
connection or a timeout). On loopback what a client sends is what the server
counts: the totals match ``/_stats``.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
import openai

__all__ = ["TIMELINE_COLUMNS", "WireLog", "WireRecord", "attempts", "wire_timeline"]

_INDEX = re.compile(rb"#(\d+): ")

#: The columns of a timeline row besides ``t``: requests sent, then by reply.
TIMELINE_COLUMNS = ("sent", "accepted", "rate_limited", "server_errors", "no_reply", "other")


@dataclass(slots=True)
class WireRecord:
    """
    One HTTP request sent by a client.

    Attributes:
        index: The call it belongs to (its request's index), or None if unknown.
        sent: Seconds since the run's start when it was sent.
        status: The reply's HTTP status, or None (no reply).
    """

    index: int | None
    sent: float
    status: int | None = None


class WireLog:
    """The HTTP requests of one client's run, recorded by ``httpx2`` event hooks."""

    def __init__(self) -> None:
        self.records: list[WireRecord] = []
        self._t0 = 0.0
        self._recording = False
        self._open: dict[int, tuple[httpx2.Request, WireRecord]] = {}

    def http_client(self) -> httpx2.AsyncClient:
        """A new HTTP client (the openai SDK's defaults) whose requests this log records."""
        hooks: dict[str, list[Callable[..., Any]]] = {
            "request": [self._on_request],
            "response": [self._on_response],
        }
        return openai.DefaultAsyncHttpxClient(event_hooks=hooks)

    def start(self, t0: float) -> None:
        """Forget what came before (the warm-up) and record from *t0*, a ``loop.time()``."""
        self.records.clear()
        self._open.clear()
        self._t0 = t0
        self._recording = True

    def stop(self) -> None:
        """Record no more requests."""
        self._recording = False
        self._open.clear()

    async def _on_request(self, request: httpx2.Request) -> None:
        if not self._recording:
            return
        match = _INDEX.search(request.content)
        sent = asyncio.get_running_loop().time() - self._t0
        record = WireRecord(int(match.group(1)) if match else None, sent)
        self.records.append(record)
        self._open[id(request)] = (request, record)

    async def _on_response(self, response: httpx2.Response) -> None:
        entry = self._open.pop(id(response.request), None)
        if entry is not None and entry[0] is response.request:
            entry[1].status = response.status_code


def _column(status: int | None) -> str:
    if status is None:
        return "no_reply"
    if status == 200:
        return "accepted"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_errors"
    return "other"


def wire_timeline(records: Sequence[WireRecord], bin_seconds: float) -> list[dict[str, float]]:
    """
    Requests sent per bin of *bin_seconds*, by reply, from the first bin to the last sent in.

    Returns:
        One row per bin: ``{"t": the bin's start, "sent", "accepted", "rate_limited",
        "server_errors", "no_reply", "other"}`` (counts, not rates).
    """
    if not records:
        return []
    last = max(int(r.sent // bin_seconds) for r in records)
    rows: list[dict[str, float]] = [
        {"t": round(b * bin_seconds, 6), **dict.fromkeys(TIMELINE_COLUMNS, 0)}
        for b in range(last + 1)
    ]
    for record in records:
        row = rows[max(0, int(record.sent // bin_seconds))]
        row["sent"] += 1
        row[_column(record.status)] += 1
    return rows


def attempts(records: Sequence[WireRecord]) -> Counter[int]:
    """HTTP requests sent per call index."""
    return Counter(r.index for r in records if r.index is not None)
