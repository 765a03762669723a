# SPDX-License-Identifier: MIT
"""
llm_rate_limiter: make LLM API calls survive rate limits, outages and flaky networks.

Rate limiting (requests, tokens, concurrency), circuit breaking, retries with
jittered exponential backoff, fallbacks between providers, and a metrics
collector that scores each provider's health and recommends fixes.
"""

from __future__ import annotations

from ._clock import SYSTEM_CLOCK, Clock, SystemClock
from ._errors import (
    RETRYABLE_BY_DEFAULT,
    RetryErrorType,
    classify_error,
    classify_error_for_retry,
    classify_status,
    is_quota_error,
    is_retryable,
)
from ._headers import (
    RateLimitHeaders,
    parse_duration,
    parse_rate_limit_headers,
    parse_retry_after,
)
from ._health import HealthThresholds
from ._hooks import NULL_HOOK, CallOutcome, MetricsHook, NullHook
from ._metrics import MetricsCollector
from ._monitor import Monitor, log_monitoring_summary
from ._prometheus import PrometheusCollector, register_prometheus
from ._retry import Retrier, retry_with_backoff
from ._retry_backoff import calculate_backoff_delay
from ._retry_policy import RetryBudget, RetryPolicy
from ._retry_stats import RetryCallStats, RetryStatistics
from .exceptions import (
    CircuitOpenError,
    ClientClosedError,
    ConfigurationError,
    DeadlineExceededError,
    LLMRateLimiterError,
    RateLimitTimeoutError,
    RequestTooLargeError,
    StreamInterruptedError,
)

__all__ = [
    "NULL_HOOK",
    "RETRYABLE_BY_DEFAULT",
    "SYSTEM_CLOCK",
    "CallOutcome",
    "CircuitOpenError",
    "ClientClosedError",
    "Clock",
    "ConfigurationError",
    "DeadlineExceededError",
    "HealthThresholds",
    "LLMRateLimiterError",
    "MetricsCollector",
    "MetricsHook",
    "Monitor",
    "NullHook",
    "PrometheusCollector",
    "RateLimitHeaders",
    "RateLimitTimeoutError",
    "RequestTooLargeError",
    "Retrier",
    "RetryBudget",
    "RetryCallStats",
    "RetryErrorType",
    "RetryPolicy",
    "RetryStatistics",
    "StreamInterruptedError",
    "SystemClock",
    "calculate_backoff_delay",
    "classify_error",
    "classify_error_for_retry",
    "classify_status",
    "is_quota_error",
    "is_retryable",
    "log_monitoring_summary",
    "parse_duration",
    "parse_rate_limit_headers",
    "parse_retry_after",
    "register_prometheus",
    "retry_with_backoff",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version("llm-rate-limiter")
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
