# SPDX-License-Identifier: MIT
"""Tests of `RetryPolicy` and `RetryBudget`: validation, per-service defaults, environment."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from llm_rate_limiter._errors import RETRYABLE_BY_DEFAULT, RetryErrorType
from llm_rate_limiter.exceptions import ConfigurationError
from llm_rate_limiter.retry import Retrier, RetryBudget, RetryPolicy


class TestValidation:
    def test_defaults(self) -> None:
        """The class defaults are 3 retries, 1 s base, 60 s cap, full jitter, default types."""
        policy = RetryPolicy()

        assert (3, 1.0, 60.0, True, RETRYABLE_BY_DEFAULT, None, None, True, 60.0, None) == (
            policy.max_retries,
            policy.base_delay,
            policy.max_delay,
            policy.jitter,
            policy.retry_on,
            policy.attempt_timeout,
            policy.deadline,
            policy.respect_retry_after,
            policy.max_retry_after,
            policy.budget,
        )

    @pytest.mark.parametrize(
        ("settings", "setting"),
        [
            ({"max_retries": -1}, "max_retries"),
            ({"max_retries": 1.5}, "max_retries"),
            ({"base_delay": -0.1}, "base_delay"),
            ({"max_delay": -1.0, "base_delay": 0.0}, "max_delay"),
            ({"base_delay": 10.0, "max_delay": 5.0}, "max_delay"),
            ({"base_delay": float("nan")}, "base_delay"),
            ({"retry_on": ["rate_limit", "nope"]}, "retry_on"),
            ({"retry_on": [RetryErrorType.AUTHENTICATION]}, "retry_on"),
            ({"retry_on": ["permanent"]}, "retry_on"),
            ({"retry_on": [42]}, "retry_on"),
            ({"retry_on": 42}, "retry_on"),
            ({"deadline": 0.0}, "deadline"),
            ({"attempt_timeout": -1.0}, "attempt_timeout"),
            ({"max_retry_after": -1.0}, "max_retry_after"),
            ({"jitter": "yes"}, "jitter"),
            ({"respect_retry_after": 1}, "respect_retry_after"),
            ({"budget": 0.2}, "budget"),
        ],
    )
    def test_bad_settings_name_the_setting(self, settings: dict[str, Any], setting: str) -> None:
        """Each impossible setting raises ConfigurationError naming it."""
        with pytest.raises(ConfigurationError) as info:
            RetryPolicy(**settings)

        assert setting == info.value.setting

    @pytest.mark.parametrize(
        ("settings", "setting"),
        [
            ({"ratio": -0.1}, "budget.ratio"),
            ({"min_retries_per_second": -1.0}, "budget.min_retries_per_second"),
            ({"window": 0.0}, "budget.window"),
        ],
    )
    def test_bad_budget_names_the_setting(self, settings: dict[str, Any], setting: str) -> None:
        """Each impossible budget setting raises ConfigurationError naming it."""
        with pytest.raises(ConfigurationError) as info:
            RetryBudget(**settings)

        assert setting == info.value.setting

    def test_retry_on_accepts_names_and_members(self) -> None:
        """retry_on takes members, values, names or a comma string, and stores a frozenset."""
        expected = frozenset({RetryErrorType.RATE_LIMIT, RetryErrorType.TIMEOUT})

        assert [expected] * 3 == [
            RetryPolicy(retry_on=["rate_limit", RetryErrorType.TIMEOUT]).retry_on,  # type: ignore[arg-type]
            RetryPolicy(retry_on=["RATE_LIMIT", "Timeout"]).retry_on,  # type: ignore[arg-type]
            RetryPolicy(retry_on="rate_limit, timeout").retry_on,  # type: ignore[arg-type]
        ]

    def test_retry_on_may_include_unknown(self) -> None:
        """Unclassified errors may be opted into retrying."""
        policy = RetryPolicy(retry_on=frozenset({RetryErrorType.UNKNOWN}))

        assert frozenset({RetryErrorType.UNKNOWN}) == policy.retry_on

    def test_timedelta_durations(self) -> None:
        """Durations given as timedelta are stored as float seconds."""
        policy = RetryPolicy(
            deadline=timedelta(seconds=30),  # type: ignore[arg-type]
            base_delay=timedelta(milliseconds=500),  # type: ignore[arg-type]
        )

        assert (30.0, 0.5) == (policy.deadline, policy.base_delay)

    def test_retrier_rejects_a_non_policy(self) -> None:
        """Retrier names the policy setting when given something else."""
        with pytest.raises(ConfigurationError) as info:
            Retrier({"max_retries": 3})  # type: ignore[arg-type]

        assert "policy" == info.value.setting


class TestForService:
    @pytest.mark.parametrize(
        ("service", "expected"),
        [
            ("openai", (2, 2.0, 45.0)),
            ("OpenAI", (2, 2.0, 45.0)),
            ("moonshot", (3, 1.0, 30.0)),
            ("anthropic-compatible", (3, 1.0, 60.0)),
        ],
    )
    def test_seed_defaults(self, service: str, expected: tuple[int, float, float]) -> None:
        """openai and moonshot get the seed's settings; other services the class defaults."""
        policy = RetryPolicy.for_service(service, environ={})

        assert expected == (policy.max_retries, policy.base_delay, policy.max_delay)

    def test_from_env_with_service_equals_for_service(self) -> None:
        """from_env(service) starts from the same per-service defaults as for_service."""
        env = {"LLMRL_OPENAI_MAX_RETRIES": "5"}

        assert RetryPolicy.for_service("openai", environ=env) == RetryPolicy.from_env(
            "openai", environ=env
        )


class TestEnvironment:
    def test_global_variables(self) -> None:
        """Every global LLMRL_ variable overrides its setting."""
        env = {
            "LLMRL_MAX_RETRIES": "5",
            "LLMRL_BASE_DELAY": "0.5",
            "LLMRL_MAX_DELAY": "20",
            "LLMRL_JITTER": "off",
            "LLMRL_DEADLINE": "90",
            "LLMRL_ATTEMPT_TIMEOUT": "30",
            "LLMRL_RETRY_ON": "rate_limit,timeout",
            "LLMRL_RESPECT_RETRY_AFTER": "no",
            "LLMRL_MAX_RETRY_AFTER": "15",
        }

        policy = RetryPolicy.from_env(environ=env)

        assert (
            RetryPolicy(
                max_retries=5,
                base_delay=0.5,
                max_delay=20.0,
                jitter=False,
                deadline=90.0,
                attempt_timeout=30.0,
                retry_on=frozenset({RetryErrorType.RATE_LIMIT, RetryErrorType.TIMEOUT}),
                respect_retry_after=False,
                max_retry_after=15.0,
            )
            == policy
        )

    def test_service_variables_win_over_global(self) -> None:
        """LLMRL_<SERVICE>_X wins over LLMRL_X; the service's defaults fill the rest."""
        env = {
            "LLMRL_MAX_RETRIES": "7",
            "LLMRL_OPENAI_MAX_RETRIES": "1",
            "LLMRL_DEADLINE": "50",
            "LLMRL_MOONSHOT_DEADLINE": "5",
        }

        openai = RetryPolicy.for_service("openai", environ=env)
        moonshot = RetryPolicy.for_service("moonshot", environ=env)

        assert (1, 2.0, 50.0) == (openai.max_retries, openai.base_delay, openai.deadline)
        assert (7, 1.0, 5.0) == (moonshot.max_retries, moonshot.base_delay, moonshot.deadline)

    @pytest.mark.parametrize("raw", ["1", "true", "YES", " on "])
    def test_true_values(self, raw: str) -> None:
        """Boolean variables accept 1, true, yes and on, in any case."""
        env = {"LLMRL_JITTER": "0", "LLMRL_OPENAI_JITTER": raw}

        assert True is RetryPolicy.for_service("openai", environ=env).jitter

    def test_service_name_is_normalised(self) -> None:
        """A service named "my-llm" reads LLMRL_MY_LLM_* variables."""
        policy = RetryPolicy.for_service("my-llm", environ={"LLMRL_MY_LLM_MAX_RETRIES": "9"})

        assert 9 == policy.max_retries

    def test_from_env_without_service_ignores_service_variables(self) -> None:
        """Without a service, only global variables are read."""
        policy = RetryPolicy.from_env(environ={"LLMRL_OPENAI_MAX_RETRIES": "9"})

        assert 3 == policy.max_retries

    def test_none_clears_the_deadline(self) -> None:
        """LLMRL_<SERVICE>_DEADLINE=none removes a global deadline for that service."""
        env = {"LLMRL_DEADLINE": "30", "LLMRL_OPENAI_DEADLINE": "none"}

        assert RetryPolicy.for_service("openai", environ=env).deadline is None

    def test_budget_variables_enable_the_budget(self) -> None:
        """Any LLMRL_RETRY_BUDGET_* variable turns the budget on; the others keep defaults."""
        env = {"LLMRL_RETRY_BUDGET_RATIO": "0.1", "LLMRL_OPENAI_RETRY_BUDGET_WINDOW": "30"}

        policy = RetryPolicy.for_service("openai", environ=env)

        assert RetryBudget(ratio=0.1, min_retries_per_second=1.0, window=30.0) == policy.budget

    @pytest.mark.parametrize(
        ("env", "variable"),
        [
            ({"LLMRL_MAX_RETRIES": "three"}, "LLMRL_MAX_RETRIES"),
            ({"LLMRL_OPENAI_MAX_RETRIES": "2.5"}, "LLMRL_OPENAI_MAX_RETRIES"),
            ({"LLMRL_OPENAI_MAX_RETRIES": "-1"}, "LLMRL_OPENAI_MAX_RETRIES"),
            ({"LLMRL_BASE_DELAY": "1s"}, "LLMRL_BASE_DELAY"),
            ({"LLMRL_MAX_DELAY": "inf"}, "LLMRL_MAX_DELAY"),
            ({"LLMRL_OPENAI_BASE_DELAY": "100"}, "LLMRL_OPENAI_BASE_DELAY"),
            ({"LLMRL_DEADLINE": "-5"}, "LLMRL_DEADLINE"),
            ({"LLMRL_JITTER": "maybe"}, "LLMRL_JITTER"),
            ({"LLMRL_RETRY_ON": "rate_limit,typo"}, "LLMRL_RETRY_ON"),
            ({"LLMRL_RETRY_BUDGET_WINDOW": "0"}, "LLMRL_RETRY_BUDGET_WINDOW"),
            ({"LLMRL_RETRY_BUDGET_RATIO": "x"}, "LLMRL_RETRY_BUDGET_RATIO"),
        ],
    )
    def test_malformed_values_name_the_variable(self, env: dict[str, str], variable: str) -> None:
        """A malformed or rejected value raises ConfigurationError naming the variable."""
        with pytest.raises(ConfigurationError) as info:
            RetryPolicy.for_service("openai", environ=env)

        assert variable == info.value.setting

    def test_reads_os_environ_by_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without environ= the process environment is read."""
        monkeypatch.setenv("LLMRL_MOONSHOT_MAX_DELAY", "12")

        assert 12.0 == RetryPolicy.for_service("moonshot").max_delay
