# SPDX-License-Identifier: MIT
"""
The targets of ``llm-rate-limiter bench``, judged per client: met, missed, or not measured.

A target is *not measured* (never met or missed) when the run could not have
shown it: an outage too short for the breaker to trial twice, calls that stop
arriving before steady throughput could be seen, too few admissions past the
server's burst for a steady goodput. The verdict of a measured target is
``{"value", "met"}``; of one not measured ``{"value": None, "met": None}``,
with the reason in the target's ``note`` when the scenario's sizes are the cause.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ._steady import MIN_STEADY

__all__ = ["GOODPUT_TARGET", "evaluate_targets", "outage_unmeasured", "recovery_unmeasured"]

#: Steady goodput a client must reach in the rate- and token-limited scenarios.
GOODPUT_TARGET = 0.97

_Test = Callable[[Mapping[str, Any]], tuple[Any, bool | None]]


def _last_arrival(info: Mapping[str, Any]) -> float | None:
    rate = info.get("arrival_rate")
    if rate is None:
        return None
    return min((int(info["calls"]) - 1) / float(rate), float(info.get("max_seconds", math.inf)))


def outage_unmeasured(info: Mapping[str, Any], reset_timeout: float) -> str | None:
    """Why *info*'s outage cannot show the breaker's pace while down, or None if it can."""
    if not info.get("outage"):
        return None
    start, duration = (float(v) for v in info["outage"])
    # The per-second count skips the outage's first second (calls in flight when it began).
    seconds = len(range(math.floor(start) + 1, math.ceil(start + duration)))
    need = 2 * max(1, math.ceil(reset_timeout))
    if seconds < need:
        return (
            f"a {duration:g} s outage leaves {seconds} whole second(s) after its first; "
            f"{need} needed for two breaker trials"
        )
    last = _last_arrival(info)
    if last is not None and last < start + duration:
        return f"calls stop arriving at {last:g} s, before the outage ends"
    return None


def recovery_unmeasured(info: Mapping[str, Any], within: float) -> str | None:
    """Why *info* cannot show throughput steady *within* seconds of the outage's end."""
    if not info.get("outage"):
        return None
    end = sum(float(v) for v in info["outage"])
    last = _last_arrival(info)
    if last is not None and last < end + within:
        return (
            f"calls stop arriving {last - end:g} s after the outage; "
            f"{within:g} s needed (a 1 s window starting by then)"
        )
    return None


def _check(
    out: list[dict[str, Any]],
    scenario: str,
    target: str,
    clients: Mapping[str, Mapping[str, Any]],
    test: _Test,
    *,
    unmeasured: str | None = None,
    unmeasured_client: str | None = None,
) -> None:
    verdicts: dict[str, dict[str, Any]] = {}
    for name, s in clients.items():
        if unmeasured is not None:
            verdicts[name] = {"value": None, "met": None}
            continue
        value, passed = test(s)
        verdicts[name] = {"value": value, "met": None if passed is None else bool(passed)}
    entry: dict[str, Any] = {"scenario": scenario, "target": target, "clients": verdicts}
    if unmeasured is not None:
        entry["note"] = unmeasured
    elif unmeasured_client is not None and any(v["met"] is None for v in verdicts.values()):
        entry["note"] = unmeasured_client
    out.append(entry)


def _goodput(s: Mapping[str, Any]) -> tuple[Any, bool | None]:
    value = s.get("goodput_steady")
    return value, None if value is None else value >= GOODPUT_TARGET


def _no_failure(s: Mapping[str, Any]) -> tuple[Any, bool | None]:
    return s["failures"], s["failures"] == 0


def evaluate_targets(
    scenarios: Mapping[str, Any], breaker: Mapping[str, Any], *, quick: bool = False
) -> list[dict[str, Any]]:
    """
    Check every client against the issues' targets, where its scenario was run.

    Args:
        scenarios: The report's scenarios (``{"scenario": sizes, "clients": figures}``).
        breaker: Our client's breaker settings (``half_open_max_calls``, ``reset_timeout``).
        quick: The run was ``--quick`` (named in the reason a target was not measured).

    Returns:
        One entry per target: ``{"scenario", "target", "clients": {name: {"value", "met"}}}``
        and a ``note`` when the scenario's sizes could not measure it.
    """
    out: list[dict[str, Any]] = []
    probes, reset = int(breaker["half_open_max_calls"]), float(breaker["reset_timeout"])
    why = "not measured in --quick: " if quick else "not measured: "

    def reason(text: str | None) -> str | None:
        return None if text is None else why + text

    steady = reason(f"fewer than {MIN_STEADY} admissions in a client's steady part")

    if "rate_limited" in scenarios:
        c = scenarios["rate_limited"]["clients"]
        target = f"steady goodput >= {GOODPUT_TARGET:g}"
        _check(out, "rate_limited", target, c, _goodput, unmeasured_client=steady)
        _check(
            out,
            "rate_limited",
            "<= 1% of requests answered 429",
            c,
            lambda s: (s["share_429"], s["share_429"] <= 0.01),
        )
        _check(out, "rate_limited", "no failed call", c, _no_failure)
    if "outage" in scenarios:
        c = scenarios["outage"]["clients"]
        info = scenarios["outage"].get("scenario", {})
        most = probes * max(1, math.ceil(1.0 / reset))  # the timeline counts whole seconds
        _check(
            out,
            "outage",
            f"<= {probes} request(s) per reset_timeout ({reset:g} s) while down",
            c,
            lambda s: (s["outage_max_per_second"], s["outage_max_per_second"] <= most),
            unmeasured=reason(outage_unmeasured(info, reset)),
        )
        within = reset + 1.0
        _check(
            out,
            "outage",
            f"steady throughput within {within:g} s of the outage's end",
            c,
            lambda s: (
                s["recovery_seconds"],
                s["recovery_seconds"] is not None and s["recovery_seconds"] <= within,
            ),
            unmeasured=reason(recovery_unmeasured(info, within)),
        )
    if "insufficient_quota" in scenarios:
        c = scenarios["insufficient_quota"]["clients"]
        _check(
            out,
            "insufficient_quota",
            "zero retries",
            c,
            lambda s: (s["quota_retries"], s["quota_retries"] == 0),
        )
        if all(s.get("failed_at_once") is not None for s in c.values()):
            _check(
                out,
                "insufficient_quota",
                "every call fails at once, as expected (one request, refused)",
                c,
                lambda s: (
                    f"{s['failed_at_once']}/{s['calls']}",
                    s["failed_at_once"] == s["calls"],
                ),
            )
    if "token_limited" in scenarios:
        c = scenarios["token_limited"]["clients"]
        _check(
            out,
            "token_limited",
            f"steady goodput >= {GOODPUT_TARGET:g} (as rate_limited)",
            c,
            _goodput,
            unmeasured_client=steady,
        )
        _check(out, "token_limited", "no failed call", c, _no_failure)
    return out
