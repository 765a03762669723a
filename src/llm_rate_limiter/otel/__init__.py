# SPDX-License-Identifier: MIT
"""
OpenTelemetry traces and metrics under the GenAI semantic conventions (the ``otel`` extra).

``instrument(client)`` makes every call a CLIENT span ``chat {model}`` with a
child span per attempt, events for limiter waits, breaker refusals, retries
and fallbacks, and records ``gen_ai.client.*`` and ``llm_rate_limiter.*``
metrics; ``uninstrument(client)`` stops it. This package imports
``opentelemetry`` (``opentelemetry-api`` only); nothing else in the library does.

.. versionadded:: 0.3.0
"""

from __future__ import annotations

from ._instrument import instrument, uninstrument

__all__ = ["instrument", "uninstrument"]
