# SPDX-License-Identifier: MIT
"""The fault server's counters and its per-second arrivals timeline."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FaultServerStatistics", "StatsRecorder"]

_TIMELINE_SECONDS = 3600
# Outcome -> the timeline column it counts in (besides "arrivals").
_COLUMN = {
    "accepted": "accepted",
    "rate_limited": "rate_limited",
    "error": "errors",
}


@dataclass(frozen=True, slots=True)
class FaultServerStatistics:
    """
    What the fault server has seen since it started (or was reset).

    Attributes:
        requests: Chat completion requests that arrived.
        accepted: Requests admitted by the limits (they consumed quota).
        succeeded: Complete, well-formed 200 replies.
        rate_limited: 429 replies, of every kind.
        rate_limited_by_type: 429 replies by kind: ``requests``, ``tokens``,
            ``concurrency``, ``insufficient_quota``.
        server_errors: 5xx replies (injected errors and outages).
        server_errors_by_status: 5xx replies by status code.
        outage_rejections: 503 replies sent because of an outage.
        auth_errors: 401 replies.
        bad_requests: 400 replies.
        hangs: Requests left unanswered on purpose.
        drops: Connections closed without a reply.
        stream_failures: Streams aborted in the middle.
        malformed: 200 replies with a broken body.
        tokens_accepted: Tokens charged for admitted requests.
        timeline: One entry per second since start that saw arrivals (the last
            hour at most): ``{"t", "arrivals", "accepted", "rate_limited", "errors"}``,
            where ``errors`` counts every reply that is neither a success nor a 429
            (401s, 400s, 5xx, hangs, drops, broken streams, malformed bodies).

    .. versionadded:: 0.1.0
    """

    requests: int = 0
    accepted: int = 0
    succeeded: int = 0
    rate_limited: int = 0
    rate_limited_by_type: dict[str, int] = field(default_factory=dict)
    server_errors: int = 0
    server_errors_by_status: dict[str, int] = field(default_factory=dict)
    outage_rejections: int = 0
    auth_errors: int = 0
    bad_requests: int = 0
    hangs: int = 0
    drops: int = 0
    stream_failures: int = 0
    malformed: int = 0
    tokens_accepted: int = 0
    timeline: list[dict[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The statistics as a JSON-ready dict (what ``GET /_stats`` returns)."""
        return asdict(self)


class StatsRecorder:
    """Mutable counters behind `FaultServerStatistics`; every method is O(1)."""

    __slots__ = (
        "_counts",
        "_rate_limited",
        "_server_errors",
        "_timeline",
        "changed",
        "tokens_accepted",
    )

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._rate_limited: dict[str, int] = {}
        self._server_errors: dict[str, int] = {}
        self._timeline: OrderedDict[int, dict[str, int]] = OrderedDict()
        self.tokens_accepted = 0
        #: Set whenever a counter moves (for waiters; cleared by them).
        self.changed = asyncio.Event()

    def _bump(self, name: str) -> None:
        self._counts[name] = self._counts.get(name, 0) + 1
        self.changed.set()

    def _second(self, second: int) -> dict[str, int]:
        row = self._timeline.get(second)
        if row is None:
            row = {"t": second, "arrivals": 0, "accepted": 0, "rate_limited": 0, "errors": 0}
            self._timeline[second] = row
            if len(self._timeline) > _TIMELINE_SECONDS:
                self._timeline.popitem(last=False)
        return row

    def arrival(self, second: int) -> None:
        """Count a request arriving in *second* (offset since start)."""
        self._bump("requests")
        self._second(second)["arrivals"] += 1

    def outcome(self, second: int, name: str, column: str | None = None) -> None:
        """Count an outcome *name*; *column* is the timeline column it adds to."""
        self._bump(name)
        if column is not None:
            self._second(second)[_COLUMN[column]] += 1

    def accepted(self, second: int, tokens: int) -> None:
        """Count a request admitted by the limits, charged *tokens*."""
        self.outcome(second, "accepted", "accepted")
        self.tokens_accepted += tokens

    def rate_limited(self, second: int, kind: str) -> None:
        """Count a 429 of *kind*."""
        self.outcome(second, "rate_limited", "rate_limited")
        self._rate_limited[kind] = self._rate_limited.get(kind, 0) + 1

    def server_error(self, second: int, status: int, *, outage: bool = False) -> None:
        """Count a 5xx reply."""
        self.outcome(second, "server_errors", "error")
        key = str(status)
        self._server_errors[key] = self._server_errors.get(key, 0) + 1
        if outage:
            self._bump("outage_rejections")

    def snapshot(self) -> FaultServerStatistics:
        """A frozen copy of the counters."""
        c = self._counts.get
        return FaultServerStatistics(
            requests=c("requests", 0),
            accepted=c("accepted", 0),
            succeeded=c("succeeded", 0),
            rate_limited=c("rate_limited", 0),
            rate_limited_by_type=dict(self._rate_limited),
            server_errors=c("server_errors", 0),
            server_errors_by_status=dict(self._server_errors),
            outage_rejections=c("outage_rejections", 0),
            auth_errors=c("auth_errors", 0),
            bad_requests=c("bad_requests", 0),
            hangs=c("hangs", 0),
            drops=c("drops", 0),
            stream_failures=c("stream_failures", 0),
            malformed=c("malformed", 0),
            tokens_accepted=self.tokens_accepted,
            timeline=[dict(row) for row in self._timeline.values()],
        )
