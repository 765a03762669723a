# SPDX-License-Identifier: MIT
"""
`AsyncLLMClient`: providers, the composition per call, fallbacks and monitoring.

Per call: ``fallback chain ⊃ [retry ⊃ breaker ⊃ limiter ⊃ attempt timeout ⊃ SDK call]``,
one `ResiliencePolicy` per provider and one ``AsyncOpenAI`` per provider with
the SDK's own retries off (``max_retries=0``): retries happen in one place.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ._call_info import CallInfo, FallbackRecord
from ._clock import SYSTEM_CLOCK, Clock
from ._fallback import fallback_reason, validate_fallbacks
from ._metrics import MetricsCollector
from ._monitor import Monitor
from ._policy import ResiliencePolicy
from ._providers import ProviderConfig
from ._retry_stats import RetryCallStats
from ._stream import open_stream
from ._tokens import estimate_request_tokens
from .exceptions import ClientClosedError, ConfigurationError

__all__ = ["AsyncLLMClient"]


class _Provider:
    __slots__ = ("config", "policy", "sdk")

    def __init__(self, config: ProviderConfig, policy: ResiliencePolicy) -> None:
        self.config = config
        self.policy = policy
        self.sdk = openai.AsyncOpenAI(
            api_key=config.api_key,
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout,
            default_headers=dict(config.extra_headers) or None,
            http_client=config.http_client,
        )

    def model(self, requested: str | None) -> str:
        model = requested or self.config.model
        if not model:
            msg = f"no model given and provider {self.config.name!r} has no default model"
            raise ConfigurationError("model", msg)
        return model

    def tokens(self, messages: Any, model: str, kwargs: Mapping[str, Any]) -> float:
        limits = self.config.limits
        if limits is None or (limits.tokens_per_minute is None and limits.tokens_per_day is None):
            return 0.0
        return float(
            estimate_request_tokens(
                messages,
                model=model,
                max_tokens=kwargs.get("max_tokens") or kwargs.get("max_completion_tokens"),
                completion_tokens=limits.completion_tokens,
            )
        )


def _settle(raw: Any) -> tuple[float | None, Any]:
    usage = raw.parse().usage
    return (usage.total_tokens if usage is not None else None), raw.headers


class AsyncLLMClient:
    """
    Chat completions that survive rate limits, outages and flaky networks.

    Args:
        providers: One `ProviderConfig` per provider; names must be unique.
        fallbacks: For each provider, the providers to try, in order, when it
            cannot serve a call (``{"openai": ["moonshot"]}``).
        default_provider: The provider of calls that name none (default: the first).
        metrics: The collector to feed (default: a new `MetricsCollector`).
        clock: Time source for the policy parts; tests pass `FakeClock`.

    Raises:
        ConfigurationError: No providers, duplicate names, unknown fallbacks, a missing key.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        providers: Sequence[ProviderConfig],
        *,
        fallbacks: Mapping[str, Sequence[str]] | None = None,
        default_provider: str | None = None,
        metrics: MetricsCollector | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not providers:
            msg = "at least one ProviderConfig is required"
            raise ConfigurationError("providers", msg)
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            msg = f"provider names must be unique, got {names}"
            raise ConfigurationError("providers", msg)
        for config in providers:
            if config.api_key is None:
                msg = f"provider {config.name!r} has no API key (pass api_key= or set it in env)"
                raise ConfigurationError("api_key", msg)
        self._fallbacks = validate_fallbacks(fallbacks or {}, names)
        if default_provider is not None and default_provider not in names:
            msg = f"unknown provider {default_provider!r} (known: {names})"
            raise ConfigurationError("default_provider", msg)
        self.default_provider = default_provider or names[0]
        self.metrics = metrics if metrics is not None else MetricsCollector(clock=clock)
        self._clock = clock
        self._providers: dict[str, _Provider] = {}
        for config in providers:
            policy = ResiliencePolicy(
                config.name,
                retry=config.retry,
                limits=config.limits,
                breaker=config.breaker,
                hook=self.metrics,
                clock=clock,
            )
            self._providers[config.name] = _Provider(config, policy)
        self._chains: dict[str, tuple[str, ...]] = {
            name: (name, *self._fallbacks.get(name, ())) for name in names
        }
        self._monitor: Monitor | None = None
        self._closed = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> AsyncLLMClient:
        """
        Build a client from ``OPENAI_API_KEY``, ``MOONSHOT_API_KEY`` and ``LLMRL_*``.

        ``LLMRL_DEFAULT_PROVIDER`` picks the default; ``LLMRL_FALLBACKS`` is
        ``"openai=moonshot;moonshot=openai"``. Per-provider limits, retries and
        breakers come from ``LLMRL_<PROVIDER>_*`` (see the README).
        """
        env = os.environ if environ is None else environ
        providers: list[ProviderConfig] = []
        if env.get("OPENAI_API_KEY"):
            providers.append(ProviderConfig.openai(environ=env))
        if env.get("MOONSHOT_API_KEY"):
            providers.append(ProviderConfig.moonshot(environ=env))
        if not providers:
            msg = "no provider configured: set OPENAI_API_KEY and/or MOONSHOT_API_KEY"
            raise ConfigurationError("OPENAI_API_KEY", msg)
        fallbacks: dict[str, list[str]] = {}
        for item in filter(None, (env.get("LLMRL_FALLBACKS") or "").split(";")):
            primary, _, rest = item.partition("=")
            fallbacks[primary.strip()] = [n.strip() for n in rest.split(",") if n.strip()]
        kwargs.setdefault("fallbacks", fallbacks)
        kwargs.setdefault("default_provider", env.get("LLMRL_DEFAULT_PROVIDER") or None)
        return cls(providers, **kwargs)

    # -- calls -----------------------------------------------------------------------------

    def _provider(self, name: str) -> _Provider:
        try:
            return self._providers[name]
        except KeyError:
            msg = f"unknown provider {name!r} (known: {sorted(self._providers)})"
            raise ConfigurationError("provider", msg) from None

    def _chain(self, provider: str | None) -> tuple[str, ...]:
        if self._closed:
            msg = "this AsyncLLMClient is closed"
            raise ClientClosedError(msg)
        name = provider or self.default_provider
        chain = self._chains.get(name)
        if chain is None:
            self._provider(name)
        assert chain is not None
        return chain

    def _move_on(self, chain: tuple[str, ...], index: int, exc: Exception, info: CallInfo) -> bool:
        """Record *exc*; return True if the call should try the next provider."""
        name = chain[index]
        provider = self._providers[name]
        info.errors[name] = type(exc).__name__
        if index + 1 >= len(chain):
            return False
        reason = fallback_reason(
            exc, provider.config.retry.retry_on, provider.config.fallback_codes
        )
        if reason is None:
            return False
        backup = chain[index + 1]
        info.fallbacks.append(FallbackRecord(name, backup, reason, type(exc).__name__))
        self.metrics.fallback_taken(name, backup, reason)
        return True

    async def chat(
        self,
        messages: Iterable[Any],
        provider: str | None = None,
        model: str | None = None,
        *,
        call_info: CallInfo | None = None,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> ChatCompletion:
        """
        Create a chat completion, rate-limited, retried, broken and measured.

        Args:
            messages: The chat messages, as for the SDK.
            provider: The provider to ask first (default: ``default_provider``).
            model: The model for that provider (fallbacks use their own default model).
            call_info: A `CallInfo` to fill with what happened.
            max_retries: Retries for the first provider, this call only.
            **kwargs: Passed to ``chat.completions.create`` unchanged.

        Returns:
            The SDK's ``ChatCompletion``, unchanged.

        Raises:
            CircuitOpenError: Every provider of the chain had its breaker open.
            openai.APIError: The last provider's error, with a note of every provider tried.
            ClientClosedError: The client was closed.
        """
        chain = self._chain(provider)
        info = call_info if call_info is not None else CallInfo()
        started = self._clock.monotonic()
        messages = list(messages)
        for index, name in enumerate(chain):
            p = self._providers[name]
            use_model = p.model(model if index == 0 else None)
            info.providers_tried.append(name)
            stats = RetryCallStats()
            create = p.sdk.chat.completions.with_raw_response.create
            retry = None
            if index == 0 and max_retries is not None:
                retry = replace(p.config.retry, max_retries=max_retries)

            def send(create: Any = create, use_model: Any = use_model) -> Any:
                return create(messages=messages, model=use_model, **kwargs)

            try:
                raw = await p.policy.run(
                    send,
                    tokens=p.tokens(messages, use_model, kwargs),
                    settle=_settle,
                    stats=stats,
                    retry=retry,
                )
            except Exception as exc:
                info.attempts += stats.attempts
                info.retry_wait += stats.waited
                if self._move_on(chain, index, exc, info):
                    continue
                info.latency = self._clock.monotonic() - started
                if len(info.providers_tried) > 1:
                    exc.add_note(f"llm_rate_limiter: providers tried: {info.providers_tried}")
                raise
            info.attempts += stats.attempts
            info.retry_wait += stats.waited
            info.provider = name
            info.latency = self._clock.monotonic() - started
            completion: ChatCompletion = raw.parse()
            return completion
        raise AssertionError("unreachable")  # pragma: no cover -- the loop returns or raises

    async def chat_stream(
        self,
        messages: Iterable[Any],
        provider: str | None = None,
        model: str | None = None,
        *,
        call_info: CallInfo | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatCompletionChunk]:
        """
        Stream a chat completion: retries and fallbacks happen only before the first chunk.

        A failure after the first chunk raises `StreamInterruptedError` (classified,
        with the original error as its cause). Arguments as for `chat`.

        Yields:
            The SDK's ``ChatCompletionChunk`` objects.
        """
        chain = self._chain(provider)
        info = call_info if call_info is not None else CallInfo()
        started = self._clock.monotonic()
        messages = list(messages)
        for index, name in enumerate(chain):
            p = self._providers[name]
            use_model = p.model(model if index == 0 else None)
            info.providers_tried.append(name)
            stats = RetryCallStats()
            try:
                stream = await open_stream(
                    p.policy,
                    p.sdk,
                    messages=messages,
                    model=use_model,
                    tokens=p.tokens(messages, use_model, kwargs),
                    kwargs=kwargs,
                    stats=stats,
                    started=started,
                )
            except Exception as exc:
                info.attempts += stats.attempts
                info.retry_wait += stats.waited
                if self._move_on(chain, index, exc, info):
                    continue
                raise
            info.attempts += stats.attempts
            info.retry_wait += stats.waited
            info.provider = name
            info.latency = self._clock.monotonic() - started
            async with stream:
                async for chunk in stream:
                    yield chunk
            return

    def policy(self, provider: str) -> ResiliencePolicy:
        """The `ResiliencePolicy` of *provider*, to wrap other calls to the same provider."""
        return self._provider(provider).policy

    @property
    def providers(self) -> list[str]:
        """The provider names, in configuration order."""
        return list(self._providers)

    # -- monitoring and control --------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Overall and per-provider health: status, a 0-100 score, details."""
        return self.metrics.health()

    def service_status(self, provider: str) -> dict[str, Any]:
        """One provider's status and metrics."""
        self._provider(provider)
        return self.metrics.service_status(provider)

    def analyze_issues(self) -> dict[str, Any]:
        """Frequent issues found, each with a specific recommendation."""
        return self.metrics.analyze_issues()

    def performance_report(self) -> dict[str, Any]:
        """Totals, success rate, latency percentiles, tokens, retries, per provider."""
        return self.metrics.performance_report()

    def rate_limiter_stats(self) -> dict[str, dict[str, Any]]:
        """Comprehensive rate-limiter metrics per provider."""
        return self.metrics.rate_limiter_stats()

    def circuit_breaker_stats(self) -> dict[str, dict[str, Any]]:
        """Comprehensive circuit-breaker metrics per provider."""
        return self.metrics.circuit_breaker_stats()

    def reset_breaker(self, provider: str) -> None:
        """Close *provider*'s breaker by hand."""
        breaker = self._provider(provider).policy.breaker
        if breaker is not None:
            breaker.reset()

    def reset_all_breakers(self) -> None:
        """Close every provider's breaker."""
        for name in self._providers:
            self.reset_breaker(name)

    def start_monitoring(self, interval: float = 300.0) -> Monitor:
        """Start (or return) the background monitor: a log summary every *interval* seconds."""
        if self._closed:
            msg = "this AsyncLLMClient is closed"
            raise ClientClosedError(msg)
        if self._monitor is None or not self._monitor.running:
            self._monitor = Monitor(self.metrics, interval=interval, clock=self._clock)
            self._monitor.start()
        return self._monitor

    def log_monitoring_summary(self) -> dict[str, Any]:
        """Log one structured summary now and return it."""
        if self._monitor is not None:
            return self._monitor.log_summary()
        return Monitor(self.metrics, clock=self._clock).log_summary()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once `aclose` has run."""
        return self._closed

    async def aclose(self) -> None:
        """Stop the monitor and close every HTTP client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._monitor is not None:
            await self._monitor.stop()
        for provider in self._providers.values():
            await provider.sdk.close()

    async def __aenter__(self) -> AsyncLLMClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"AsyncLLMClient(providers={self.providers!r}, fallbacks={self._fallbacks!r}, "
            f"closed={self._closed})"
        )
