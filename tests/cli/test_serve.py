# SPDX-License-Identifier: MIT
"""``llm-rate-limiter serve-mock``: the fault server as a process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator

import openai
import pytest

from llm_rate_limiter.cli import build_parser, main


@pytest.fixture
def serve_mock() -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    """Start ``serve-mock`` subprocesses; kill any still running at the end."""
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        command = [sys.executable, "-m", "llm_rate_limiter.cli", "serve-mock", "--port", "0"]
        process = subprocess.Popen(
            [*command, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        return process, process.stdout.readline().strip()

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


class TestServeMockProcess:
    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
    def test_serves_and_stops_on_signal(self, serve_mock, sig):
        """The first stdout line is the base URL; the SDK gets limits; a signal exits 0."""
        process, base_url = serve_mock("--rpm", "120", "--completion-tokens", "3")
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
            raw = client.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
        assert ("120", "1") == (
            raw.headers["x-ratelimit-limit-requests"],
            raw.headers["x-ratelimit-remaining-requests"],
        )
        usage = raw.parse().usage
        assert usage is not None
        assert 3 == usage.completion_tokens
        root = base_url.removesuffix("/v1")
        with urllib.request.urlopen(f"{root}/_stats", timeout=10) as response:
            assert 1 == json.loads(response.read())["succeeded"]
        process.send_signal(sig)
        assert 0 == process.wait(timeout=10)

    def test_faults_from_flags(self, serve_mock):
        """--error-500-rate 1 makes every request a 500."""
        process, base_url = serve_mock("--error-500-rate", "1", "--seed", "1")
        with (
            openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client,
            pytest.raises(openai.InternalServerError) as caught,
        ):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert 500 == caught.value.status_code
        process.terminate()
        assert 0 == process.wait(timeout=10)


class TestServeMockArguments:
    def test_bad_setting_exits_2(self, capsys):
        """An impossible setting prints the setting's name and exits 2 without serving."""
        assert 2 == main(["serve-mock", "--rpm", "-1"])
        assert "rpm: must be > 0" in capsys.readouterr().err

    def test_bad_outage_exits_2(self, capsys):
        """An outage that is not START:DURATION exits 2."""
        assert 2 == main(["serve-mock", "--outage", "soon"])
        assert "START:DURATION" in capsys.readouterr().err

    def test_flags_map_to_settings(self):
        """Every flag lands on the FaultConfig field of the same meaning."""
        from llm_rate_limiter.cli._serve import _config

        args = build_parser().parse_args(
            [
                "serve-mock",
                "--tpm",
                "9000",
                "--concurrency",
                "4",
                "--latency",
                "0.5",
                "--drop-rate",
                "0.1",
                "--dialect",
                "moonshot",
                "--outage",
                "5:2.5",
                "--insufficient-quota",
            ]
        )
        config = _config(args)
        assert (9000.0, 4, 0.5, 0.1, "moonshot", ((5.0, 2.5),), True) == (
            config.tpm,
            config.max_concurrency,
            config.latency,
            config.drop_rate,
            config.dialect,
            config.outages,
            config.insufficient_quota,
        )

    def test_subcommand_required(self):
        """Without a subcommand the parser exits with usage error 2."""
        with pytest.raises(SystemExit) as caught:
            main([])
        assert 2 == caught.value.code
