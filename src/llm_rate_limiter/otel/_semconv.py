# SPDX-License-Identifier: MIT
"""
The names of the OpenTelemetry GenAI semantic conventions we use, and our own.

Written out here rather than imported from ``opentelemetry-semantic-conventions``
(its GenAI names are incubating and move between releases): the extra needs
``opentelemetry-api`` only. Bucket boundaries are the conventions' advice for
``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = [
    "DURATION_BUCKETS",
    "PROVIDER_HOSTS",
    "TOKEN_BUCKETS",
    "provider_name",
    "server_address",
]

# -- GenAI semantic conventions -------------------------------------------------------

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_STREAM = "gen_ai.request.stream"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOKEN_TYPE = "gen_ai.token.type"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

METRIC_DURATION = "gen_ai.client.operation.duration"
METRIC_TOKENS = "gen_ai.client.token.usage"
METRIC_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"

#: The conventions' explicit bucket boundaries for durations (seconds).
DURATION_BUCKETS: tuple[float, ...] = tuple(0.01 * 2**i for i in range(14))  # 0.01 ... 81.92
#: The conventions' explicit bucket boundaries for token counts.
TOKEN_BUCKETS = tuple(4**i for i in range(14))  # 1, 4, 16, ..., 67108864

# -- ours -----------------------------------------------------------------------------

SERVICE = "llm_rate_limiter.provider"  # the provider's configured name
ATTEMPT = "llm_rate_limiter.attempt"
ERROR_KIND = "llm_rate_limiter.error.kind"  # a RetryErrorType value
FALLBACK_FROM = "llm_rate_limiter.fallback.from"
FALLBACK_TO = "llm_rate_limiter.fallback.to"
FALLBACK_REASON = "llm_rate_limiter.fallback.reason"
RETRY_KIND = "llm_rate_limiter.retry.kind"
RETRY_DELAY = "llm_rate_limiter.retry.delay"
WAIT_SECONDS = "llm_rate_limiter.limiter.wait"
WAIT_TOKENS = "llm_rate_limiter.limiter.tokens"
DENIAL_REASON = "llm_rate_limiter.limiter.denial_reason"
COOLDOWN_SECONDS = "llm_rate_limiter.limiter.cooldown"
BREAKER_FROM = "llm_rate_limiter.breaker.from"
BREAKER_TO = "llm_rate_limiter.breaker.to"
BREAKER_STATE = "llm_rate_limiter.breaker.state"

#: ``gen_ai.provider.name`` values of the conventions, by API host.
PROVIDER_HOSTS = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral_ai",
    "api.perplexity.ai": "perplexity",
    "api.x.ai": "x_ai",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
    "generativelanguage.googleapis.com": "gcp.gemini",
}
#: Where the SDK sends requests when a provider has no ``base_url``.
_DEFAULT_BASE_URL = "https://api.openai.com/v1"


def server_address(base_url: str | None) -> tuple[str, int]:
    """
    The host and port a provider's requests go to (``server.address``, ``server.port``).

    Args:
        base_url: The provider's ``base_url``; None for the SDK's default (OpenAI).

    Returns:
        The host name and the port (the scheme's default when the URL names none).
    """
    parts = urlsplit(base_url or _DEFAULT_BASE_URL)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


def provider_name(name: str, base_url: str | None) -> str:
    """
    The ``gen_ai.provider.name`` of a provider: the conventions' value where one exists.

    The API host decides (``api.openai.com`` is ``openai``, an Azure OpenAI
    resource ``azure.ai.openai``, ...); else the configured name (``moonshot``;
    a provider named ``openai`` pointed at a local server stays ``openai``).

    Args:
        name: The provider's configured name.
        base_url: The provider's ``base_url``.
    """
    host, _ = server_address(base_url)
    known = PROVIDER_HOSTS.get(host)
    if known is not None:
        return known
    if host.endswith(".openai.azure.com"):
        return "azure.ai.openai"
    return name
