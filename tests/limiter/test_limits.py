# SPDX-License-Identifier: MIT
"""`RateLimits`: validation and configuration from the environment."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from llm_rate_limiter.exceptions import ConfigurationError
from llm_rate_limiter.limiter import RateLimits


class TestValidation:
    @pytest.mark.parametrize(
        ("setting", "value"),
        [
            ("requests_per_minute", 0),
            ("requests_per_minute", -5),
            ("requests_per_minute", math.nan),
            ("requests_per_minute", math.inf),
            ("tokens_per_minute", 0.0),
            ("tokens_per_minute", math.nan),
            ("tokens_per_day", -1),
            ("tokens_per_day", math.inf),
            ("max_concurrency", 0),
            ("max_concurrency", 1.5),
            ("burst", 0.0),
            ("burst", math.nan),
            ("max_wait", -1.0),
            ("max_wait", math.inf),
            ("completion_tokens", -1),
        ],
    )
    def test_bad_setting_named(self, setting, value):
        """An impossible value raises ConfigurationError naming the setting."""
        with pytest.raises(ConfigurationError) as info:
            RateLimits(**{setting: value})
        assert setting == info.value.setting
        assert str(info.value).startswith(f"{setting}: ")

    def test_defaults(self):
        """No limits, 0.95 s of burst, a 256-token completion allowance."""
        limits = RateLimits()
        assert (None, None, None, None, 0.95, None, 256) == (
            limits.requests_per_minute,
            limits.tokens_per_minute,
            limits.tokens_per_day,
            limits.max_concurrency,
            limits.burst,
            limits.max_wait,
            limits.completion_tokens,
        )

    def test_max_wait_timedelta(self):
        """max_wait accepts a timedelta, stored as float seconds."""
        assert 2.5 == RateLimits(max_wait=timedelta(seconds=2.5)).max_wait  # type: ignore[arg-type]

    def test_max_request_tokens(self):
        """The largest request is the smaller of the per-minute and per-day token limits."""
        assert math.inf == RateLimits().max_request_tokens
        assert 500.0 == RateLimits(tokens_per_minute=1_000, tokens_per_day=500).max_request_tokens


ENV = {
    "LLMRL_RPM": "600",
    "LLMRL_TPM": "90000",
    "LLMRL_MAX_CONCURRENCY": "4",
    "LLMRL_MAX_WAIT": "2.5",
    "LLMRL_OPENAI_RPM": "500",
    "LLMRL_MY_PROVIDER_TPD": "1000000",
}


class TestFromEnv:
    def test_defaults_and_service_override(self):
        """LLMRL_<SERVICE>_* overrides LLMRL_* for that service only."""
        openai = RateLimits.from_env("openai", environ=ENV)
        moonshot = RateLimits.from_env("moonshot", environ=ENV)
        assert (500.0, 90_000.0, 4, 2.5) == (
            openai.requests_per_minute,
            openai.tokens_per_minute,
            openai.max_concurrency,
            openai.max_wait,
        )
        assert 600.0 == moonshot.requests_per_minute

    def test_service_name_normalised(self):
        """A service named my-provider reads LLMRL_MY_PROVIDER_*."""
        assert 1_000_000.0 == RateLimits.from_env("my-provider", environ=ENV).tokens_per_day

    def test_empty_environment(self):
        """No variables give the defaults."""
        assert RateLimits() == RateLimits.from_env(environ={})

    def test_not_a_number(self):
        """A non-number names the variable."""
        with pytest.raises(ConfigurationError) as info:
            RateLimits.from_env(environ={"LLMRL_RPM": "fast"})
        assert "LLMRL_RPM" == info.value.setting

    def test_impossible_value(self):
        """An impossible number names the setting."""
        with pytest.raises(ConfigurationError) as info:
            RateLimits.from_env(environ={"LLMRL_MAX_CONCURRENCY": "0"})
        assert "max_concurrency" == info.value.setting

    def test_reads_os_environ(self, monkeypatch):
        """Without environ= the process environment is read."""
        monkeypatch.setenv("LLMRL_TPD", "123")
        assert 123.0 == RateLimits.from_env().tokens_per_day
