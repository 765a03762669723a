# SPDX-License-Identifier: MIT
"""Tests of `BreakerPolicy`: defaults, validation naming the setting, and from_env."""

from __future__ import annotations

from datetime import timedelta

import pytest

from llm_rate_limiter._errors import RetryErrorType
from llm_rate_limiter.breaker._policy import DEFAULT_EXCLUDED, BreakerPolicy
from llm_rate_limiter.exceptions import ConfigurationError


class TestDefaults:
    def test_defaults(self):
        """The defaults follow pybreaker and exclude rate-limit, auth and permanent errors."""
        policy = BreakerPolicy()
        assert (5, 30.0, 1, 1, None, 100, 10) == (
            policy.fail_max,
            policy.reset_timeout,
            policy.success_threshold,
            policy.half_open_max_calls,
            policy.failure_rate_threshold,
            policy.window_size,
            policy.minimum_calls,
        )
        assert (
            {
                RetryErrorType.RATE_LIMIT,
                RetryErrorType.AUTHENTICATION,
                RetryErrorType.PERMANENT,
            }
            == DEFAULT_EXCLUDED
            == policy.excluded
        )

    def test_timedelta_becomes_seconds(self):
        """Durations given as timedelta are stored as float seconds."""
        policy = BreakerPolicy(
            reset_timeout=timedelta(minutes=1),  # type: ignore[arg-type]
            slow_call_duration=timedelta(milliseconds=1500),  # type: ignore[arg-type]
            window_seconds=timedelta(seconds=20),  # type: ignore[arg-type]
        )
        assert (60.0, 1.5, 20.0) == (
            policy.reset_timeout,
            policy.slow_call_duration,
            policy.window_seconds,
        )

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("rate_limit", {RetryErrorType.RATE_LIMIT}),
            ("RATE_LIMIT, timeout", {RetryErrorType.RATE_LIMIT, RetryErrorType.TIMEOUT}),
            (
                ["permanent", RetryErrorType.UNKNOWN],
                {RetryErrorType.PERMANENT, RetryErrorType.UNKNOWN},
            ),
            ((), set()),
            ("", set()),
        ],
    )
    def test_excluded_accepts_names_and_iterables(self, value, expected):
        """excluded accepts kinds, their values in any case, comma lists and iterables."""
        assert frozenset(expected) == BreakerPolicy(excluded=value).excluded


class TestValidation:
    @pytest.mark.parametrize(
        ("setting", "value"),
        [
            ("fail_max", 0),
            ("fail_max", 2.5),
            ("reset_timeout", -1.0),
            ("reset_timeout", float("nan")),
            ("success_threshold", 0),
            ("half_open_max_calls", 0),
            ("failure_rate_threshold", 0.0),
            ("failure_rate_threshold", 1.5),
            ("slow_call_duration", 0.0),
            ("slow_call_duration", -2.0),
            ("window_size", 0),
            ("window_seconds", 0.0),
            ("minimum_calls", 0),
            ("excluded", ["no_such_kind"]),
            ("excluded", 42),
            ("excluded", [42]),
        ],
    )
    def test_bad_setting_is_named(self, setting, value):
        """An impossible setting raises ConfigurationError naming it."""
        with pytest.raises(ConfigurationError) as info:
            BreakerPolicy(**{setting: value})
        assert setting == info.value.setting

    def test_slow_rate_needs_a_duration(self):
        """A slow-call rate threshold without slow_call_duration is refused."""
        with pytest.raises(ConfigurationError) as info:
            BreakerPolicy(slow_call_rate_threshold=0.5)
        assert "slow_call_rate_threshold" == info.value.setting

    def test_slow_rate_outside_unit_interval(self):
        """A slow-call rate threshold above 1 is refused."""
        with pytest.raises(ConfigurationError) as info:
            BreakerPolicy(slow_call_duration=1.0, slow_call_rate_threshold=1.01)
        assert "slow_call_rate_threshold" == info.value.setting

    def test_minimum_calls_above_count_window(self):
        """minimum_calls larger than a count window could never trip, so it is refused."""
        with pytest.raises(ConfigurationError) as info:
            BreakerPolicy(window_size=5, minimum_calls=6)
        assert "minimum_calls" == info.value.setting

    def test_minimum_calls_above_size_is_fine_with_time_window(self):
        """With a time window, window_size does not bound minimum_calls."""
        assert 500 == BreakerPolicy(window_seconds=60.0, minimum_calls=500).minimum_calls

    def test_zero_reset_timeout_is_allowed(self):
        """A zero reset_timeout is possible: trial calls are allowed at once."""
        assert 0.0 == BreakerPolicy(reset_timeout=0).reset_timeout


class TestFromEnv:
    def test_empty_environment_gives_defaults(self):
        """Without variables from_env returns the default policy."""
        assert BreakerPolicy() == BreakerPolicy.from_env(environ={})

    def test_general_variables(self):
        """LLMRL_BREAKER_* set the fields, with none unsetting optional ones."""
        env = {
            "LLMRL_BREAKER_FAIL_MAX": "7",
            "LLMRL_BREAKER_RESET_TIMEOUT": "2.5",
            "LLMRL_BREAKER_HALF_OPEN_MAX_CALLS": "3",
            "LLMRL_BREAKER_FAILURE_RATE_THRESHOLD": "0.4",
            "LLMRL_BREAKER_WINDOW_SECONDS": "none",
            "LLMRL_BREAKER_EXCLUDED": "rate_limit",
        }
        policy = BreakerPolicy.from_env(environ=env)
        assert (7, 2.5, 3, 0.4, None, frozenset({RetryErrorType.RATE_LIMIT})) == (
            policy.fail_max,
            policy.reset_timeout,
            policy.half_open_max_calls,
            policy.failure_rate_threshold,
            policy.window_seconds,
            policy.excluded,
        )

    def test_service_variables_win(self):
        """LLMRL_<SERVICE>_BREAKER_* override the general variables for that service."""
        env = {
            "LLMRL_BREAKER_FAIL_MAX": "7",
            "LLMRL_BREAKER_MINIMUM_CALLS": "20",
            "LLMRL_MOON_SHOT_BREAKER_FAIL_MAX": "2",
        }
        policy = BreakerPolicy.from_env("moon-shot", environ=env)
        other = BreakerPolicy.from_env("openai", environ=env)
        assert (2, 20, 7) == (policy.fail_max, policy.minimum_calls, other.fail_max)

    def test_reads_os_environ(self, monkeypatch):
        """Without environ= the process environment is read."""
        monkeypatch.setenv("LLMRL_BREAKER_SUCCESS_THRESHOLD", "4")
        assert 4 == BreakerPolicy.from_env().success_threshold

    def test_bad_number_names_the_variable(self):
        """A value that is not a number raises ConfigurationError naming the variable."""
        with pytest.raises(ConfigurationError) as info:
            BreakerPolicy.from_env("openai", environ={"LLMRL_OPENAI_BREAKER_FAIL_MAX": "many"})
        assert "LLMRL_OPENAI_BREAKER_FAIL_MAX" == info.value.setting

    def test_impossible_value_names_the_setting(self):
        """A number that is out of range raises ConfigurationError naming the setting."""
        with pytest.raises(ConfigurationError) as info:
            BreakerPolicy.from_env(environ={"LLMRL_BREAKER_RESET_TIMEOUT": "-3"})
        assert "reset_timeout" == info.value.setting
