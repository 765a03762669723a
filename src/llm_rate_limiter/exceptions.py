# SPDX-License-Identifier: MIT
"""
The library's exceptions.

Errors raised by the provider SDK (``openai.RateLimitError`` and friends) pass
through unchanged; these are the library's own::

    LLMRateLimiterError
    ├── ConfigurationError (also ValueError)
    ├── CircuitOpenError
    ├── RateLimitTimeoutError (also TimeoutError)
    ├── RequestTooLargeError
    ├── DeadlineExceededError (also TimeoutError)
    ├── AttemptTimeoutError (also TimeoutError)
    ├── SharedStateUnavailableError
    ├── ClientClosedError (also RuntimeError)
    └── StreamInterruptedError
"""

from __future__ import annotations

__all__ = [
    "AttemptTimeoutError",
    "CircuitOpenError",
    "ClientClosedError",
    "ConfigurationError",
    "DeadlineExceededError",
    "LLMRateLimiterError",
    "RateLimitTimeoutError",
    "RequestTooLargeError",
    "SharedStateUnavailableError",
    "StreamInterruptedError",
]


class LLMRateLimiterError(Exception):
    """
    Base class of every exception the library raises itself.

    .. versionadded:: 0.1.0
    """


class ConfigurationError(LLMRateLimiterError, ValueError):
    """
    An impossible setting, raised at construction; the message names the setting.

    Attributes:
        setting: The name of the offending setting.

    .. versionadded:: 0.1.0
    """

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class CircuitOpenError(LLMRateLimiterError):
    """
    The service's circuit breaker is open (or its half-open trial slots are taken).

    Attributes:
        service: The service whose breaker refused the call.
        retry_after: Seconds until a trial call will be allowed (0 when half-open).

    .. versionadded:: 0.1.0
    """

    def __init__(self, service: str, retry_after: float) -> None:
        self.service = service
        self.retry_after = max(0.0, retry_after)
        super().__init__(
            f"circuit breaker for {service!r} is open; next trial call in {self.retry_after:.2f}s"
        )


class RateLimitTimeoutError(LLMRateLimiterError, TimeoutError):
    """
    Acquiring rate-limit capacity would take longer than allowed (``max_wait``).

    Attributes:
        service: The service whose limiter refused the call.
        predicted_wait: The wait the limiter predicted, in seconds.
        max_wait: The longest wait allowed, in seconds.

    .. versionadded:: 0.1.0
    """

    def __init__(self, service: str, predicted_wait: float, max_wait: float) -> None:
        self.service = service
        self.predicted_wait = predicted_wait
        self.max_wait = max_wait
        super().__init__(
            f"rate limiter for {service!r} would wait {predicted_wait:.2f}s, "
            f"more than max_wait={max_wait:.2f}s"
        )


class RequestTooLargeError(LLMRateLimiterError):
    """
    A request costs more tokens than the limiter's bucket can ever hold.

    Attributes:
        service: The service whose limits the request exceeds.
        tokens: The request's estimated cost.
        capacity: The largest cost the bucket admits.

    .. versionadded:: 0.1.0
    """

    def __init__(self, service: str, tokens: float, capacity: float) -> None:
        self.service = service
        self.tokens = tokens
        self.capacity = capacity
        super().__init__(
            f"request to {service!r} needs {tokens:.0f} tokens but the bucket holds "
            f"at most {capacity:.0f}; it can never be admitted"
        )


class DeadlineExceededError(LLMRateLimiterError, TimeoutError):
    """
    The call's total time budget ran out before it could succeed.

    .. versionadded:: 0.1.0
    """


class AttemptTimeoutError(LLMRateLimiterError, TimeoutError):
    """
    One attempt ran past its time limit: ``attempt_timeout``, or what was left of the deadline.

    Classified as `RetryErrorType.TIMEOUT` (retried by default) and counted as a
    failed attempt by the breaker and the metrics. ``except TimeoutError`` catches it.

    Attributes:
        service: The service the attempt went to.
        timeout: The limit the attempt ran into, in seconds.

    .. versionadded:: 0.2.0
    """

    def __init__(self, service: str, timeout: float) -> None:
        self.service = service
        self.timeout = timeout
        super().__init__(f"attempt to {service!r} timed out after {timeout:.2f}s")


class SharedStateUnavailableError(LLMRateLimiterError):
    """
    The shared state (Redis) did not answer within ``redis_timeout``, and the policy fails closed.

    Raised only with ``redis_failure="closed"``; with ``"open"`` (the default)
    each process limits itself locally instead. Classified
    `RetryErrorType.PERMANENT` for the call (not retried, no fallback: every
    provider shares the same Redis) and never counted as a breaker failure.

    Attributes:
        service: The service whose shared state was unreachable.

    .. versionadded:: 0.2.0
    """

    def __init__(self, service: str, reason: str) -> None:
        self.service = service
        self.reason = reason
        super().__init__(f"shared state of {service!r} unavailable ({reason}); failing closed")


class ClientClosedError(LLMRateLimiterError, RuntimeError):
    """
    The client was used after it was closed.

    .. versionadded:: 0.1.0
    """


class StreamInterruptedError(LLMRateLimiterError):
    """
    A stream failed after its first chunk, so it could not be retried.

    The original error is the ``__cause__``.

    Attributes:
        service: The provider whose stream broke.
        kind: The classification of the original error (a `RetryErrorType`).
        chunks: How many chunks had been delivered.

    .. versionadded:: 0.1.0
    """

    def __init__(self, service: str, kind: object, chunks: int) -> None:
        self.service = service
        self.kind = kind
        self.chunks = chunks
        value = getattr(kind, "value", kind)
        super().__init__(f"stream from {service!r} failed after {chunks} chunks ({value})")
