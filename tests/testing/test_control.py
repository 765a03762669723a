# SPDX-License-Identifier: MIT
"""Control and observation of the fault server: /_control, /_stats, /_reset, the fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llm_rate_limiter.exceptions import ConfigurationError
from llm_rate_limiter.testing import FakeClock, FaultConfig, FaultServer

pytestmark = pytest.mark.anyio

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[FaultServer]:
    """A fault server on the fake clock."""
    async with FaultServer(FaultConfig(seed=3), clock=clock) as running:
        yield running


@pytest.fixture
async def http(server: FaultServer) -> AsyncIterator[httpx2.AsyncClient]:
    """A raw HTTP client for the server's root URL."""
    async with httpx2.AsyncClient(base_url=server.url) as client:
        yield client


@pytest.fixture
async def sdk(server: FaultServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """The real SDK pointed at the server."""
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="sk-test", max_retries=0
    ) as client:
        yield client


class TestControlValidation:
    @pytest.mark.parametrize(
        ("document", "param"),
        [
            ({"no_such_setting": 1}, "no_such_setting"),
            ({"rpm": "fast"}, "rpm"),
            ({"rpm": True}, "rpm"),
            ({"rpm": -5}, "rpm"),
            ({"error_500_rate": 2}, "error_500_rate"),
            ({"error_500_rate": 0.7, "error_503_rate": 0.7}, "error_rates"),
            ({"max_concurrency": 1.5}, "max_concurrency"),
            ({"unauthorized": "yes"}, "unauthorized"),
            ({"dialect": "klingon"}, "dialect"),
            ({"outages": [[1, 2, 3]]}, "outages"),
            ({"outages": "soon"}, "outages"),
            ({"latency": None}, "latency"),
            ({"outage_seconds": "ten"}, "outage_seconds"),
            ({"outage_seconds": -1}, "outage_seconds"),
            ([1, 2], None),
        ],
    )
    async def test_bad_document_is_400(self, server, http, document, param):
        """A bad field gets 400 naming it, and changes nothing."""
        before = server.config
        response = await http.post("/_control", json=document)
        assert 400 == response.status_code
        assert param == response.json()["error"]["param"]
        assert before == server.config

    async def test_invalid_json_is_400(self, http):
        """A body that is not JSON gets 400."""
        response = await http.post("/_control", content=b"{nope")
        assert (400, None) == (response.status_code, response.json()["error"]["param"])

    async def test_change_takes_effect(self, server, http, sdk):
        """A valid change returns the new settings and the next request obeys it."""
        response = await http.post("/_control", json={"error_502_rate": 1.0, "rpm": 600})
        assert 200 == response.status_code
        assert (1.0, 600.0) == (
            response.json()["config"]["error_502_rate"],
            response.json()["config"]["rpm"],
        )
        with pytest.raises(openai.InternalServerError) as caught:
            await sdk.chat.completions.create(model="m", messages=MESSAGES)
        assert 502 == caught.value.status_code

    async def test_outage_seconds(self, server, http, sdk, clock):
        """outage_seconds starts an outage now, over HTTP."""
        response = await http.post("/_control", json={"outage_seconds": 2, "outages": [[50, 1]]})
        assert 200 == response.status_code
        assert ((50.0, 1.0),) == server.config.outages
        with pytest.raises(openai.InternalServerError):
            await sdk.chat.completions.create(model="m", messages=MESSAGES)
        clock.advance(2)
        reply = await sdk.chat.completions.create(model="m", messages=MESSAGES)
        assert "stop" == reply.choices[0].finish_reason

    async def test_set_faults_validates(self, server):
        """set_faults raises ConfigurationError naming the field and keeps the old settings."""
        with pytest.raises(ConfigurationError) as caught:
            server.set_faults(drop_rate=3)
        assert "drop_rate" == caught.value.setting
        assert 0.0 == server.config.drop_rate


class TestLatency:
    async def test_latency_sleeps_on_the_clock(self, server, sdk, clock):
        """Each reply waits latency plus seeded jitter, through the server's clock."""
        server.set_faults(latency=timedelta(seconds=2), latency_jitter=1.0)
        for _ in range(3):
            await sdk.chat.completions.create(model="m", messages=MESSAGES)
        first = list(clock.sleeps)
        server.reset()
        clock.sleeps.clear()
        for _ in range(3):
            await sdk.chat.completions.create(model="m", messages=MESSAGES)
        assert 3 == len(first)
        assert all(2.0 <= s < 3.0 for s in first)
        assert 3 == len(set(first))
        assert first == clock.sleeps

    async def test_outage_takes_timedelta(self, server, sdk, clock):
        """outage() accepts a timedelta."""
        server.outage(timedelta(seconds=3))
        with pytest.raises(openai.InternalServerError):
            await sdk.chat.completions.create(model="m", messages=MESSAGES)
        clock.advance(3)
        reply = await sdk.chat.completions.create(model="m", messages=MESSAGES)
        assert "stop" == reply.choices[0].finish_reason


class TestStats:
    async def test_counters_agree_with_the_client(self, server, http, sdk, clock):
        """/_stats counts exactly the outcomes the SDK saw, second by second."""
        server.set_faults(rps=2, error_500_rate=0.2, drop_rate=0.2, malformed_rate=0.1)
        seen = {"ok": 0, "429": 0, "500": 0, "drop": 0, "malformed": 0}
        for _second in range(3):
            for _ in range(6):
                try:
                    await sdk.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10)
                    seen["ok"] += 1
                except openai.RateLimitError:
                    seen["429"] += 1
                except openai.InternalServerError:
                    seen["500"] += 1
                except openai.APIConnectionError:
                    seen["drop"] += 1
                except ValueError:
                    seen["malformed"] += 1
            clock.advance(1)
        stats = (await http.get("/_stats")).json()
        assert server.stats().as_dict() == stats
        assert 18 == stats["requests"]
        assert 12 == seen["429"] == stats["rate_limited"]  # 2 of 6 admitted per second
        assert {"requests": 12} == stats["rate_limited_by_type"]
        assert 6 == stats["accepted"]
        assert seen["ok"] == stats["succeeded"]
        assert seen["500"] == stats["server_errors"]
        assert seen["drop"] == stats["drops"]
        assert seen["malformed"] == stats["malformed"]
        assert 6 * (3 + 2 + 4 + 10) == stats["tokens_accepted"]
        assert [0, 1, 2] == [row["t"] for row in stats["timeline"]]
        assert [6, 6, 6] == [row["arrivals"] for row in stats["timeline"]]
        assert [2, 2, 2] == [row["accepted"] for row in stats["timeline"]]
        assert [4, 4, 4] == [row["rate_limited"] for row in stats["timeline"]]
        errors = seen["500"] + seen["drop"] + seen["malformed"]
        assert errors == sum(row["errors"] for row in stats["timeline"])

    async def test_reset(self, server, http, sdk):
        """POST /_reset zeroes the counters and refills the buckets."""
        server.set_faults(rps=1)
        await sdk.chat.completions.create(model="m", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError):
            await sdk.chat.completions.create(model="m", messages=MESSAGES)
        response = await http.post("/_reset")
        assert 200 == response.status_code
        assert (0, []) == (server.stats().requests, server.stats().timeline)
        await sdk.chat.completions.create(model="m", messages=MESSAGES)
        assert (1, 1) == (server.stats().requests, server.stats().succeeded)

    async def test_bad_requests(self, server, http):
        """A missing key is a 401 and a body that is no chat request a 400, both counted."""
        unauthorized = await http.post("/v1/chat/completions", json={"messages": []})
        bad = await http.post(
            "/v1/chat/completions", content=b"[]", headers={"authorization": "Bearer k"}
        )
        assert (401, "invalid_api_key") == (
            unauthorized.status_code,
            unauthorized.json()["error"]["code"],
        )
        assert (400, "invalid_request_error") == (bad.status_code, bad.json()["error"]["type"])
        stats = server.stats()
        assert (2, 1, 1, 0) == (
            stats.requests,
            stats.auth_errors,
            stats.bad_requests,
            stats.accepted,
        )


class TestFixture:
    async def test_fault_server_fixture(self, fault_server):
        """The plugin's fault_server fixture is a running default server."""
        async with openai.AsyncOpenAI(
            base_url=fault_server.base_url, api_key="sk-test", max_retries=0
        ) as client:
            reply = await client.chat.completions.create(model="m", messages=MESSAGES)
        assert isinstance(fault_server, FaultServer)
        assert FaultConfig() == fault_server.config
        assert (1, "stop") == (fault_server.stats().succeeded, reply.choices[0].finish_reason)
