# SPDX-License-Identifier: MIT
"""
`AsyncLLMClient`: providers, the composition per call, fallbacks and monitoring.

Per call: ``fallback chain ⊃ [retry ⊃ breaker ⊃ limiter ⊃ attempt timeout ⊃ SDK call]``,
one `ResiliencePolicy` per provider and one ``AsyncOpenAI`` per provider with
the SDK's own retries off (``max_retries=0``): retries happen in one place.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from .._clock import SYSTEM_CLOCK, Clock
from .._policy import ResiliencePolicy
from .._tracing import ChatTracer
from .._validate import check_int
from ..exceptions import ClientClosedError, ConfigurationError
from ..monitoring import MetricsCollector, Monitor, unregister_prometheus
from ..retry import RetryCallStats
from ._call_info import CallInfo, FallbackRecord
from ._fallback import fallback_reason, validate_fallbacks
from ._monitoring import ClientMonitoring
from ._providers import ProviderConfig, add_base_url_hint, missing_key_hint
from ._runtime import ProviderRuntime, Shared, Span, as_messages, build_policy
from ._stream import OpenStream

if TYPE_CHECKING:
    import redis.asyncio

T = TypeVar("T")

__all__ = ["AsyncLLMClient"]


class AsyncLLMClient(ClientMonitoring):
    """
    Chat completions that survive rate limits, outages and flaky networks.

    Args:
        providers: One `ProviderConfig` per provider; names must be unique.
        fallbacks: For each provider, the providers to try, in order, when it
            cannot serve a call (``{"openai": ["moonshot"]}``).
        default_provider: The provider of calls that name none (default: the first).
        metrics: The collector to feed (default: a new `MetricsCollector`).
        clock: Time source for the policy parts; tests pass `FakeClock`.
        redis: A ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster`` client
            (see `llm_rate_limiter.distributed.redis_from_env`): every provider's
            limits and breaker state are then shared with every other process using
            the same Redis; on a cluster each provider (and API key) lives on one
            shard (`llm_rate_limiter.distributed`; needs the ``redis`` extra).
        redis_key_prefix: Prefix of the shared keys.
        redis_failure: When Redis does not answer within *redis_timeout*: ``"open"``
            (the default) runs each process on local state, ``"closed"`` refuses
            calls with `SharedStateUnavailableError`.
        redis_timeout: Bound of every Redis operation on the call path, in seconds.
        redis_lease: Seconds a shared concurrency slot is leased for (renewed while
            held; a killed worker's slots come back after it). Default 10.

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
        redis: redis.asyncio.Redis | redis.asyncio.RedisCluster | None = None,
        redis_key_prefix: str = "llmrl",
        redis_failure: Literal["open", "closed"] = "open",
        redis_timeout: float = 0.25,
        redis_lease: float | None = None,
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
                msg = f"provider {config.name!r} has no API key ({missing_key_hint(config.name)})"
                raise ConfigurationError("api_key", msg)
        self._fallbacks = validate_fallbacks(fallbacks or {}, names)
        if default_provider is not None and default_provider not in names:
            msg = f"unknown provider {default_provider!r} (known: {names})"
            raise ConfigurationError("default_provider", msg)
        self.default_provider = default_provider or names[0]
        self.metrics = metrics if metrics is not None else MetricsCollector(clock=clock)
        self._clock = clock
        self._providers: dict[str, ProviderRuntime] = {}
        shared = Shared(redis, redis_key_prefix, redis_failure, redis_timeout, redis_lease)
        for config in providers:
            policy = build_policy(config, self.metrics, clock, shared)
            self._providers[config.name] = ProviderRuntime(config, policy)
        self._chains: dict[str, tuple[str, ...]] = {
            name: (name, *self._fallbacks.get(name, ())) for name in names
        }
        self._monitor: Monitor | None = None
        self._tracer: ChatTracer | None = None  # set by llm_rate_limiter.otel.instrument
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

    def _move_on(
        self,
        chain: tuple[str, ...],
        index: int,
        exc: Exception,
        info: CallInfo,
        deadline_at: float | None,
    ) -> bool:
        """Record *exc*; return True if the call should try the next provider."""
        name = chain[index]
        provider = self._providers[name]
        info.errors[name] = type(exc).__name__
        if index + 1 >= len(chain):
            return False
        if deadline_at is not None and self._clock.monotonic() >= deadline_at:
            exc.add_note("llm_rate_limiter: the call's deadline passed; no fallback tried")
            return False
        reason = fallback_reason(
            exc, provider.config.retry.retry_on, provider.config.fallback_codes
        )
        if reason is None:
            return False
        backup = chain[index + 1]
        info.fallbacks.append(FallbackRecord(name, backup, reason, type(exc).__name__))
        provider.policy.hook.fallback_taken(name, backup, reason)  # the metrics (and OTel)
        return True

    async def _through_chain(
        self,
        provider: str | None,
        model: str | None,
        call_info: CallInfo | None,
        run_one: Callable[[ProviderRuntime, str, RetryCallStats, int, bool, Span], Awaitable[T]],
        messages: list[Any] | None = None,
    ) -> T:
        """Try each provider of the chain in turn with *run_one*, recording what happened."""
        if messages is not None and (tracer := self._tracer) is not None:  # in a CLIENT span
            return await tracer.chat(self, provider, model, call_info, run_one, messages)
        chain = self._chain(provider)
        info = call_info if call_info is not None else CallInfo()
        clock = self._clock
        started = clock.monotonic()
        deadline = self._providers[chain[0]].policy.retry_policy.deadline  # one for the chain
        span = Span(started, None if deadline is None else started + deadline)
        for index, name in enumerate(chain):
            runtime = self._providers[name]
            use_model = runtime.model(model if index == 0 else None)
            info.providers_tried.append(name)
            stats = RetryCallStats()
            try:
                last = index + 1 == len(chain)
                result = await run_one(runtime, use_model, stats, index, last, span)
            except Exception as exc:
                add_base_url_hint(exc, runtime.config.base_url)
                info.attempts += stats.attempts
                info.retry_wait += stats.waited
                if self._move_on(chain, index, exc, info, span.deadline_at):
                    continue
                info.latency = clock.monotonic() - started
                if len(info.providers_tried) > 1:
                    exc.add_note(f"llm_rate_limiter: providers tried: {info.providers_tried}")
                raise
            info.attempts += stats.attempts
            info.retry_wait += stats.waited
            info.provider = name
            info.latency = clock.monotonic() - started
            return result
        raise AssertionError("unreachable")  # pragma: no cover -- the loop returns or raises

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
        message_list = as_messages(messages)
        if max_retries is not None:
            check_int("max_retries", max_retries)

        def run_one(
            runtime: ProviderRuntime,
            use_model: str,
            stats: RetryCallStats,
            index: int,
            last: bool,
            span: Span,
        ) -> Awaitable[ChatCompletion]:
            retries = max_retries if index == 0 else None
            return runtime.complete(
                message_list, use_model, kwargs, stats, retries, last, span.deadline_at
            )

        return await self._through_chain(provider, model, call_info, run_one, message_list)

    async def chat_stream(
        self,
        messages: Iterable[Any],
        provider: str | None = None,
        model: str | None = None,
        *,
        call_info: CallInfo | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """
        Stream a chat completion: retries and fallbacks happen only before the first chunk.

        A failure after the first chunk raises `StreamInterruptedError` (classified,
        with the original error as its cause). Arguments as for `chat`.

        Yields:
            The SDK's ``ChatCompletionChunk`` objects.
        """
        message_list = as_messages(messages)

        def run_one(
            runtime: ProviderRuntime,
            use_model: str,
            stats: RetryCallStats,
            index: int,
            last: bool,
            span: Span,
        ) -> Awaitable[OpenStream]:
            return runtime.stream(message_list, use_model, kwargs, stats, span, last)

        stream = await self._through_chain(provider, model, call_info, run_one, message_list)
        async with stream:
            async for chunk in stream:
                yield chunk

    def policy(self, provider: str) -> ResiliencePolicy:
        """The `ResiliencePolicy` of *provider*, to wrap other calls to the same provider."""
        return self._provider(provider).policy

    @property
    def providers(self) -> list[str]:
        """The provider names, in configuration order."""
        return list(self._providers)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once `aclose` has run."""
        return self._closed

    async def aclose(self) -> None:
        """
        Stop the monitor, withdraw `metrics` from Prometheus and close every HTTP client.

        Idempotent. The metrics leave every exporter of `register_prometheus`
        (a collector shared with another client leaves with the first to close).
        """
        if self._closed:
            return
        self._closed = True
        unregister_prometheus(self.metrics)
        if self._monitor is not None:
            await self._monitor.stop()
        for provider in self._providers.values():
            await provider.aclose()

    async def __aenter__(self) -> AsyncLLMClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"AsyncLLMClient(providers={self.providers!r}, fallbacks={self._fallbacks!r}, "
            f"closed={self._closed})"
        )
