# SPDX-License-Identifier: MIT
"""The first hour with the seed functions: a missing setting is named, with what to do."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionUserMessageParam

import llm_rate_limiter as llmrl
from llm_rate_limiter import AsyncLLMClient, ConfigurationError, ProviderConfig
from llm_rate_limiter.client._providers import add_base_url_hint, missing_key_hint
from llm_rate_limiter.testing import FaultServer

pytestmark = pytest.mark.anyio

MESSAGES: list[ChatCompletionUserMessageParam] = [{"role": "user", "content": "hi"}]
ChatFunction = Callable[..., Awaitable[Any]]
KEY_VARIABLES = ("OPENAI_API_KEY", "MOONSHOT_API_KEY")


@pytest.fixture
def fresh_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No provider key in the environment, and no default client: the next one is built from env."""
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    llmrl.set_default_client(None)
    yield monkeypatch
    llmrl.set_default_client(None)


async def close_default() -> None:
    """Close the default client the seed functions built from the environment."""
    await llmrl.get_default_client().aclose()


@pytest.mark.parametrize(
    ("function", "variable"),
    [
        (llmrl.openai_chat_limited, "OPENAI_API_KEY"),
        (llmrl.moonshot_chat_limited, "MOONSHOT_API_KEY"),
    ],
)
async def test_no_key_at_all(
    fresh_env: pytest.MonkeyPatch, function: ChatFunction, variable: str
) -> None:
    """With no key in the environment, each chat function names its own key variable."""
    with pytest.raises(ConfigurationError) as caught:
        await function(MESSAGES)
    assert variable == caught.value.setting
    assert f"{function.__name__}() needs the " in str(caught.value)
    assert f"set {variable} in the environment" in str(caught.value)


@pytest.mark.parametrize(
    ("function", "variable", "other"),
    [
        (llmrl.openai_chat_limited, "OPENAI_API_KEY", "MOONSHOT_API_KEY"),
        (llmrl.moonshot_chat_limited, "MOONSHOT_API_KEY", "OPENAI_API_KEY"),
    ],
)
async def test_only_the_other_key(
    fresh_env: pytest.MonkeyPatch, function: ChatFunction, variable: str, other: str
) -> None:
    """With only the other provider's key set, the chat function names its missing variable."""
    fresh_env.setenv(other, "sk-other")
    try:
        with pytest.raises(ConfigurationError) as caught:
            await function(MESSAGES)
    finally:
        await close_default()
    assert variable == caught.value.setting
    assert "which the default client does not have" in str(caught.value)
    assert f"set {variable} in the environment" in str(caught.value)
    assert "sk-other" not in str(caught.value)


def test_start_monitoring_outside_a_loop(fresh_env: pytest.MonkeyPatch) -> None:
    """start_monitoring() from synchronous code raises a RuntimeError saying it needs a loop."""
    client = AsyncLLMClient([ProviderConfig.openai(api_key="sk-test", environ={})])
    llmrl.set_default_client(client)
    try:
        with pytest.raises(RuntimeError) as caught:
            llmrl.start_monitoring(interval=60)
    finally:
        asyncio.run(client.aclose())
    assert str(caught.value).startswith("start_monitoring() needs a running asyncio event loop")
    assert "asyncio.run()" in str(caught.value)


@pytest.mark.parametrize(
    ("provider", "hint"),
    [
        ("openai", "set OPENAI_API_KEY in the environment or pass api_key="),
        ("moonshot", "set MOONSHOT_API_KEY in the environment or pass api_key="),
        ("local", "pass api_key= to its ProviderConfig"),
    ],
)
def test_missing_key_hint(provider: str, hint: str) -> None:
    """The missing-key hint names the profile's environment variable, where it reads one."""
    assert hint == missing_key_hint(provider)


async def not_found(base_url: str) -> openai.NotFoundError:
    """The SDK's own 404 error, from a chat call to *base_url*."""
    async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as sdk:
        with pytest.raises(openai.NotFoundError) as caught:
            await sdk.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    return caught.value


class TestBaseUrlHint:
    async def test_404_without_v1_gets_a_note(self) -> None:
        """A 404 from a base_url with no version segment gets one note suggesting /v1."""
        async with FaultServer() as server:
            root = server.url
            exc = await not_found(root)
        add_base_url_hint(exc, root)
        add_base_url_hint(exc, root)
        assert [
            f"llm_rate_limiter: 404 from base_url {root!r}, whose path has no version; "
            f"OpenAI-compatible APIs usually live under /v1: try base_url='{root}/v1'"
        ] == exc.__notes__

    async def test_404_with_a_version_gets_none(self) -> None:
        """A 404 from a base_url that has a version segment (here v1) gets no note."""
        async with FaultServer() as server:
            base_url = f"{server.base_url}/wrong"
            exc = await not_found(base_url)
        add_base_url_hint(exc, base_url)
        assert [] == getattr(exc, "__notes__", [])

    async def test_note_hides_credentials(self) -> None:
        """The note shows scheme, host and path only, never user:password or a query."""
        async with FaultServer() as server:
            root = server.url
            base_url = root.replace("http://", "http://user:s3cret@") + "/api?key=s3cret"
            exc = await not_found(base_url)
        add_base_url_hint(exc, base_url)
        assert 1 == len(exc.__notes__)
        assert f"try base_url='{root}/api/v1'" in exc.__notes__[0]
        assert "s3cret" not in exc.__notes__[0]

    def test_model_not_found_gets_none(self) -> None:
        """A 404 whose code is model_not_found reached the API: no /v1 note."""
        request = httpx2.Request("POST", "http://127.0.0.1:9/chat/completions")
        exc = openai.NotFoundError(
            "model not found",
            response=httpx2.Response(404, request=request),
            body={"code": "model_not_found", "message": "model not found"},
        )
        add_base_url_hint(exc, "http://127.0.0.1:9")
        assert [] == getattr(exc, "__notes__", [])


class TestBaseUrlHintThroughTheClient:
    async def test_chat_against_a_base_url_without_v1_says_so(self) -> None:
        """AsyncLLMClient.chat on a server root answers 404 with a note suggesting /v1."""
        async with FaultServer() as server:
            root = server.url
            config = ProviderConfig.compatible("local", root, api_key="k", model="m")
            async with AsyncLLMClient([config]) as client:
                with pytest.raises(openai.NotFoundError) as caught:
                    await client.chat([{"role": "user", "content": "hi"}])
        assert any(f"try base_url='{root}/v1'" in n for n in caught.value.__notes__)


def test_client_start_monitoring_outside_a_loop() -> None:
    """AsyncLLMClient.start_monitoring() from synchronous code says it needs a running loop."""
    client = AsyncLLMClient([ProviderConfig.openai(api_key="sk-test", environ={})])
    try:
        with pytest.raises(RuntimeError, match="needs a running asyncio event loop"):
            client.start_monitoring(interval=60)
    finally:
        asyncio.run(client.aclose())
