# SPDX-License-Identifier: MIT
"""One provider at run time: its ``AsyncOpenAI`` (SDK retries off) and its `ResiliencePolicy`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import openai
from openai.types.chat import ChatCompletion

from .._clock import Clock
from .._hooks import MetricsHook
from .._policy import ResiliencePolicy
from ..exceptions import ConfigurationError
from ..limiter import ProviderLimiter, estimate_request_tokens
from ..retry import RetryCallStats
from ._providers import ProviderConfig
from ._stream import OpenStream, open_stream

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["ProviderRuntime", "Shared", "Span", "as_messages", "build_policy"]


class Span(NamedTuple):
    """When a call started and when its deadline is (None: no deadline), on the client's clock."""

    started: float
    deadline_at: float | None


def as_messages(messages: Iterable[Any]) -> list[Any]:
    """
    The chat messages as a list.

    Raises:
        TypeError: *messages* is a string or a single message, not a sequence of them.
    """
    if isinstance(messages, str | bytes | Mapping):
        msg = (
            f"messages must be a list of messages such as "
            f'[{{"role": "user", "content": "..."}}], got {type(messages).__name__}'
        )
        raise TypeError(msg)
    return list(messages)


class Shared(NamedTuple):
    """Where and how a client shares its limits and breakers (no Redis: in-process)."""

    redis: redis.asyncio.Redis | redis.asyncio.RedisCluster | None
    key_prefix: str = "llmrl"
    failure: Literal["open", "closed"] = "open"
    timeout: float = 0.25
    lease: float | None = None


def build_policy(
    config: ProviderConfig, hook: MetricsHook, clock: Clock, shared: Shared
) -> ResiliencePolicy:
    """The provider's policy: in-process, or with its limits and breaker shared through Redis."""
    if shared.redis is None:
        limits = config.limits
        dialect = config.rate_limit_dialect
        return ResiliencePolicy(
            config.name,
            retry=config.retry,
            limiter=None
            if limits is None
            else ProviderLimiter(limits, service=config.name, hook=hook, dialect=dialect),
            breaker=config.breaker,
            hook=hook,
            clock=clock,
        )
    from ..distributed import shared_policy
    from ..distributed._redis_base import DEFAULT_LEASE

    return shared_policy(
        config.name,
        redis=shared.redis,
        retry=config.retry,
        limits=config.limits,
        breaker=config.breaker,
        hook=hook,
        clock=clock,
        key_prefix=shared.key_prefix,
        lease=DEFAULT_LEASE if shared.lease is None else shared.lease,
        redis_failure=shared.failure,
        redis_timeout=shared.timeout,
        api_key=config.api_key,
    )


def _settle(raw: Any) -> tuple[float | None, Any]:
    usage = raw.parse().usage
    return (usage.total_tokens if usage is not None else None), raw.headers


class ProviderRuntime:
    """A provider's SDK client and policy, and the two ways to call it."""

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

    async def aclose(self) -> None:
        """Stop the breaker's timers, close the HTTP client and the shared state's tasks."""
        breaker = self.policy.breaker
        if breaker is not None:
            breaker.close()
        await self.sdk.close()
        for part in (breaker, self.policy.limiter):
            close = getattr(part, "aclose", None)  # the Redis-backed parts
            if close is not None:
                await close()

    def model(self, requested: str | None) -> str:
        """The model to ask for: *requested*, else the provider's default."""
        model = requested or self.config.model
        if not model:
            msg = f"no model given and provider {self.config.name!r} has no default model"
            raise ConfigurationError("model", msg)
        return model

    def tokens(self, messages: Any, model: str, kwargs: Mapping[str, Any]) -> float:
        """The request's estimated token cost, or 0 when no token limit applies."""
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

    async def complete(
        self,
        messages: list[Any],
        model: str,
        kwargs: Mapping[str, Any],
        stats: RetryCallStats,
        max_retries: int | None = None,
        last_resort: bool = True,
        deadline_at: float | None = None,
    ) -> ChatCompletion:
        """
        One chat completion through the policy; the response headers feed the limiter.

        The body is parsed inside the attempt: a reply that does not parse is a
        failed attempt (classified, retried, counted by the breaker).
        """
        create = self.sdk.chat.completions.with_raw_response.create

        def send() -> Any:
            return create(messages=messages, model=model, **kwargs)

        raw = await self.policy.run(
            send,
            tokens=self.tokens(messages, model, kwargs),
            settle=_settle,
            stats=stats,
            last_resort=last_resort,
            deadline_at=deadline_at,
            max_retries=max_retries,
        )
        completion: ChatCompletion = raw.parse()  # parsed once already: cached
        return completion

    async def stream(
        self,
        messages: list[Any],
        model: str,
        kwargs: Mapping[str, Any],
        stats: RetryCallStats,
        span: Span,
        last_resort: bool = True,
    ) -> OpenStream:
        """Open a stream through the policy: retries end with its first chunk."""
        return await open_stream(
            self.policy,
            self.sdk,
            messages=messages,
            model=model,
            tokens=self.tokens(messages, model, kwargs),
            kwargs=kwargs,
            stats=stats,
            started=span.started,
            deadline_at=span.deadline_at,
            last_resort=last_resort,
        )
