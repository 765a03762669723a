# SPDX-License-Identifier: MIT
"""
`ProviderConfig`: one OpenAI-compatible endpoint and its policies, and the built-in profiles.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import openai

from .._headers import RATE_LIMIT_DIALECTS
from .._validate import check_number
from ..breaker import BreakerPolicy
from ..exceptions import ConfigurationError
from ..limiter import RateLimits
from ..retry import RetryPolicy

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "API_KEY_VARIABLES",
    "MOONSHOT_BASE_URL",
    "OPENAI_BASE_URL",
    "ProviderConfig",
    "add_base_url_hint",
    "missing_key_hint",
]

OPENAI_BASE_URL = "https://api.openai.com/v1"
MOONSHOT_BASE_URL = "https://api.moonshot.ai/v1"

#: The environment variable each built-in profile reads its API key from.
API_KEY_VARIABLES: Mapping[str, str] = {"openai": "OPENAI_API_KEY", "moonshot": "MOONSHOT_API_KEY"}

#: A path segment naming an API version: v1, v2, v1beta...
_VERSION_SEGMENT = re.compile(r"v\d+[a-z0-9]*", re.IGNORECASE)

#: Error codes/types after which another provider may well succeed.
DEFAULT_FALLBACK_CODES = frozenset(
    {
        "context_length_exceeded",
        "content_filter",
        "content_policy_violation",
        "insufficient_quota",
        "exceeded_current_quota_error",
        "invalid_api_key",
        "model_not_found",
    }
)


def _redact(secret: str | None) -> str:
    if not secret:
        return "None"
    return "'***'"


@dataclass(frozen=True, slots=True, repr=False)
class ProviderConfig:
    """
    One OpenAI-compatible provider: where it is, its key, and its policies.

    The API key never appears in ``repr``, logs, metrics or errors.

    Attributes:
        name: The provider's name, used in metrics and fallbacks.
        base_url: The API root (``.../v1``); None for the SDK's default (OpenAI).
        api_key: The secret key.
        model: The default model of `AsyncLLMClient.chat`.
        limits: Rate limits; None disables local rate limiting.
        retry: The retry policy (its ``attempt_timeout`` bounds each attempt).
        breaker: The breaker policy; None disables the breaker.
        timeout: The HTTP timeout of one request, in seconds.
        extra_headers: Headers sent with every request.
        fallback_codes: Error codes/types after which the call moves to a fallback.
        rate_limit_dialect: How the provider announces its limits, one of
            `RATE_LIMIT_DIALECTS` (``"openai"``, ``"plain"``, ``"groq"``,
            ``"together"``, ``"azure"``, ``"ietf"``, ``"gemini"``); None detects it
            from the headers of each response. Name it when the provider's headers
            look like another's (Groq's per-day limits behind a proxy that drops
            ``x-groq-region``, Together's without token headers).
        http_client: An ``httpx2.AsyncClient`` to use (tests and benchmarks).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``rate_limit_dialect``.
    """

    name: str
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    limits: RateLimits | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy | None = field(default_factory=BreakerPolicy)
    timeout: float = 60.0
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    fallback_codes: frozenset[str] = DEFAULT_FALLBACK_CODES
    rate_limit_dialect: str | None = None
    http_client: httpx2.AsyncClient | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            msg = f"must be a non-empty string, got {self.name!r}"
            raise ConfigurationError("name", msg)
        if self.base_url is not None and not str(self.base_url).startswith(("http://", "https://")):
            msg = f"must start with http:// or https://, got {self.base_url!r}"
            raise ConfigurationError("base_url", msg)
        check_number("timeout", self.timeout, minimum=0.0, inclusive=False)
        dialect = self.rate_limit_dialect
        if dialect is not None and dialect not in RATE_LIMIT_DIALECTS:
            msg = (
                f"must be one of {', '.join(RATE_LIMIT_DIALECTS)}, or None to detect it "
                f"from the headers; got {dialect!r}"
            )
            raise ConfigurationError("rate_limit_dialect", msg)

    def __repr__(self) -> str:
        return (
            f"ProviderConfig(name={self.name!r}, base_url={self.base_url!r}, "
            f"api_key={_redact(self.api_key)}, model={self.model!r}, limits={self.limits!r}, "
            f"retry={self.retry!r}, breaker={self.breaker!r}, timeout={self.timeout!r})"
        )

    __str__ = __repr__

    def with_options(self, **changes: Any) -> ProviderConfig:
        """Return a copy with *changes* applied (validated again)."""
        return replace(self, **changes)

    @classmethod
    def openai(
        cls,
        api_key: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> ProviderConfig:
        """
        The OpenAI profile: the seed's retry defaults (2 retries, 2 s base, 45 s cap).

        Its limits are read in the ``"openai"`` dialect.

        Settings come from ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` and the
        ``LLMRL_*``/``LLMRL_OPENAI_*`` variables; *overrides* win.
        """
        env = os.environ if environ is None else environ
        return cls._profile(
            "openai",
            env.get("OPENAI_BASE_URL") or OPENAI_BASE_URL,
            api_key if api_key is not None else env.get("OPENAI_API_KEY"),
            env,
            model="gpt-4o-mini",
            limits=RateLimits(requests_per_minute=500, tokens_per_minute=200_000),
            rate_limit_dialect="openai",
            overrides=overrides,
        )

    @classmethod
    def moonshot(
        cls,
        api_key: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> ProviderConfig:
        """
        The Moonshot (Kimi) profile: the seed's retry defaults (3 retries, 1 s base, 30 s cap).

        Moonshot also limits concurrency; its limits are read in the ``"plain"``
        dialect (``X-RateLimit-Limit``/``-Remaining``/``-Reset``). Settings come
        from ``MOONSHOT_API_KEY``, ``MOONSHOT_BASE_URL`` and
        ``LLMRL_*``/``LLMRL_MOONSHOT_*``; *overrides* win.
        """
        env = os.environ if environ is None else environ
        return cls._profile(
            "moonshot",
            env.get("MOONSHOT_BASE_URL") or MOONSHOT_BASE_URL,
            api_key if api_key is not None else env.get("MOONSHOT_API_KEY"),
            env,
            model="moonshot-v1-8k",
            limits=RateLimits(
                requests_per_minute=200, tokens_per_minute=128_000, max_concurrency=50
            ),
            rate_limit_dialect="plain",
            overrides=overrides,
        )

    @classmethod
    def compatible(
        cls,
        name: str,
        base_url: str,
        api_key: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> ProviderConfig:
        """Any OpenAI-compatible endpoint; ``LLMRL_<NAME>_*`` variables apply."""
        env = os.environ if environ is None else environ
        return cls._profile(
            name,
            base_url,
            api_key,
            env,
            model=None,
            limits=None,
            rate_limit_dialect=None,
            overrides=overrides,
        )

    @classmethod
    def _profile(
        cls,
        name: str,
        base_url: str,
        api_key: str | None,
        env: Mapping[str, str],
        *,
        model: str | None,
        limits: RateLimits | None,
        rate_limit_dialect: str | None,
        overrides: Mapping[str, Any],
    ) -> ProviderConfig:
        values: dict[str, Any] = {
            "name": name,
            "base_url": base_url,
            "api_key": api_key,
            "model": env.get(f"LLMRL_{name.upper()}_MODEL") or model,
            "limits": _limits(name, env, limits),
            "retry": RetryPolicy.for_service(name, environ=env),
            "breaker": BreakerPolicy.from_env(name, environ=env),
            "rate_limit_dialect": rate_limit_dialect,
        }
        values.update(overrides)
        return cls(**values)


def _limits(service: str, env: Mapping[str, str], default: RateLimits | None) -> RateLimits | None:
    """The profile's limits with any ``LLMRL_*`` rate-limit variables applied on top."""
    from_env = RateLimits.from_env(service, environ=env)
    blank = RateLimits()
    changes = {
        name: getattr(from_env, name)
        for name in RateLimits.__dataclass_fields__
        if getattr(from_env, name) != getattr(blank, name)
    }
    if not changes:
        return default
    return replace(default or blank, **changes)


def missing_key_hint(provider: str) -> str:
    """
    How to give *provider* its API key: the environment variable its profile reads, if any.

    For an error such as ``provider 'openai' has no API key (<hint>)``.
    """
    variable = API_KEY_VARIABLES.get(provider)
    if variable is None:
        return "pass api_key= to its ProviderConfig"
    return f"set {variable} in the environment or pass api_key="


def add_base_url_hint(exc: BaseException, base_url: str | None) -> None:
    """
    Note on a 404 that *base_url* may lack its ``/v1``, when no path segment is a version.

    Most OpenAI-compatible servers route ``/v1/chat/completions``; a base URL
    without the version makes the SDK ask for ``/chat/completions``, which they
    answer 404. A 404 whose error code is ``model_not_found`` reached the API,
    so it gets no note; nor does the SDK's default URL (None), nor an exception
    that has the note already. The note shows scheme, host and path only (no
    credentials, no query).
    """
    if base_url is None or not isinstance(exc, openai.NotFoundError):
        return
    if exc.code == "model_not_found":
        return
    parts = urlsplit(base_url)
    if any(_VERSION_SEGMENT.fullmatch(segment) for segment in parts.path.split("/")):
        return
    shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path.rstrip('/')}"
    note = (
        f"llm_rate_limiter: 404 from base_url {shown!r}, whose path has no version; "
        f"OpenAI-compatible APIs usually live under /v1: try base_url='{shown}/v1'"
    )
    if note not in getattr(exc, "__notes__", ()):
        exc.add_note(note)
