# SPDX-License-Identifier: MIT
"""
Retry settings: `RetryPolicy`, validated at construction.

The per-service defaults come from the seed (openai: 2 retries, base 2 s, max
45 s; moonshot: 3 retries, base 1 s, max 30 s); `RetryPolicy.for_service` and
`RetryPolicy.from_env` apply ``LLMRL_*`` environment overrides on top.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import RETRYABLE_BY_DEFAULT, RetryErrorType
from .._validate import check_int, check_number
from ..exceptions import ConfigurationError
from ._budget import RetryBudget
from ._env import policy_from_env

__all__ = ["SERVICE_RETRY_DEFAULTS", "RetryPolicy", "parse_retry_on"]

#: Error types that are never retried, whatever ``retry_on`` says.
_NEVER_RETRIED = frozenset({RetryErrorType.AUTHENTICATION, RetryErrorType.PERMANENT})

#: The seed's per-service retry settings: (max_retries, base_delay, max_delay).
SERVICE_RETRY_DEFAULTS: Mapping[str, tuple[int, float, float]] = {
    "openai": (2, 2.0, 45.0),
    "moonshot": (3, 1.0, 30.0),
}


def parse_retry_on(
    setting: str, value: Iterable[RetryErrorType | str] | str
) -> frozenset[RetryErrorType]:
    """
    Turn error types or their names (or one comma-separated string) into a frozenset.

    Args:
        setting: The setting name to report in errors.
        value: `RetryErrorType` members, their values (``"rate_limit"``) or names
            (``"RATE_LIMIT"``), or a comma-separated string of them.

    Returns:
        The error types.

    Raises:
        ConfigurationError: An unknown name, or a type that is never retried
            (``authentication``, ``permanent``).
    """
    items: Iterable[RetryErrorType | str]
    items = (
        [p for p in (s.strip() for s in value.split(",")) if p] if isinstance(value, str) else value
    )
    result: set[RetryErrorType] = set()
    try:
        iterator = iter(items)
    except TypeError:
        msg = f"must be an iterable of RetryErrorType, got {value!r}"
        raise ConfigurationError(setting, msg) from None
    for item in iterator:
        if isinstance(item, RetryErrorType):
            result.add(item)
            continue
        if not isinstance(item, str):
            msg = f"must contain RetryErrorType members or their names, got {item!r}"
            raise ConfigurationError(setting, msg)
        name = item.strip().lower()
        try:
            result.add(RetryErrorType(name))
        except ValueError:
            known = ", ".join(t.value for t in RetryErrorType)
            msg = f"unknown error type {item!r} (known: {known})"
            raise ConfigurationError(setting, msg) from None
    never = result & _NEVER_RETRIED
    if never:
        names = ", ".join(sorted(t.value for t in never))
        msg = f"{names} errors are never retried"
        raise ConfigurationError(setting, msg)
    return frozenset(result)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """
    How a call is retried: how often, how long to wait, on which errors, within which budget.

    The wait before retry *n* (1-based) is exponential backoff with full jitter,
    ``uniform(0, min(max_delay, base_delay * 2 ** (n - 1)))`` (without jitter:
    exactly that cap). When the failure carries ``retry-after-ms`` or
    ``retry-after`` and *respect_retry_after* is set, the wait is that value
    (capped at *max_retry_after*) plus up to 10% of
    ``retry_after + base_delay`` of jitter, so refused callers do not come back
    in lockstep. A wait that would overrun the *deadline* is not slept: the call
    gives up at once.

    Attributes:
        max_retries: Retries after the first attempt (0 disables retrying).
        base_delay: Backoff of the first retry, in seconds.
        max_delay: Cap on the backoff, in seconds.
        jitter: Full jitter on the backoff (and jitter on top of Retry-After).
        retry_on: The error types worth another attempt.
        attempt_timeout: Time limit of one attempt, applied by the caller's
            composition (inside the limiter), not by the retry loop.
        deadline: Total time budget of a call, waits included; None for none.
        respect_retry_after: Obey the server's ``retry-after(-ms)``.
        max_retry_after: The longest Retry-After obeyed, in seconds.
        budget: An optional `RetryBudget` shared by all calls of a service.
        wait_for_breaker: When a call has nowhere else to go (no fallback left),
            retry a refusal by the open circuit breaker after the breaker's own
            ``retry_after`` (plus jitter), within *max_retries* and the *deadline*.
            Calls that have a fallback move on at once instead.

    Raises:
        ConfigurationError: A setting is impossible; the error names it.

    .. versionadded:: 0.1.0
    """

    max_retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: bool = True
    retry_on: frozenset[RetryErrorType] = field(default=RETRYABLE_BY_DEFAULT)
    attempt_timeout: float | None = None
    deadline: float | None = None
    respect_retry_after: bool = True
    max_retry_after: float = 60.0
    budget: RetryBudget | None = None
    wait_for_breaker: bool = True

    def __post_init__(self) -> None:
        check_int("max_retries", self.max_retries)
        base = check_number("base_delay", self.base_delay)
        maximum = check_number("max_delay", self.max_delay)
        assert base is not None
        assert maximum is not None
        if maximum < base:
            msg = f"must be >= base_delay ({base:g}), got {maximum:g}"
            raise ConfigurationError("max_delay", msg)
        object.__setattr__(self, "base_delay", base)
        object.__setattr__(self, "max_delay", maximum)
        for name in ("jitter", "respect_retry_after"):
            if not isinstance(getattr(self, name), bool):
                msg = f"must be a bool, got {getattr(self, name)!r}"
                raise ConfigurationError(name, msg)
        if not (isinstance(self.retry_on, frozenset) and self.retry_on <= RETRYABLE_BY_DEFAULT):
            object.__setattr__(self, "retry_on", parse_retry_on("retry_on", self.retry_on))
        for name in ("attempt_timeout", "deadline"):
            value = check_number(name, getattr(self, name), inclusive=False, allow_none=True)
            object.__setattr__(self, name, value)
        cap = check_number("max_retry_after", self.max_retry_after)
        object.__setattr__(self, "max_retry_after", cap)
        if self.budget is not None and not isinstance(self.budget, RetryBudget):
            msg = f"must be a RetryBudget or None, got {self.budget!r}"
            raise ConfigurationError("budget", msg)

    @classmethod
    def for_service(cls, service: str, *, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        """
        Build the policy of *service*: the seed's defaults, then ``LLMRL_*`` overrides.

        Args:
            service: A service name; ``"openai"`` and ``"moonshot"`` have their
                own defaults, any other name gets the class defaults.
            environ: The environment to read (default: `os.environ`).

        Returns:
            The policy.

        Raises:
            ConfigurationError: A malformed variable; the error names it.

        .. versionadded:: 0.1.0
        """
        base: dict[str, Any] = {}
        defaults = SERVICE_RETRY_DEFAULTS.get(service.strip().lower())
        if defaults is not None:
            base = dict(zip(("max_retries", "base_delay", "max_delay"), defaults, strict=True))
        return policy_from_env(cls, base, service, environ)

    @classmethod
    def from_env(
        cls, service: str | None = None, *, environ: Mapping[str, str] | None = None
    ) -> RetryPolicy:
        """
        Build a policy from ``LLMRL_*`` environment variables.

        Global variables: ``LLMRL_MAX_RETRIES``, ``LLMRL_BASE_DELAY``,
        ``LLMRL_MAX_DELAY``, ``LLMRL_JITTER``, ``LLMRL_DEADLINE``,
        ``LLMRL_ATTEMPT_TIMEOUT``, ``LLMRL_RETRY_ON`` (comma list),
        ``LLMRL_RESPECT_RETRY_AFTER``, ``LLMRL_MAX_RETRY_AFTER``,
        ``LLMRL_RETRY_BUDGET_RATIO``, ``LLMRL_RETRY_BUDGET_MIN_PER_SECOND``,
        ``LLMRL_RETRY_BUDGET_WINDOW`` (any budget variable enables the budget).
        ``LLMRL_<SERVICE>_<NAME>`` wins over ``LLMRL_<NAME>``. ``none`` or an
        empty value clears ``LLMRL_DEADLINE`` and ``LLMRL_ATTEMPT_TIMEOUT``.

        Args:
            service: With a service name, start from its defaults (as
                `for_service`) and read its own variables too.
            environ: The environment to read (default: `os.environ`).

        Returns:
            The policy.

        Raises:
            ConfigurationError: A malformed variable; the error names it.

        .. versionadded:: 0.1.0
        """
        if service is not None:
            return cls.for_service(service, environ=environ)
        return policy_from_env(cls, {}, None, environ)
