# SPDX-License-Identifier: MIT
"""
Health over time: the window's metrics, the status's last change and its trend.

`window_metrics` turns the buckets of a `RecentWindow` into the ``window_*``
keys that `service_health` judges. `judge` scores a service now and tells the
trend (the score now against the score of the window that ended one window
ago) and how long the status has held. The status is re-evaluated at the end
of every bucket since the previous question (from the ring, so the answer does
not depend on how often health is asked), and remembered in a `HealthTimeline`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._health import HealthThresholds, service_health
from ._recent import BUCKETS, RecentWindow

__all__ = [
    "RECOVERING",
    "STABLE",
    "TREND_POINTS",
    "WORSENING",
    "HealthTimeline",
    "judge",
    "state_at",
    "window_metrics",
]

RECOVERING, WORSENING, STABLE = "recovering", "worsening", "stable"
#: Score difference (points) between now and one window ago that makes a trend.
TREND_POINTS = 5.0


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def window_metrics(w: RecentWindow, last: int) -> dict[str, Any]:
    """Return the ``window_*`` metrics of the window that ends with bucket *last* of *w*."""
    x = w.sums(last)
    calls = x["served"] + x["failed"]
    return {
        "window_seconds": w.window_seconds,
        "window_calls": int(calls),
        "window_served": int(x["served"]),
        "window_failed": int(x["failed"]),
        "window_shed": int(x["shed"]),
        "window_cancelled": int(x["cancelled"]),
        "window_success_rate": _ratio(x["served"], calls) if calls else 1.0,
        "window_failure_rate": _ratio(x["failed"], calls),
        "window_denial_rate": _ratio(x["denials"], x["denials"] + x["admissions"]),
        "window_average_response_time": _ratio(x["attempt_latency"], x["attempts"]),
        "window_retries_per_request": _ratio(x["retries"], x["started"]),
        "window_fallback_rate": _ratio(x["fallbacks"], x["started"]),
        "window_violation_rate": _ratio(x["violations"], x["attempts"]),
        "window_authentication_failures": int(x["authentication"]),
        "window_quota_exhausted": int(x["quota"]),
    }


def state_at(current: str, transitions: Iterable[tuple[float, str, str]], at: float) -> str:
    """
    Return the breaker state at monotonic time *at*.

    Args:
        current: The state now.
        transitions: ``(time, old, new)`` of the latest transitions, oldest first.
        at: A past time.
    """
    state = current
    for when, old, _new in reversed(list(transitions)):
        if when <= at:
            break
        state = old
    return state


class HealthTimeline:
    """
    The status of one service as last evaluated, and when it last changed.

    Attributes:
        status: The status at the end of the last bucket evaluated.
        previous: The status before the last change (None: it never changed).
        changed_at: Monotonic time of the last change (or of the service's creation).
        done: Number of the last bucket whose end was evaluated.
    """

    __slots__ = ("changed_at", "done", "previous", "status")

    def __init__(self, now: float, bucket: int) -> None:
        self.status = "healthy"
        self.previous: str | None = None
        self.changed_at = now
        self.done = bucket - 1

    def note(self, status: str, at: float) -> None:
        """Record that the status was *status* from time *at* (not before the last change)."""
        if status != self.status:
            self.previous, self.status = self.status, status
            self.changed_at = max(at, self.changed_at)


def _dated(history: list[tuple[float, str, str]], number: int, width: float) -> float:
    """When bucket *number* changed: its last breaker transition, else its start."""
    start = number * width
    end = start + width
    return max((when for when, _old, _new in history if start < when <= end), default=start)


def judge(
    m: dict[str, Any],
    w: RecentWindow,
    timeline: HealthTimeline,
    transitions: Iterable[tuple[float, str, str]],
    t: HealthThresholds,
    now: float,
) -> dict[str, Any]:
    """
    Score one service now, with its trend and the time since its status changed.

    Args:
        m: The service's snapshot at *now* (with its ``window_*`` keys).
        w: Its health window.
        timeline: Its remembered status; updated for the buckets ended since.
        transitions: Its latest breaker transitions, oldest first.
        t: The thresholds.
        now: Monotonic time of *m*.

    Returns:
        `service_health` plus ``trend``, ``seconds_since_change``,
        ``previous_status``, ``window_seconds`` and ``window_calls``.
    """
    history = list(transitions)  # a copy: a scrape may run in another thread
    current = w.bucket(now)
    state = m["circuit_state"]

    def past(last: int) -> dict[str, Any]:
        end = (last + 1) * w.width
        return {"circuit_state": state_at(state, history, end), **window_metrics(w, last)}

    # Each ended bucket's window, in order: a change is dated to the last breaker
    # transition in the bucket where it happened, else to the bucket's start (old
    # calls left the window, or new ones came).
    for number in range(max(timeline.done + 1, current - BUCKETS), current):
        timeline.note(service_health(past(number), t)["status"], _dated(history, number, w.width))
    timeline.done = max(timeline.done, current - 1)
    health = service_health(m, t)
    if health["status"] == timeline.status:
        changed_at, previous = timeline.changed_at, timeline.previous
    else:  # it changed in the current bucket
        changed_at = max(_dated(history, current, w.width), timeline.changed_at)
        previous = timeline.status
    before = service_health(past(current - BUCKETS), t)["health_score"]
    delta = health["health_score"] - before
    trend = RECOVERING if delta > TREND_POINTS else WORSENING if delta < -TREND_POINTS else STABLE
    return {
        **health,
        "trend": trend,
        "seconds_since_change": max(0.0, now - changed_at),
        "previous_status": previous,
        "window_seconds": w.window_seconds,
        "window_calls": m["window_calls"],
    }
