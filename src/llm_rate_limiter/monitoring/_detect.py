# SPDX-License-Identifier: MIT
"""
The issue detectors: one function per issue type, each reading one service's metrics.

A detector returns None below its threshold; above it, an issue whose
``detail`` carries the numbers and whose ``recommendation`` names the setting,
a value for it and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ._health import HealthThresholds, judged

__all__ = ["DETECTORS", "SEVERITY_RANK", "Issue"]

Issue = dict[str, Any]
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def _issue(m: dict[str, Any], kind: str, severity: str, detail: str, advice: str) -> Issue:
    return {
        "service": m["service"],
        "type": kind,
        "severity": severity,
        "detail": detail,
        "recommendation": advice,
    }


def _num(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _denials(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    rate = m["denial_rate"]
    if not judged(m, t) or rate <= t.max_denial_rate:
        return None
    severity = "high" if rate > 2 * t.max_denial_rate else "medium"
    detail = (
        f"{m['denials']} of {m['denials'] + m['limiter_admissions']} limiter decisions were "
        f"denials ({rate:.1%} > {t.max_denial_rate:.0%}); average wait "
        f"{m['average_wait_time']:.2f}s, max {m['max_wait_time']:.2f}s"
    )
    rpm, server = m["configured_requests_per_minute"], m["server_limit_requests"]
    if rpm:
        needed = math.ceil(rpm / max(1.0 - rate, 0.1))
        if server and server > rpm:
            target = min(needed, server)
            advice = (
                f"raise requests_per_minute from {_num(rpm)} to {_num(target)}: the provider "
                f"allows {_num(server)} and {rate:.0%} of calls are refused locally"
            )
        else:
            advice = (
                f"reduce the offered load to at most {_num(rpm)} requests/minute (queue or "
                f"batch requests), or raise requests_per_minute from {_num(rpm)} to "
                f"{_num(needed)} only if the provider's limit allows it; raise max_wait "
                f"above {m['max_wait_time']:.1f}s to queue instead of refusing"
            )
    else:
        advice = (
            f"raise max_wait above {m['max_wait_time']:.1f}s so calls queue instead of being "
            f"refused, or reduce the request rate by {rate:.0%}"
        )
    return _issue(m, "high_rate_limit_denial", severity, detail, advice)


def _breaker(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    opens = m["breaker_openings"]
    if not opens:
        return None
    severity = "high" if m["circuit_state"] == "open" or opens >= 3 else "medium"
    detail = (
        f"circuit breaker opened {opens} time(s), now {m['circuit_state']}; "
        f"{m['recovery_failures']} of {m['recovery_attempts']} recovery trials failed; "
        f"{m['breaker_rejections']} calls rejected; most common error: {m['most_common_error']}"
    )
    reset, fail_max = m["configured_reset_timeout"], m["configured_fail_max"]
    if m["recovery_failures"] and reset:
        advice = (
            f"raise reset_timeout from {_num(reset)}s to {_num(reset * 2)}s: "
            f"{m['recovery_failures']} trial call(s) failed, the provider needs longer to recover"
        )
    elif fail_max and m["failure_rate"] < t.max_failure_rate:
        advice = (
            f"raise fail_max from {fail_max} to {fail_max * 2}: the breaker opened "
            f"{opens} time(s) while the overall failure rate is only {m['failure_rate']:.1%}"
        )
    else:
        advice = (
            f"add a fallback provider for {m['service']!r} (fallbacks={{{m['service']!r}: "
            f"[...]}}) so calls continue while its breaker is open"
        )
    return _issue(m, "circuit_breaker_activations", severity, detail, advice)


def _failures(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    rate = m["failure_rate"]
    if not judged(m, t) or rate <= t.max_failure_rate:
        return None
    severity = "critical" if rate > 0.5 else "high"
    top = m["most_common_error"]
    detail = (
        f"{m['failed_requests']} of {m['failed_requests'] + m['successful_requests']} calls "
        f"failed ({rate:.1%} > {t.max_failure_rate:.0%}); errors: {m['error_patterns']}"
    )
    retries = m["configured_max_retries"]
    has_fallback = bool(m["fallbacks_taken"])
    if has_fallback and m["breaker_openings"]:
        advice = (
            f"keep the fallback for {m['service']!r}: {m['fallbacks_taken']} calls moved on and "
            f"the breaker opened {m['breaker_openings']} time(s); the failures are the "
            f"provider's ({top}), so check its status rather than raising max_retries"
        )
    elif top in ("transient_network", "timeout", "server_error", "rate_limit") and (
        retries is not None
    ):
        also = "" if has_fallback else " and add a fallback provider"
        advice = (
            f"raise max_retries from {retries} to {retries + 1}{also}: most failures are "
            f"{top}, which a later attempt or another provider can serve"
        )
    elif top in ("authentication", "permanent"):
        advice = (
            f"fix the requests or credentials: most failures are {top}, which retries and "
            "fallbacks cannot cure"
        )
    else:
        advice = (
            f"add a fallback provider for {m['service']!r}: {rate:.0%} of calls fail "
            f"(most common error: {top})"
        )
    return _issue(m, "elevated_failure_rate", severity, detail, advice)


def _slow(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    avg = m["average_response_time"]
    if not judged(m, t) or avg <= t.max_average_response_time:
        return None
    severity = "high" if avg > 2 * t.max_average_response_time else "medium"
    p95 = m["p95_latency"] or avg
    detail = (
        f"average response {avg:.2f}s > {_num(t.max_average_response_time)}s "
        f"(call p50 {m['p50_latency'] or 0:.2f}s, p95 {p95:.2f}s)"
    )
    advice = (
        f"set the attempt timeout to about {_num(math.ceil(t.max_average_response_time * 1.5))}s "
        f"so slow attempts are retried or fail over, and stream (chat_stream) to get the first "
        f"token sooner; responses average {avg:.1f}s"
    )
    return _issue(m, "slow_responses", severity, detail, advice)


def _auth(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    n = m["authentication_failures"]
    if not n:
        return None
    detail = f"{n} attempt(s) were refused with 401/403 (never retried)"
    advice = (
        f"check the API key and organisation configured for {m['service']!r} "
        f"(e.g. {m['service'].upper()}_API_KEY): it is missing, revoked or lacks access"
    )
    return _issue(m, "authentication_failures", "critical", detail, advice)


def _quota(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    n = m["quota_exhausted"]
    if not n:
        return None
    detail = f"{n} call(s) were refused with 429 insufficient_quota (a billing state)"
    advice = (
        f"add credits or raise the spending limit of the {m['service']!r} account, and add a "
        f"fallback (fallbacks={{{m['service']!r}: [...]}}): retrying cannot help"
    )
    return _issue(m, "quota_exhausted", "critical", detail, advice)


def _shared_state(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    if not m["shared_state_unavailable"]:
        return None
    detail = (
        "the shared state (Redis) does not answer within redis_timeout: limits and breaker "
        f"run on this process's share only ({m['shared_state_outages']} outage(s) so far)"
    )
    advice = (
        "check that Redis is up and reachable from this host (REDIS_URL) and not overloaded; "
        "raise redis_timeout if it is merely slow; use redis_failure='closed' to refuse "
        "calls instead of limiting locally"
    )
    return _issue(m, "shared_state_unavailable", "high", detail, advice)


def _retry_storm(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    ratio = m["retries_per_request"]
    if not judged(m, t) or ratio <= t.max_retries_per_call:
        return None
    retries = m["configured_max_retries"]
    detail = (
        f"{m['retries']} retries for {m['total_requests']} calls ({ratio:.2f} per call > "
        f"{_num(t.max_retries_per_call)}); retry errors: {m['retry_error_distribution']}; "
        f"retry success rate: {m['retry_success_rate']}"
    )
    if retries:
        advice = (
            f"lower max_retries from {retries} to {max(1, retries // 2)} and raise base_delay: "
            f"each call makes {ratio:.1f} retries, multiplying load on a struggling provider"
        )
    else:
        advice = (
            f"cap retries (max_retries=2) and enable a retry budget: each call makes {ratio:.1f} "
            "retries, multiplying load on a struggling provider"
        )
    return _issue(m, "retry_storm", "high", detail, advice)


def _above_provider(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    rpm, server_rpm = m["configured_requests_per_minute"], m["server_limit_requests"]
    tpm, server_tpm = m["configured_tokens_per_minute"], m["server_limit_tokens"]
    violating = judged(m, t) and m["violation_rate"] > t.max_violation_rate
    too_many = bool(rpm and server_rpm and rpm > server_rpm)
    too_many_tokens = bool(tpm and server_tpm and tpm > server_tpm)
    if not (violating or too_many or too_many_tokens):
        return None
    limits = [
        f"{label} configured {_num(mine)}, provider announces {_num(theirs) if theirs else '?'}"
        for label, mine, theirs in (
            ("requests/min", rpm, server_rpm),
            ("tokens/min", tpm, server_tpm),
        )
        if mine
    ]
    detail = (
        f"{m['rate_limit_violations']} server 429(s) despite local limiting "
        f"({m['violation_rate']:.1%} of attempts); " + ("; ".join(limits) or "no limits configured")
    )
    advice_parts = []
    if too_many:
        advice_parts.append(
            f"lower requests_per_minute from {_num(rpm)} to {_num(server_rpm)} "
            "(the limit the provider announces in x-ratelimit-limit-requests)"
        )
    if too_many_tokens:
        advice_parts.append(
            f"lower tokens_per_minute from {_num(tpm)} to {_num(server_tpm)} "
            "(the limit the provider announces in x-ratelimit-limit-tokens)"
        )
    if not advice_parts and rpm:
        target = math.floor(rpm * (1.0 - m["violation_rate"]))
        advice_parts.append(
            f"lower requests_per_minute from {_num(rpm)} to {_num(target)}: "
            f"{m['violation_rate']:.0%} of attempts still get 429 from the server"
        )
    if not advice_parts:
        advice_parts.append(
            "set requests_per_minute and tokens_per_minute to the provider's published limits: "
            f"{m['violation_rate']:.0%} of attempts get 429 from the server"
        )
    severity = "high" if m["violation_rate"] > 5 * t.max_violation_rate else "medium"
    return _issue(m, "limits_above_provider", severity, detail, "; ".join(advice_parts))


def _fallbacks(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    rate = m["fallback_rate"]
    if not judged(m, t) or rate <= t.max_fallback_rate:
        return None
    reasons = m["fallback_reasons"]
    top = next(iter(reasons), None)
    detail = (
        f"{m['fallbacks_taken']} of {m['total_requests']} calls went to a fallback "
        f"({rate:.1%} > {t.max_fallback_rate:.0%}); targets {m['fallback_targets']}, "
        f"reasons {reasons}"
    )
    if top == "rate_limit" and m["configured_requests_per_minute"]:
        advice = (
            f"the primary is too small for the load: move {rate:.0%} of traffic to "
            f"{next(iter(m['fallback_targets']), 'the fallback')} deliberately or raise its "
            f"quota; requests_per_minute is {_num(m['configured_requests_per_minute'])}"
        )
    else:
        advice = (
            f"fix {m['service']!r} first (fallbacks are taken for {top}) or make the most "
            f"used fallback the primary: {rate:.0%} of calls already end up there"
        )
    return _issue(m, "fallback_overuse", "medium", detail, advice)


DETECTORS: tuple[Callable[[dict[str, Any], HealthThresholds], Issue | None], ...] = (
    _denials,
    _breaker,
    _failures,
    _slow,
    _auth,
    _quota,
    _shared_state,
    _retry_storm,
    _above_provider,
    _fallbacks,
)
