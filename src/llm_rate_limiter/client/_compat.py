# SPDX-License-Identifier: MIT
"""
The seed's function names, as thin functions over a default `AsyncLLMClient`.

The default client is built from the environment on first use
(`AsyncLLMClient.from_env`), or set with `set_default_client`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from openai.types.chat import ChatCompletion

from ..exceptions import ConfigurationError
from ..monitoring import Monitor
from ._client import AsyncLLMClient
from ._providers import API_KEY_VARIABLES

__all__ = [
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

P = ParamSpec("P")
T = TypeVar("T")

_default: AsyncLLMClient | None = None


def get_default_client() -> AsyncLLMClient:
    """
    The client behind the seed functions; built by `AsyncLLMClient.from_env` on first use.

    .. versionadded:: 0.1.0
    """
    global _default
    if _default is None or _default.closed:
        _default = AsyncLLMClient.from_env()
    return _default


def set_default_client(client: AsyncLLMClient | None) -> None:
    """
    Make *client* the one the seed functions use (None: build from env next time).

    .. versionadded:: 0.1.0
    """
    global _default
    _default = client


def _client_for(provider: str, caller: str) -> AsyncLLMClient:
    """
    The default client, which must have *provider*; else an error naming its key variable.

    Raises:
        ConfigurationError: No default client can be built, or it has no *provider*;
            the setting named is the provider's API key variable.
    """
    variable = API_KEY_VARIABLES.get(provider)
    try:
        client = get_default_client()
    except ConfigurationError as exc:
        if variable is None:
            raise
        msg = (
            f"{caller}() needs the {provider!r} provider: set {variable} in the environment "
            "(the default client is built from it), or pass a client to set_default_client()"
        )
        raise ConfigurationError(variable, msg) from exc
    if provider not in client.providers:
        how = (
            f"set {variable} in the environment before the default client is first used, or "
            if variable is not None
            else ""
        )
        msg = (
            f"{caller}() needs the {provider!r} provider, which the default client does not "
            f"have (it has {client.providers}): {how}pass a client with a {provider!r} "
            "ProviderConfig to set_default_client()"
        )
        raise ConfigurationError(variable or "provider", msg)
    return client


async def openai_chat_limited(
    messages: Iterable[Any], max_retries: int | None = None, **kwargs: Any
) -> ChatCompletion:
    """
    Chat with the ``openai`` provider (seed defaults: 2 retries, 2 s base, 45 s cap).

    .. versionadded:: 0.1.0
    """
    client = _client_for("openai", "openai_chat_limited")
    return await client.chat(messages, provider="openai", max_retries=max_retries, **kwargs)


async def moonshot_chat_limited(
    messages: Iterable[Any], max_retries: int | None = None, **kwargs: Any
) -> ChatCompletion:
    """
    Chat with the ``moonshot`` provider (seed defaults: 3 retries, 1 s base, 30 s cap).

    .. versionadded:: 0.1.0
    """
    client = _client_for("moonshot", "moonshot_chat_limited")
    return await client.chat(messages, provider="moonshot", max_retries=max_retries, **kwargs)


def rate_limited(service: str) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """
    Decorate a coroutine function so each call goes through *service*'s policy.

    The provider's limiter, breaker and retries of the default client apply,
    resolved at call time.

    .. versionadded:: 0.1.0
    """

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            policy = _client_for(service, "rate_limited").policy(service)
            return await policy.call(fn, *args, **kwargs)

        return wrapper

    return decorate


def get_health_status() -> dict[str, Any]:
    """Overall health: ``{"status", "health_score", "services"}``. .. versionadded:: 0.1.0"""
    return get_default_client().health()


def get_service_status(service: str) -> dict[str, Any]:
    """One provider's status and metrics. .. versionadded:: 0.1.0"""
    return get_default_client().service_status(service)


def analyze_frequent_issues() -> dict[str, Any]:
    """Issues found with recommendations. .. versionadded:: 0.1.0"""
    return get_default_client().analyze_issues()


def get_system_performance_report() -> dict[str, Any]:
    """The performance report. .. versionadded:: 0.1.0"""
    return get_default_client().performance_report()


def get_comprehensive_rate_limiter_stats() -> dict[str, dict[str, Any]]:
    """Rate-limiter metrics per provider. .. versionadded:: 0.1.0"""
    return get_default_client().rate_limiter_stats()


def get_comprehensive_circuit_breaker_stats() -> dict[str, dict[str, Any]]:
    """Circuit-breaker metrics per provider. .. versionadded:: 0.1.0"""
    return get_default_client().circuit_breaker_stats()


def log_monitoring_summary() -> dict[str, Any]:
    """Log a structured monitoring summary now. .. versionadded:: 0.1.0"""
    return get_default_client().log_monitoring_summary()


def reset_circuit_breaker(service: str) -> None:
    """Close *service*'s breaker. .. versionadded:: 0.1.0"""
    get_default_client().reset_breaker(service)


def reset_all_circuit_breakers() -> None:
    """Close every breaker. .. versionadded:: 0.1.0"""
    get_default_client().reset_all_breakers()


def start_monitoring(interval: float = 300.0) -> Monitor:
    """
    Start the background monitor (an asyncio task; call it inside a running loop).

    Raises:
        RuntimeError: Called outside a running event loop (from synchronous code).

    .. versionadded:: 0.1.0
    """
    return get_default_client().start_monitoring(interval)
