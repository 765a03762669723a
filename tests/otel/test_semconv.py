# SPDX-License-Identifier: MIT
"""``gen_ai.provider.name`` and ``server.*`` from a provider's settings."""

from __future__ import annotations

import pytest

from llm_rate_limiter.otel._semconv import provider_name, server_address


@pytest.mark.parametrize(
    ("name", "base_url", "expected"),
    [
        ("primary", None, "openai"),
        ("mine", "https://api.openai.com/v1", "openai"),
        ("ds", "https://api.deepseek.com/v1", "deepseek"),
        ("az", "https://team.openai.azure.com/openai/v1", "azure.ai.openai"),
        ("gemini", "https://generativelanguage.googleapis.com/v1beta/openai", "gcp.gemini"),
        ("moonshot", "https://api.moonshot.ai/v1", "moonshot"),
        ("openai", "http://127.0.0.1:8000/v1", "openai"),
    ],
)
def test_provider_name(name: str, base_url: str | None, expected: str) -> None:
    """The conventions' value where the host has one, else the configured name."""
    assert expected == provider_name(name, base_url)


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, ("api.openai.com", 443)),
        ("https://api.moonshot.ai/v1", ("api.moonshot.ai", 443)),
        ("http://127.0.0.1:8123/v1", ("127.0.0.1", 8123)),
        ("http://localhost/v1", ("localhost", 80)),
    ],
)
def test_server_address(base_url: str | None, expected: tuple[str, int]) -> None:
    """Host and port, the scheme's default port when the URL names none."""
    assert expected == server_address(base_url)
