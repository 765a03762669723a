# SPDX-License-Identifier: MIT
"""ProviderConfig and its built-in profiles."""

from __future__ import annotations

import pytest

from llm_rate_limiter import ConfigurationError, ProviderConfig, RateLimits
from llm_rate_limiter.client._providers import MOONSHOT_BASE_URL, OPENAI_BASE_URL


class TestProfiles:
    def test_openai_defaults(self) -> None:
        """The openai profile has the seed's retry defaults and OpenAI's tier-1 limits."""
        config = ProviderConfig.openai(api_key="sk-x", environ={})
        retry = config.retry
        assert (OPENAI_BASE_URL, "gpt-4o-mini") == (config.base_url, config.model)
        assert (2, 2.0, 45.0) == (retry.max_retries, retry.base_delay, retry.max_delay)
        assert RateLimits(requests_per_minute=500, tokens_per_minute=200_000) == config.limits

    def test_moonshot_defaults(self) -> None:
        """The moonshot profile has the seed's retry defaults and a concurrency limit."""
        config = ProviderConfig.moonshot(api_key="sk-y", environ={})
        retry = config.retry
        assert (MOONSHOT_BASE_URL, "moonshot-v1-8k") == (config.base_url, config.model)
        assert (3, 1.0, 30.0) == (retry.max_retries, retry.base_delay, retry.max_delay)
        assert config.limits is not None
        assert 50 == config.limits.max_concurrency

    def test_environment_applies_on_top(self) -> None:
        """Keys, URLs, models and LLMRL_* settings come from the environment; overrides win."""
        env = {
            "OPENAI_API_KEY": "sk-env",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "LLMRL_OPENAI_MODEL": "gpt-x",
            "LLMRL_OPENAI_RPM": "100",
            "LLMRL_MAX_RETRIES": "7",
        }
        config = ProviderConfig.openai(environ=env, timeout=5.0)
        assert ("sk-env", "http://127.0.0.1:9/v1", "gpt-x", 5.0) == (
            config.api_key,
            config.base_url,
            config.model,
            config.timeout,
        )
        assert config.limits is not None
        assert (100, 200_000) == (
            config.limits.requests_per_minute,
            config.limits.tokens_per_minute,
        )
        assert 7 == config.retry.max_retries  # a global variable beats the seed default

    def test_compatible(self) -> None:
        """Any OpenAI-compatible endpoint: no limits unless configured."""
        config = ProviderConfig.compatible("local", "http://127.0.0.1:8000/v1", "k", environ={})
        assert ("local", None, None) == (config.name, config.limits, config.model)


class TestValidation:
    @pytest.mark.parametrize(
        ("changes", "setting"),
        [
            ({"name": ""}, "name"),
            ({"base_url": "ftp://x"}, "base_url"),
            ({"timeout": 0}, "timeout"),
            ({"timeout": float("nan")}, "timeout"),
        ],
    )
    def test_bad_settings_are_named(self, changes: dict[str, object], setting: str) -> None:
        """An impossible setting raises ConfigurationError naming it."""
        values: dict[str, object] = {"name": "p", "api_key": "k", **changes}
        with pytest.raises(ConfigurationError) as caught:
            ProviderConfig(**values)  # type: ignore[arg-type]
        assert setting == caught.value.setting

    def test_key_redacted(self) -> None:
        """repr and str never show the API key."""
        config = ProviderConfig(name="p", api_key="sk-very-secret-key")
        assert "sk-very-secret-key" not in repr(config)
        assert "sk-very-secret-key" not in str(config)
        assert "'***'" in repr(config)
