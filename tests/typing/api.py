# SPDX-License-Identifier: MIT
"""Type-only use of the public API: checked by mypy --strict, never run."""

from __future__ import annotations

import llm_rate_limiter as llmrl


def classify(exc: Exception) -> bool:
    kind: llmrl.RetryErrorType = llmrl.classify_error(exc)
    return llmrl.is_retryable(kind)


def headers(h: dict[str, str]) -> float | None:
    parsed: llmrl.RateLimitHeaders = llmrl.parse_rate_limit_headers(h)
    delay: float | None = llmrl.parse_retry_after(h)
    return parsed.remaining_requests if delay is None else delay
