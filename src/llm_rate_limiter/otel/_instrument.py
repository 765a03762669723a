# SPDX-License-Identifier: MIT
"""`instrument` and `uninstrument`: OpenTelemetry traces and metrics for a client or a policy."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry import metrics, trace

from .._policy import ResiliencePolicy
from ..client import AsyncLLMClient
from ..exceptions import ConfigurationError
from . import _semconv as sc
from ._hook import BREAKER_STATES, Instruments, OtelHook
from ._spans import Tracing

__all__ = ["instrument", "uninstrument"]

#: The instrumentation scope of every span and instrument.
SCOPE = "llm_rate_limiter"


def _parts(
    target: AsyncLLMClient | ResiliencePolicy,
) -> Iterator[tuple[ResiliencePolicy, str | None, str | None]]:
    """Each policy of *target*, with its provider's base URL and API key."""
    if isinstance(target, ResiliencePolicy):
        yield target, None, None
    elif isinstance(target, AsyncLLMClient):
        for runtime in target._providers.values():
            yield runtime.policy, runtime.config.base_url, runtime.config.api_key
    else:
        msg = f"must be an AsyncLLMClient or a ResiliencePolicy, got {type(target).__name__}"
        raise ConfigurationError("client", msg)


def instrument(
    client: AsyncLLMClient | ResiliencePolicy,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    capture_message_content: bool = False,
) -> None:
    """
    Trace and measure every call of *client* with OpenTelemetry, until `uninstrument`.

    Each ``chat``/``chat_stream`` call becomes a CLIENT span ``chat {model}`` with
    the GenAI semantic conventions' attributes, with a child span per attempt
    (current while it runs: an SDK or HTTP instrumentation's spans nest under
    it) and span events for limiter waits, breaker refusals, retry decisions
    and fallbacks. Metrics: ``gen_ai.client.operation.duration``,
    ``gen_ai.client.token.usage``, ``gen_ai.client.operation.time_to_first_chunk``
    and the ``llm_rate_limiter.*`` instruments, fed from the same events as
    ``client.metrics`` (which keeps receiving them all). A `ResiliencePolicy`
    gets its attempt spans, events and ``llm_rate_limiter.*`` metrics. Calling
    it again replaces the earlier instrumentation. An uninstrumented client
    pays nothing.

    Args:
        client: The `AsyncLLMClient` (or `ResiliencePolicy`) to instrument.
        tracer_provider: Where spans go (default: the global tracer provider).
        meter_provider: Where measurements go (default: the global meter provider).
        capture_message_content: Record the messages sent and received in the
            span (``gen_ai.input.messages``, ``gen_ai.output.messages``). Off by
            default, as the conventions advise: messages may hold personal data.

    Raises:
        ConfigurationError: *client* is neither a client nor a policy.

    .. versionadded:: 0.3.0
    """
    from .. import __version__

    parts = list(_parts(client))
    uninstrument(client)
    tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
    meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
    instruments = Instruments(meter)
    tracing = Tracing(
        tracer,
        instruments,
        capture_message_content=capture_message_content,
        secrets=[key for _, _, key in parts if key],
    )
    for policy, base_url, key in parts:
        provider = policy.name if key is None else sc.provider_name(policy.name, base_url)
        hook = OtelHook(policy.hook, instruments, policy.name, provider)
        policy._set_hook(hook)
        policy.tracer = tracing
        if policy.breaker is not None:
            state = BREAKER_STATES.get(policy.breaker.state, -1)
            instruments.breaker_state.set(state, {sc.SERVICE: policy.name, sc.PROVIDER: provider})
    if isinstance(client, AsyncLLMClient):
        client._tracer = tracing


def uninstrument(client: AsyncLLMClient | ResiliencePolicy) -> None:
    """
    Stop tracing and measuring *client* with OpenTelemetry (nothing happens if it was not).

    Its parts report to ``client.metrics`` alone again; spans already open end
    as usual.

    Args:
        client: An `AsyncLLMClient` or `ResiliencePolicy` given to `instrument`.

    Raises:
        ConfigurationError: *client* is neither a client nor a policy.

    .. versionadded:: 0.3.0
    """
    for policy, _, _ in _parts(client):
        hook = policy.hook
        if isinstance(hook, OtelHook):
            policy._set_hook(hook.inner)
        policy.tracer = None
    if isinstance(client, AsyncLLMClient):
        client._tracer = None
