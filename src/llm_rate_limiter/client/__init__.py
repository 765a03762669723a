# SPDX-License-Identifier: MIT
"""
The client: `AsyncLLMClient` and its providers.

`ProviderConfig` profiles, each provider's runtime (a `ResiliencePolicy`
around the official ``openai`` SDK), fallback chains, streaming, `CallInfo`
and the seed-compatible functions over a default client. It composes the
parts, the monitoring and (with ``redis=``) the shared backends.
"""

from __future__ import annotations

from ._call_info import CallInfo, FallbackRecord
from ._client import AsyncLLMClient
from ._compat import (
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
from ._providers import ProviderConfig

__all__ = [
    "AsyncLLMClient",
    "CallInfo",
    "FallbackRecord",
    "ProviderConfig",
    "analyze_frequent_issues",
    "get_comprehensive_circuit_breaker_stats",
    "get_comprehensive_rate_limiter_stats",
    "get_default_client",
    "get_health_status",
    "get_service_status",
    "get_system_performance_report",
    "log_monitoring_summary",
    "moonshot_chat_limited",
    "openai_chat_limited",
    "rate_limited",
    "reset_all_circuit_breakers",
    "reset_circuit_breaker",
    "set_default_client",
    "start_monitoring",
]
