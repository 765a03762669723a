# SPDX-License-Identifier: MIT
"""
The issue detectors of capacity: local denials, limits, the circuit breaker, fallbacks.

Same contract as `_detect` (None below the trigger, else an issue with the
numbers and a recommendation naming a setting and a value). Triggers (``t``
is the `HealthThresholds`):

``high_rate_limit_denial``
    At least ``t.min_calls`` calls started and the share of limiter decisions
    that were denials (a call predicted to wait longer than ``max_wait``) is
    above ``t.max_denial_rate``; high above twice it. When the provider
    announces more than the configured ``requests_per_minute``, the advice
    raises it to the rate that would have admitted the refused share (at most
    the announced limit); when it announces no more, raising it would only
    move the refusals to the provider, so the advice is to queue (``max_wait``)
    or send the excess to a fallback.
``circuit_breaker_activations``
    The breaker opened at least once. High while it is open or half-open now
    (calls are shed), medium when it closed again but opened from closed three
    times or more (flapping), low when it closed again after one episode
    (the provider recovered: what it cost is in the detail); not reported once
    it has been closed for longer than the window. The advice, first that
    applies: a fallback when shed calls failed with `CircuitOpenError` (or
    none was ever taken while it is open); for flapping with a low failure
    rate, twice ``fail_max``; after failed trial calls, a longer
    ``reset_timeout`` (fewer trials sent to a provider that is down, at the
    cost of noticing its recovery later); while open with a fallback, to
    check the provider; after a clean recovery, nothing to change.
``limits_above_provider``
    A configured rate above the one the provider announces
    (``x-ratelimit-limit-*``), or more than ``t.max_violation_rate`` of attempts
    answered 429 although local limiting let them through. An adaptive
    limiter (``RateLimits(adaptive=True)``, the default) already admits at most
    the announced rate from the first response on, so a configured rate above
    it only lets the burst before that response through: reported *low* (or
    by the 429s it caused), saying so, and advising to correct the setting.
    A fixed limiter (``adaptive=False``) keeps sending above the provider's
    limit: medium, high when more than five times ``t.max_violation_rate`` of
    attempts got 429. 429s despite limits at or under the announced ones mean
    another client spends the same key's quota: the advice is to share the
    limits (Redis) or to lower the rate by the refused share.
``fallback_overuse``
    At least ``t.min_calls`` calls started and more than ``t.max_fallback_rate``
    of them were handed to a fallback for reasons other than the open breaker
    (calls the breaker shed are reported by ``circuit_breaker_activations``).
    Medium.
"""

from __future__ import annotations

import math
from typing import Any

from ._detect import Issue, issue, num, window
from ._health import HealthThresholds, window_judged

__all__ = ["above_provider", "breaker", "denials", "fallbacks"]


def denials(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    """``high_rate_limit_denial``: see the module docstring."""
    rate = m["window_denial_rate"]
    if not window_judged(m, t) or rate <= t.max_denial_rate:
        return None
    severity = "high" if rate > 2 * t.max_denial_rate else "medium"
    decisions = m["denials"] + m["limiter_admissions"]
    detail = (
        f"{rate:.1%} of the limiter's decisions in {window(m)} were denials "
        f"(> {t.max_denial_rate:.0%}; {m['denials']} of {decisions} in all); admitted calls waited "
        f"{m['average_wait_time']:.2f}s on average, at most {m['max_wait_time']:.2f}s"
    )
    rpm, server = m["configured_requests_per_minute"], m["server_limit_requests"]
    queue = (
        "raise max_wait so the excess queues instead of being refused (admitted calls waited "
        f"up to {m['max_wait_time']:.1f}s), or send it to a fallback provider"
    )
    if rpm and server and server > rpm:
        target = min(math.ceil(round(rpm / max(1.0 - rate, 0.1), 6)), server)
        advice = (
            f"raise requests_per_minute from {num(rpm)} to {num(target)}: the provider "
            f"allows {num(server)} and {rate:.0%} of calls are refused locally"
        )
    elif rpm and server:
        advice = (
            f"{queue}: the provider allows {num(server)} requests/minute, no more than the "
            f"{num(rpm)} configured, so a higher requests_per_minute would only move the "
            f"{rate:.0%} refused to the provider's 429s"
        )
    elif rpm:
        needed = math.ceil(round(rpm / max(1.0 - rate, 0.1), 6))
        advice = (
            f"{queue}; or raise requests_per_minute from {num(rpm)} to {num(needed)} if the "
            "provider's limit allows it (it announced none)"
        )
    else:
        advice = f"{queue}; {rate:.0%} of calls are refused locally"
    return issue(m, "high_rate_limit_denial", severity, detail, advice)


def breaker(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    """``circuit_breaker_activations``: see the module docstring."""
    opens = m["breaker_openings"]
    if not opens:
        return None
    state, failed_trials = m["circuit_state"], m["recovery_failures"]
    episodes = opens - failed_trials  # openings from closed; the rest re-opened after a trial
    shed, to_fallback = m["shed_requests"], m["shed_to_fallback"]
    since = m["seconds_in_state"]
    if state == "closed" and since is not None and since > m["window_seconds"]:
        return None  # closed for longer than the window: history, in the report's totals
    if state != "closed":
        severity = "high"
    elif episodes >= 3:
        severity = "medium"
    else:
        severity = "low"
    detail = (
        f"circuit breaker opened {episodes} time(s) from closed"
        + (f" and {failed_trials} time(s) after a failed trial call" if failed_trials else "")
        + f", now {state}"
        + (f" (for {since:.1f}s)" if since is not None else "")
        + (
            f"; {m['recovery_successes']} of {m['recovery_attempts']} recovery trials succeeded"
            if m["recovery_attempts"]
            else ""
        )
        + f"; {shed} call(s) shed ({to_fallback} to a fallback, {shed - to_fallback} failed with "
        f"CircuitOpenError); most common error: {m['most_common_error']}"
    )
    reset, fail_max = m["configured_reset_timeout"], m["configured_fail_max"]
    service = m["service"]
    if shed > to_fallback:
        advice = (
            f"add a fallback provider for {service!r} (fallbacks={{{service!r}: [...]}}): "
            f"{shed - to_fallback} call(s) failed with CircuitOpenError while the breaker was open"
        )
    elif episodes >= 3 and fail_max and m["failure_rate"] < t.max_failure_rate:
        advice = (
            f"raise fail_max from {fail_max} to {fail_max * 2}: the breaker opened "
            f"{episodes} times while only {m['failure_rate']:.1%} of calls failed"
        )
    elif failed_trials and reset:
        advice = (
            f"raise reset_timeout from {num(reset)}s to {num(reset * 2)}s to send fewer trial "
            f"calls to a provider that is down ({failed_trials} of {m['recovery_attempts']} "
            f"failed), or keep {num(reset)}s to notice its recovery sooner"
        )
    elif state != "closed" and not m["fallbacks_taken"]:
        advice = (
            f"add a fallback provider for {service!r} (fallbacks={{{service!r}: [...]}}): while "
            "the breaker is open its calls fail with CircuitOpenError or wait for it "
            "(RetryPolicy.wait_for_breaker)"
        )
    elif state != "closed":
        advice = (
            f"check {service!r}'s status: its calls go to the fallback while the breaker is "
            "open, and it is tried again "
            + (f"every {num(reset)}s" if reset else "after each reset_timeout")
        )
    else:
        advice = (
            f"nothing to change: the breaker shed {shed} call(s) while {service!r} failed and "
            "closed again at the first successful trial"
        )
    return issue(m, "circuit_breaker_activations", severity, detail, advice)


def above_provider(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    """``limits_above_provider``: see the module docstring."""
    violation = m["window_violation_rate"] if window_judged(m, t) else 0.0
    rows = []  # (setting, configured, announced, working) of each kind set above the provider
    for setting, kind in (("requests_per_minute", "requests"), ("tokens_per_minute", "tokens")):
        mine, theirs = m[f"configured_{setting}"], m[f"server_limit_{kind}"]
        if mine and theirs and mine > theirs:
            rows.append((setting, mine, theirs, m[f"working_{setting}"]))
    if not rows and violation <= t.max_violation_rate:
        return None
    n429 = m["rate_limit_violations"]
    detail = (
        f"{n429} server 429(s) despite local limiting ({violation:.1%} of attempts in {window(m)})"
    )
    for setting, mine, theirs, working in rows:
        detail += f"; {setting} configured {num(mine)}, provider announces {num(theirs)}"
        if working is not None and working != mine:
            detail += f", limiter admits {num(working)}"
    heavy = violation > 5 * t.max_violation_rate
    if rows:
        fixed = [row for row in rows if row[3] is None or row[3] > row[2]]
        fixes = "; ".join(
            f"lower {setting} from {num(mine)} to {num(theirs)}"
            for setting, mine, theirs, _ in rows
        )
        if fixed:
            severity = "high" if heavy else "medium"
            advice = (
                f"{fixes}: the limiter admits the configured rate (adaptive=False) and sends "
                "above what the provider allows"
            )
        else:
            severity = "high" if heavy else "medium" if violation > t.max_violation_rate else "low"
            advice = (
                f"{fixes}: the adaptive limiter already follows the announced limit since the "
                "first response, so only the first burst (before any response) can go above "
                f"it; it cost {n429} 429(s)"
            )
        return issue(m, "limits_above_provider", severity, detail, advice)
    severity = "high" if heavy else "medium"
    rpm, server = m["configured_requests_per_minute"], m["server_limit_requests"]
    if rpm:
        target = math.floor(rpm * (1.0 - violation))
        shared = (
            f"the provider announces {num(server)}, no less than configured: another client "
            "spends the same key's quota; share the limits through Redis "
            "(AsyncLLMClient(redis=...)) or "
            if server
            else ""
        )
        advice = (
            f"{shared}lower requests_per_minute from {num(rpm)} to {num(target)}: "
            f"{violation:.0%} of attempts still get 429 from the server"
        )
    else:
        detail += "; no limits configured"
        advice = (
            "set requests_per_minute and tokens_per_minute to the provider's published limits: "
            f"{violation:.0%} of attempts get 429 from the server"
        )
    return issue(m, "limits_above_provider", severity, detail, advice)


def fallbacks(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    """``fallback_overuse``: see the module docstring."""
    rate = m["window_fallback_rate"]  # hand-overs of shed calls excluded
    if not window_judged(m, t) or rate <= t.max_fallback_rate:
        return None
    total, handed = m["total_requests"], m["fallbacks_taken"] - m["shed_to_fallback"]
    reasons = m["fallback_reasons"]
    top = next(iter(reasons), None)
    target = next(iter(m["fallback_targets"]), "the fallback")
    detail = (
        f"{rate:.1%} of the calls in {window(m)} went to a fallback for another reason than "
        f"the open breaker (> {t.max_fallback_rate:.0%}; {handed} of {total} in all); targets "
        f"{m['fallback_targets']}, reasons {reasons}"
    )
    rpm = m["configured_requests_per_minute"]
    if top == "rate_limit" and rpm:
        advice = (
            f"the primary is too small for the load: move {rate:.0%} of traffic to "
            f"{target} deliberately or raise its quota; requests_per_minute is {num(rpm)}"
        )
    else:
        advice = (
            f"fix {m['service']!r} first (fallbacks are taken for {top}) or make {target} "
            f"the primary: {rate:.0%} of calls already end up there"
        )
    return issue(m, "fallback_overuse", "medium", detail, advice)
