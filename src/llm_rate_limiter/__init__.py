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
    RATE_LIMIT_DIALECTS,
    RateLimitHeaders,
    parse_duration,
    parse_rate_limit_headers,
    parse_retry_after,
    parse_retry_delay,
)
from ._hooks import NULL_HOOK, CallOutcome, MetricsHook, NullHook
from ._policy import ResiliencePolicy
from .breaker import AsyncCircuitBreaker, BreakerPolicy, BreakerStatistics, reset_all
from .client import (
    AsyncLLMClient,
    CallInfo,
    FallbackRecord,
    ProviderConfig,
    analyze_frequent_issues,
    get_comprehensive_circuit_breaker_stats,
    get_comprehensive_rate_limiter_stats,
    get_default_client,
    get_health_status,
    get_service_status,
    get_system_performance_report,
    log_monitoring_summary,
    moonshot_chat_limited,
    openai_chat_limited,
    rate_limited,
    reset_all_circuit_breakers,
    reset_circuit_breaker,
    set_default_client,
    start_monitoring,
)
from .exceptions import (
    AttemptTimeoutError,
    CircuitOpenError,
    ClientClosedError,
    ConfigurationError,
    DeadlineExceededError,
    LLMRateLimiterError,
    RateLimitTimeoutError,
    RequestTooLargeError,
    SharedStateUnavailableError,
    StreamInterruptedError,
)
from .limiter import (
    HealthStatus,
    LimiterStatistics,
    Permit,
    ProviderLimiter,
    RateLimits,
    estimate_request_tokens,
    estimate_tokens,
)
from .monitoring import (
    HealthThresholds,
    MetricsCollector,
    Monitor,
    PrometheusCollector,
    register_prometheus,
    unregister_prometheus,
)
from .retry import (
    Retrier,
    RetryBudget,
    RetryCallStats,
    RetryPolicy,
    RetryStatistics,
    calculate_backoff_delay,
    retry_with_backoff,
)

__all__ = [
    "NULL_HOOK",
    "RATE_LIMIT_DIALECTS",
    "RETRYABLE_BY_DEFAULT",
    "SYSTEM_CLOCK",
    "AsyncCircuitBreaker",
    "AsyncLLMClient",
    "AttemptTimeoutError",
    "BreakerPolicy",
    "BreakerStatistics",
    "CallInfo",
    "CallOutcome",
    "CircuitOpenError",
    "ClientClosedError",
    "Clock",
    "ConfigurationError",
    "DeadlineExceededError",
    "FallbackRecord",
    "HealthStatus",
    "HealthThresholds",
    "LLMRateLimiterError",
    "LimiterStatistics",
    "MetricsCollector",
    "MetricsHook",
    "Monitor",
    "NullHook",
    "Permit",
    "PrometheusCollector",
    "ProviderConfig",
    "ProviderLimiter",
    "RateLimitHeaders",
    "RateLimitTimeoutError",
    "RateLimits",
    "RequestTooLargeError",
    "ResiliencePolicy",
    "Retrier",
    "RetryBudget",
    "RetryCallStats",
    "RetryErrorType",
    "RetryPolicy",
    "RetryStatistics",
    "SharedStateUnavailableError",
    "StreamInterruptedError",
    "SystemClock",
    "analyze_frequent_issues",
    "calculate_backoff_delay",
    "classify_error",
    "classify_error_for_retry",
    "classify_status",
    "estimate_request_tokens",
    "estimate_tokens",
    "get_comprehensive_circuit_breaker_stats",
    "get_comprehensive_rate_limiter_stats",
    "get_default_client",
    "get_health_status",
    "get_service_status",
    "get_system_performance_report",
    "is_quota_error",
    "is_retryable",
    "log_monitoring_summary",
    "moonshot_chat_limited",
    "openai_chat_limited",
    "parse_duration",
    "parse_rate_limit_headers",
    "parse_retry_after",
    "parse_retry_delay",
    "rate_limited",
    "register_prometheus",
    "reset_all",
    "reset_all_circuit_breakers",
    "reset_circuit_breaker",
    "retry_with_backoff",
    "set_default_client",
    "start_monitoring",
    "unregister_prometheus",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version("llm-rate-limiter")
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
