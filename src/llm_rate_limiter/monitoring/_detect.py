# SPDX-License-Identifier: MIT
"""
The issue detectors of what calls end with: failures, latency, credentials, quota, retries.

A detector reads one service's metric snapshot and returns None below its
trigger; above it, an issue whose ``detail`` carries the observed numbers and
whose ``recommendation`` names a setting, a value for it and why. The
capacity detectors (denials, limits, breaker, fallbacks) are in `_capacity`.

Issues are about now: they read the health window (the ``window_*`` metrics,
the last ``t.window_seconds``) and judge rates once ``t.window_min_calls``
calls ended in it ("judged" below), so a provider that recovered stops being
reported once its failures have left the window; the totals stay in the
report. Triggers (``t`` is the `HealthThresholds`):

``elevated_failure_rate``
    Judged, and the share of the window's calls that ended at the service
    (served or failed: calls shed by the open breaker and cancelled calls are
    not outcomes of the provider and are not counted) that failed, less the
    failures another issue already explains (authentication, quota, local
    limiter refusals: their share of the failed calls by kind), is above
    ``t.max_failure_rate``. Critical above 50%, else high. The advice follows
    the errors: for retryable ones the fewest retries that bring a call's
    failure odds under half the threshold, given the attempts' failure rate,
    or a fallback when those retries would cost more than
    ``t.max_retries_per_call`` per call (a retry storm of their own).
``slow_responses``
    Judged, and the window's average attempt latency is above
    ``t.max_average_response_time``; high above twice it. The advice sets the
    attempt timeout to twice the p95 (cutting hangs, not the ordinary slow
    answers) and names streaming or a faster provider.
``authentication_failures``
    Any attempt refused with 401/403 in the window (never retried). Critical.
``quota_exhausted``
    Any 429 ``insufficient_quota`` in the window (a billing state). Critical.
``retry_storm``
    Judged, and the window's retries per call sent (shed calls were never
    sent) are above ``t.max_retries_per_call``. High. The advice: when the
    retries answer the provider's 429s, the limits; else lower ``max_retries``
    to the fewest retries that keep a call's failure odds under half the
    failure threshold, or, when no fewer would do, a retry budget and a
    fallback.
``shared_state_unavailable``
    The shared state (Redis) does not answer now. High.
"""

from __future__ import annotations

import math
from typing import Any

from ._health import HealthThresholds, window_judged

__all__ = [
    "SEVERITY_RANK",
    "Issue",
    "auth",
    "failures",
    "issue",
    "num",
    "quota",
    "retry_storm",
    "shared_state",
    "slow",
    "window",
    "window_raw",
]

Issue = dict[str, Any]
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
#: The environment variables `AsyncLLMClient.from_env` reads the keys from.
_KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "moonshot": "MOONSHOT_API_KEY"}
#: Error kinds a later attempt (or another provider) may serve.
_RETRYABLE = ("transient_network", "timeout", "server_error", "rate_limit")


def issue(m: dict[str, Any], kind: str, severity: str, detail: str, advice: str) -> Issue:
    """Build one issue of service metrics *m*."""
    return {
        "service": m["service"],
        "type": kind,
        "severity": severity,
        "detail": detail,
        "recommendation": advice,
    }


def num(value: float) -> str:
    """*value* for a sentence: whole numbers bare, others with one decimal (two under 1)."""
    if value == int(value):
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 1 else f"{value:.1f}"


def window(m: dict[str, Any]) -> str:
    """The health window of service metrics *m*, for a sentence: ``"the last 60s"``."""
    return f"the last {num(m['window_seconds'])}s"


def window_raw(m: dict[str, Any], key: str, rate: str, whole: float) -> float:
    """The window's count *key* if the snapshot has it, else *rate* times *whole*."""
    value = m.get(key)
    return float(value) if isinstance(value, int | float) else m[rate] * whole


def _explained_share(m: dict[str, Any]) -> float:
    """The share of failed calls that authentication, quota or local refusals explain."""
    failed: int = m["failed_requests"]
    if not failed:
        return 0.0
    kinds = m["failures_by_kind"]
    own = kinds.get("authentication", 0) + min(kinds.get("permanent", 0), m["quota_exhausted"])
    own += min(kinds.get("rate_limit", 0), m["denials"])
    return min(1.0, float(own) / float(failed))


def _retries_needed(per_attempt: float, t: HealthThresholds) -> int | None:
    """
    The fewest retries after which a call fails with odds under half ``t.max_failure_rate``.

    Attempts are taken to fail independently with probability *per_attempt*.
    None when retries cannot help: the retries they would cost per call
    (``q + q**2 + ...``) are above ``t.max_retries_per_call`` (a retry storm).
    """
    if per_attempt <= 0.0:
        return 0
    if per_attempt >= 1.0:
        return None
    target = max(t.max_failure_rate / 2, 0.001)  # a threshold of 0: one call in a thousand
    ratio = math.log(target) / math.log(per_attempt)
    needed = max(0, math.ceil(round(ratio, 9)) - 1)
    cost = sum(per_attempt**k for k in range(1, needed + 1))
    return needed if cost <= t.max_retries_per_call else None


def failures(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    """``elevated_failure_rate``: see the module docstring."""
    failed, ended = m["window_failed"], m["window_calls"]
    if not window_judged(m, t):
        return None
    unexplained = round(failed * (1.0 - _explained_share(m)))
    rate = unexplained / ended
    if rate <= t.max_failure_rate:
        return None
    severity = "critical" if rate > 0.5 else "high"
    top = m["most_common_error"]
    shed = m["window_shed"]
    detail = (
        f"{unexplained} of the {ended} calls that ended at the provider in {window(m)} failed "
        f"({rate:.1%} > {t.max_failure_rate:.0%}); failed calls by error: "
        f"{m['failures_by_kind']}"
        + (f"; {shed} more were shed by the open breaker (not counted)" if shed else "")
    )
    retries = m["configured_max_retries"]
    per_attempt = m["attempt_failure_rate"]
    has_fallback = bool(m["fallbacks_taken"])
    if top in _RETRYABLE:
        needed = _retries_needed(per_attempt, t)
        if needed is None:
            advice = (
                f"{per_attempt:.0%} of attempts fail ({top}): retries enough to serve the calls "
                f"would cost more than {num(t.max_retries_per_call)} per call; "
                + (
                    f"keep the fallback for {m['service']!r} and check the provider's status"
                    if has_fallback
                    else f"add a fallback provider (fallbacks={{{m['service']!r}: [...]}})"
                )
            )
        elif retries is None or needed > retries:
            now = "set max_retries" if retries is None else f"raise max_retries from {retries}"
            advice = (
                f"{now} to {needed}: {per_attempt:.0%} of attempts fail with {top}, so "
                f"{needed + 1} attempts leave about {per_attempt ** (needed + 1):.1%} of calls "
                "failing"
            )
        else:
            advice = (
                f"add a fallback provider for {m['service']!r} "
                f"(fallbacks={{{m['service']!r}: [...]}}): {per_attempt:.0%} of attempts fail "
                f"with {top} and calls fail although they are retried"
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
    return issue(m, "elevated_failure_rate", severity, detail, advice)


def slow(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    """``slow_responses``: see the module docstring."""
    avg, limit = m["window_average_response_time"], t.max_average_response_time
    if not window_judged(m, t) or avg <= limit:
        return None
    severity = "high" if avg > 2 * limit else "medium"
    p95 = m["p95_latency"] or avg
    detail = (
        f"average response {avg:.2f}s > {num(limit)}s in {window(m)} "
        f"(recent calls: p50 {m['p50_latency'] or 0:.2f}s, p95 {p95:.2f}s)"
    )
    timeout = math.ceil(p95 * 20) / 10  # twice the p95, rounded up to 0.1 s
    advice = (
        f"set RetryPolicy(attempt_timeout={num(timeout)}) (twice the p95 of {p95:.2f}s) so that "
        f"hung attempts are retried instead of waited for, stream with chat_stream to get the "
        f"first token sooner, or move latency-sensitive calls to a faster provider or model: "
        f"responses average {avg:.2f}s against {num(limit)}s"
    )
    return issue(m, "slow_responses", severity, detail, advice)


def auth(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    """``authentication_failures``: see the module docstring."""
    n = m["window_authentication_failures"]
    if not n:
        return None
    detail = (
        f"{n} attempt(s) in {window(m)} were refused with 401/403, never retried "
        f"({m['authentication_failures']} in all)"
    )
    service = m["service"]
    where = f" ({_KEY_VARIABLES[service]})" if service in _KEY_VARIABLES else ""
    advice = (
        f"check the API key{where} and organisation of ProviderConfig(name={service!r}): it is "
        "missing, revoked or lacks access to the model; retries and the breaker cannot help"
    )
    return issue(m, "authentication_failures", "critical", detail, advice)


def quota(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    """``quota_exhausted``: see the module docstring."""
    n = m["window_quota_exhausted"]
    if not n:
        return None
    detail = (
        f"{n} call(s) in {window(m)} were refused with 429 insufficient_quota, a billing "
        f"state, not a rate ({m['quota_exhausted']} in all)"
    )
    advice = (
        f"add credits or raise the spending limit of the {m['service']!r} account, and add a "
        f"fallback (fallbacks={{{m['service']!r}: [...]}}): retrying cannot help"
    )
    return issue(m, "quota_exhausted", "critical", detail, advice)


def shared_state(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    """``shared_state_unavailable``: see the module docstring."""
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
    return issue(m, "shared_state_unavailable", "high", detail, advice)


def retry_storm(m: dict[str, Any], t: HealthThresholds) -> Issue | None:
    """``retry_storm``: see the module docstring."""
    if not window_judged(m, t):
        return None
    ended = m["window_calls"] + m["window_cancelled"]
    # Calls started in the window: the snapshot's count, else those that ended in it.
    started = float(m.get("window_started", ended + m["window_shed"]))
    retries = window_raw(m, "window_retries", "window_retries_per_request", started)
    sent = max(1.0, started - m["window_shed"])  # shed calls were never sent, nor retried
    ratio = retries / sent
    if ratio <= t.max_retries_per_call:
        return None
    configured, per_attempt = m["configured_max_retries"], m["attempt_failure_rate"]
    detail = (
        f"{retries:.0f} retries for {sent:.0f} calls sent in {window(m)} ({ratio:.2f} per call "
        f"> {num(t.max_retries_per_call)}); {per_attempt:.0%} of attempts failed; retry "
        f"errors: {m['retry_error_distribution']}; retry success rate: "
        f"{m['retry_success_rate']}"
    )
    budget = "add RetryPolicy(budget=RetryBudget(ratio=0.2)) so retries stay a fifth of calls"
    needed = _retries_needed(per_attempt, t)
    top = next(iter(m["retry_error_distribution"]), None)
    if top == "rate_limit" and m["rate_limit_violations"]:
        advice = (
            f"{budget}, and bring the local limits under the provider's (see "
            f"limits_above_provider): most retries answer the provider's 429s "
            f"({m['rate_limit_violations']} so far), and each call makes {ratio:.1f} retries"
        )
    elif configured and needed is not None and needed < configured:
        lower = max(1, needed)
        advice = (
            f"lower max_retries from {configured} to {lower} and {budget}: with {per_attempt:.0%} "
            f"of attempts failing, {lower + 1} attempts leave about "
            f"{per_attempt ** (lower + 1):.1%} of calls failing, and each call now makes "
            f"{ratio:.1f} retries, multiplying the load on a struggling provider"
        )
    else:
        advice = (
            f"{budget}, and add a fallback provider: {per_attempt:.0%} of attempts fail, so "
            f"fewer retries would fail more calls, while each call makes {ratio:.1f} retries, "
            "multiplying the load on a struggling provider"
        )
    return issue(m, "retry_storm", "high", detail, advice)
