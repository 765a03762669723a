# SPDX-License-Identifier: MIT
"""``llm-rate-limiter demo --otel console``: the demo's spans and metrics on stderr."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path

import pytest

from llm_rate_limiter.cli import main
from llm_rate_limiter.cli._main import _OTEL, otel_instrument


def _objects(text: str) -> list[dict[str, object]]:
    """The JSON objects the console exporters printed, one after another."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := text.find("{", at)) != -1:
        try:
            obj, at = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            at = start + 1
            continue
        found.append(obj)
    return found


@pytest.mark.timeout(120)
def test_demo_prints_spans_and_metrics(tmp_path: Path) -> None:
    """The demo's calls come out as ``chat`` CLIENT spans and GenAI metrics, flushed at its end."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["demo", "--duration", "6", "--concurrency", "4", "--output", str(tmp_path)]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--otel", "console"])
    assert 0 == code, err.getvalue()[-2000:]
    assert {} == _OTEL  # the providers are gone with the run
    objects = _objects(err.getvalue())
    chats = [o for o in objects if str(o.get("name", "")).startswith("chat ")]
    report = json.loads((tmp_path / "demo-report.json").read_text())
    assert sum(report["calls"]["served_by"].values()) <= len(chats)
    assert {"SpanKind.CLIENT"} == {c["kind"] for c in chats}
    assert any(o.get("name") == "llm_rate_limiter.attempt" for o in objects)
    names = set(re.findall(r'"name": "([a-z_.]+)"', err.getvalue()))
    assert {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"} <= names
    assert "llm_rate_limiter.fallbacks" in names  # the demo's outage moves calls to the fallback


def test_without_the_flag_nothing_is_instrumented() -> None:
    """Outside ``--otel`` the demo's hook leaves the client as it is."""

    class Client:
        pass

    client = Client()
    otel_instrument(client)  # no providers: not even an instrument() call (it would refuse)
    assert {} == vars(client)


def test_missing_sdk_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Without opentelemetry-sdk ``--otel console`` fails at once with the install command."""
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.metrics", None)
    argv = ["demo", "--duration", "6", "--output", str(tmp_path), "--otel", "console"]
    assert 1 == main(argv)
    err = capsys.readouterr().err
    assert "--otel needs opentelemetry.sdk.metrics" in err
    assert "pip install 'llm-rate-limiter[otel]' opentelemetry-sdk" in err
    assert [] == list(tmp_path.iterdir())  # the demo did not run
