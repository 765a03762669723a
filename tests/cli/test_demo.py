# SPDX-License-Identifier: MIT
"""The ``demo`` command: a short real run against the embedded servers, and its parts."""

from __future__ import annotations

import contextlib
import enum
import io
import json
import math
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from llm_rate_limiter.cli import main
from llm_rate_limiter.exceptions import ConfigurationError
from llm_rate_limiter.testing import FaultConfig, FaultServer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class DemoOutput:
    """What one run of ``llm-rate-limiter demo`` produced."""

    def __init__(self, code: int, stdout: str, folder: Path) -> None:
        self.code = code
        self.stdout = stdout
        self.folder = folder
        self.report: dict[str, Any] = json.loads((folder / "demo-report.json").read_text())
        self.png = (folder / "demo-timeline.png").read_bytes()

    def phase(self, name: str) -> dict[str, Any]:
        return next(p for p in self.report["phases"] if p["name"] == name)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoOutput:
    """Run the demo once for 6 s with stdout not a terminal (a StringIO)."""
    folder = tmp_path_factory.mktemp("demo")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["demo", "--duration", "6", "--concurrency", "8", "--output", str(folder)])
    return DemoOutput(code, out.getvalue(), folder)


class TestDemoRun:
    def test_exit_code(self, demo: DemoOutput) -> None:
        """The demo ends with exit code 0."""
        assert 0 == demo.code

    def test_phases(self, demo: DemoOutput) -> None:
        """The report lists the four scripted phases, back to back over the duration."""
        phases = demo.report["phases"]
        assert ["calm", "pressure", "outage", "recovery"] == [p["name"] for p in phases]
        assert 0.0 == phases[0]["start"]
        assert 6.0 == phases[-1]["end"]
        assert [p["end"] for p in phases[:-1]] == [p["start"] for p in phases[1:]]
        assert 20.0 == demo.phase("pressure")["offered_rate"]

    def test_timeline_sampled_every_second(self, demo: DemoOutput) -> None:
        """The timeline has one row per second of load (the short tail merged), with phases."""
        timeline = demo.report["timeline"]
        # One row at each of the 6 seconds (the last one stretched over a tail under 0.5 s);
        # a 7th row only for a tail of its own of at least 0.5 s.
        assert [1, 2, 3, 4, 5, 6] == [math.floor(row["t"]) for row in timeline[:6]]
        assert 6 == len(timeline) or (7 == len(timeline) and timeline[6]["dt"] >= 0.5)
        assert {"calm", "pressure", "outage", "recovery"} == {row["phase"] for row in timeline}
        assert all(0.5 <= row["dt"] <= 2.0 for row in timeline)  # no tail row of a few ms
        assert timeline[-1]["t"] == pytest.approx(sum(row["dt"] for row in timeline), abs=0.01)

    def test_outage_opens_breaker(self, demo: DemoOutput) -> None:
        """The outage opens the primary's breaker, during the outage phase."""
        outage = demo.phase("outage")
        opened = [
            t["t"]
            for t in demo.report["breaker_transitions"]
            if t["service"] == "primary" and t["to"] == "open"
        ]
        assert opened
        assert outage["start"] <= opened[0] <= outage["end"]
        in_rows = [
            row
            for row in demo.report["timeline"]
            if "open" in row["providers"]["primary"]["breaker_states"]
        ]
        assert in_rows

    def test_fallback_serves_during_outage(self, demo: DemoOutput) -> None:
        """While the primary is down, the fallback answers calls and none fail."""
        summary = demo.phase("outage")["summary"]
        assert summary["providers"]["fallback"]["served"] > 0
        assert summary["providers"]["primary"]["server_errors"] > 0
        assert 0 == summary["failures"]

    def test_recovery_closes_breaker(self, demo: DemoOutput) -> None:
        """After the outage the breaker closes again and the primary serves."""
        primary = demo.phase("recovery")["summary"]["providers"]["primary"]
        assert "closed" == primary["breaker_states"][-1]
        assert primary["served"] > 0
        assert "closed" == demo.report["performance_report"]["services"]["primary"]["circuit_state"]

    def test_health_issues_and_report(self, demo: DemoOutput) -> None:
        """The report holds the health, the issues found and the performance report."""
        report = demo.report
        services = report["health"]["services"]
        assert {"primary", "fallback"} == set(services)
        # The fallback served without failing.
        fallback = services["fallback"]
        assert ("healthy", 100.0, []) == (
            fallback["status"],
            fallback["health_score"],
            fallback["reasons"],
        )
        types = {issue["type"] for issue in report["issues"]["issues"]}
        assert "circuit_breaker_activations" in types
        assert len(report["issues"]["issues"]) == report["issues"]["issues_found"]
        calls = report["calls"]
        served = sum(calls["served_by"].values())
        assert calls["calls_ended"] == served + sum(calls["failures"].values())
        metrics = report["performance_report"]["performance_metrics"]
        # Per provider, a call the primary shed and the fallback served is counted at both.
        assert (
            served + calls["shed_served_by_fallback"]
            == metrics["successful_requests"] + (metrics["shed_to_fallback"])
        )

    def test_every_call_counted_once(self, demo: DemoOutput) -> None:
        """Served + failed + shed (+ cancelled at the end) = started, and the collector agrees."""
        calls = demo.report["calls"]
        assert (
            calls["calls_started"]
            == (calls["calls_served"] + calls["calls_failed"] + calls["calls_shed"])
            + calls["calls_cancelled"]
        )
        assert calls["calls_shed"] == calls["shed_served_by_fallback"] + calls["shed_failed"]
        primary = demo.report["performance_report"]["services"]["primary"]
        metrics = demo.report["performance_report"]["performance_metrics"]
        # Every shed call was shed by the primary (the fallback has no fallback of its own).
        assert (calls["calls_shed"], calls["shed_served_by_fallback"]) == (
            primary["shed"],
            metrics["shed_to_fallback"],
        )
        assert calls["calls_shed"] > 0  # the outage opened the breaker
        # The phases' lines add up to the same counts.
        phases = [p["summary"] for p in demo.report["phases"]]
        assert (calls["calls_shed"], calls["calls_failed"]) == (
            sum(p["shed"] for p in phases),
            sum(p["failures"] for p in phases),
        )
        assert f"shed calls {demo.phase('outage')['summary']['shed']}," in demo.stdout
        line = next(f for f in demo.report["findings"] if f.startswith("calls: "))
        assert line.startswith(
            f"calls: {calls['calls_started']} started: {calls['calls_served']} served"
        )
        assert f"{calls['calls_shed']} shed by the primary's open breaker" in line
        assert f"{calls['calls_failed']} failed" in line

    def test_no_issue_contradicts_the_summary(self, demo: DemoOutput) -> None:
        """Issues, health and "What happened" tell one story about the end of the run."""
        report = demo.report
        calls = report["calls"]
        health = report["health"]["services"]
        states = {
            n: s["circuit_state"] for n, s in report["performance_report"]["services"].items()
        }
        issues = report["issues"]["issues"]
        assert {"primary": "closed", "fallback": "closed"} == states
        for issue in issues:
            # An issue says the breaker's state as it is now.
            if "now " in issue["detail"]:
                assert f"now {states[issue['service']]}" in issue["detail"]
            # Nothing high or critical about a provider that is healthy now.
            if health[issue["service"]]["status"] == "healthy":
                assert issue["severity"] in ("low", "medium"), issue
        types = {i["type"] for i in issues}
        if calls["calls_failed"] == 0:
            assert "elevated_failure_rate" not in types
        if calls["served_after_fallback"] == 0:  # every hand-over was a shed call
            assert "fallback_overuse" not in types
        # The demo's limits are the servers' own: nothing to say about them.
        assert "limits_above_provider" not in types
        # A primary that closed its breaker and served the last phase is not critical.
        assert "critical" != health["primary"]["status"]
        now = next(f for f in report["findings"] if f.startswith("now: "))
        assert now.startswith(f"now: primary {health['primary']['status']}")
        listed = ", ".join(f"{i['type']} ({i['severity']})" for i in issues) or "none"
        assert now.endswith(f"issues: {listed}")

    def test_server_stats_match_timeline(self, demo: DemoOutput) -> None:
        """Each server's request count equals the sum of its timeline column."""
        for name in ("primary", "fallback"):
            total = sum(
                row["providers"][name]["server_requests"] for row in demo.report["timeline"]
            )
            assert demo.report["server_stats"][name]["requests"] == total

    def test_png(self, demo: DemoOutput) -> None:
        """The timeline is a real PNG of a readable size."""
        assert PNG_MAGIC == demo.png[:8]
        width = int.from_bytes(demo.png[16:20], "big")
        height = int.from_bytes(demo.png[20:24], "big")
        assert (1100, 800) == (width, height)
        from PIL import Image

        with Image.open(io.BytesIO(demo.png)) as image:
            colors = image.convert("RGB").getcolors(maxcolors=width * height)
        assert colors is not None
        pixels = {color: n for n, color in colors}
        # Each phase shades a band of all three panels; each provider draws its lines.
        for name, rgb, least in (
            ("calm", "e8f4ea", 0.05),
            ("pressure", "fff4d6", 0.05),
            ("outage", "fbe0e0", 0.05),
            ("recovery", "e3edf9", 0.05),
            ("primary", "1f77b4", 0.001),
            ("fallback", "ff7f0e", 0.001),
        ):
            share = pixels.get(tuple(bytes.fromhex(rgb)), 0) / (width * height)
            assert share >= least, (name, share)

    def test_plain_output_without_progress_bar(self, demo: DemoOutput) -> None:
        """With stdout not a terminal: plain phase lines, no bar, no escape codes."""
        assert "━" not in demo.stdout
        assert "\x1b[" not in demo.stdout
        for name in ("calm", "pressure", "outage", "recovery"):
            assert f"phase {name}:" in demo.stdout
            assert f"{name} done:" in demo.stdout
        assert "Health:" in demo.stdout
        assert "Issues found:" in demo.stdout
        assert "Performance report" in demo.stdout
        assert str(demo.folder / "demo-timeline.png") in demo.stdout

    def test_no_keys_in_output(self, demo: DemoOutput) -> None:
        """The providers' keys appear neither in the output nor in the report."""
        text = demo.stdout + (demo.folder / "demo-report.json").read_text()
        assert "demo-primary-key" not in text
        assert "api_key" not in text


@pytest.fixture
async def provider_server() -> AsyncIterator[FaultServer]:
    """A fault server standing in for a real provider."""
    async with FaultServer(FaultConfig(rps=50, seed=3)) as server:
        yield server


class TestRealProvider:
    @pytest.mark.anyio
    async def test_base_url_runs_steady_load(
        self, provider_server: FaultServer, tmp_path: Path
    ) -> None:
        """With a base URL: one steady phase, one provider, the live view, the key never shown."""
        from rich.console import Console

        from llm_rate_limiter.cli.demo._command import run_async
        from llm_rate_limiter.cli.demo._scenario import DemoSettings

        secret = "sk-very-secret-123"
        settings = DemoSettings(
            duration=4,
            concurrency=4,
            output=tmp_path,
            base_url=provider_server.base_url,
            api_key=secret,
            model="some-model",
        )
        out = io.StringIO()
        console = Console(file=out, force_terminal=True, width=120)
        report = await run_async(settings, console, live=True)
        text = out.getvalue() + (tmp_path / "demo-report.json").read_text()
        assert ["load"] == [p["name"] for p in report["phases"]]
        assert ["primary"] == [p["name"] for p in report["config"]["providers"]]
        assert secret not in text
        assert "━" in out.getvalue()  # the live progress bar
        served = report["calls"]["served_by"]["primary"]
        assert provider_server.stats().succeeded == served
        assert 4 <= served <= 9  # 2 requests/s for 4 s, plus the bucket's first request
        assert PNG_MAGIC == (tmp_path / "demo-timeline.png").read_bytes()[:8]


class TestArguments:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--duration", "1"], "duration"),
            (["--duration", "nan"], "duration"),
            (["--concurrency", "0"], "concurrency"),
            (["--base-url", "http://127.0.0.1:9/v1"], "api_key"),
        ],
    )
    def test_bad_settings(
        self,
        args: list[str],
        message: str,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        """Impossible settings exit with code 2 and name the setting, before any load."""
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        code = main(["demo", "--output", str(tmp_path / "out"), *args])
        err = capsys.readouterr().err
        assert 2 == code
        assert message in err
        assert not (tmp_path / "out").exists()

    def test_missing_extra(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Without matplotlib the demo says which extra to install and exits 1."""
        monkeypatch.setitem(sys.modules, "matplotlib", None)
        code = main(["demo", "--output", str(tmp_path)])
        assert 1 == code
        assert "llm-rate-limiter[cli]" in capsys.readouterr().err


class TestParts:
    def test_exit_code_when_nothing_answered(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A run in which no call was answered exits 1 and says which errors it got."""
        from llm_rate_limiter.cli.demo._command import exit_code

        failed = {"calls": {"served_by": {}, "failures": {"AuthenticationError": 8}}}
        served = {"calls": {"served_by": {"primary": 1}, "failures": {}}}
        assert (1, 0) == (exit_code(failed), exit_code(served))
        assert "8 x AuthenticationError" in capsys.readouterr().err

    def test_phases_scale_with_duration(self) -> None:
        """The four phases take 20/30/20/30 % of the duration."""
        from llm_rate_limiter.cli.demo._scenario import DemoSettings, build_phases

        phases = build_phases(DemoSettings(duration=50))
        assert [10.0, 15.0, 10.0, 15.0] == [round(p.end - p.start, 6) for p in phases]
        assert [5.0, 20.0, 8.0, 8.0] == [p.rate for p in phases]

    def test_reset_timeout_shrinks_for_short_runs(self) -> None:
        """The breaker's reset timeout is 2 s, a tenth of the duration when shorter."""
        from llm_rate_limiter.cli.demo._scenario import DemoSettings

        assert (2.0, 0.6) == (DemoSettings().reset_timeout, DemoSettings(duration=6).reset_timeout)

    def test_settings_reject_too_long(self) -> None:
        """A duration above ten minutes is refused."""
        from llm_rate_limiter.cli.demo._scenario import DemoSettings

        with pytest.raises(ConfigurationError) as caught:
            DemoSettings(duration=601)
        assert "duration" == caught.value.setting

    def test_jsonable(self) -> None:
        """Report values become strict JSON: NaN to None, sets sorted, enums to values."""
        from llm_rate_limiter.cli.demo._report import jsonable

        class Color(enum.Enum):
            RED = "red"

        value = {"a": float("nan"), "b": frozenset({"y", "x"}), "c": Color.RED, 1: (Path("p"),)}
        assert {"a": None, "b": ["x", "y"], "c": "red", "1": ["p"]} == jsonable(value)

    @pytest.mark.anyio
    async def test_pacer_bounded_in_count(self) -> None:
        """The pacer hands out at most its limit of slots, then refuses."""
        import time

        from llm_rate_limiter.cli.demo._load import Pacer

        pacer = Pacer(limit=3)
        pacer.rate = 1e6
        deadline = time.monotonic() + 30
        taken = [await pacer.take(deadline) for _ in range(5)]
        assert [True, True, True, False, False] == taken
        assert 3 == pacer.issued

    @pytest.mark.anyio
    async def test_pacer_stops_at_deadline(self) -> None:
        """A deadline already past gives no slot."""
        import time

        from llm_rate_limiter.cli.demo._load import Pacer

        pacer = Pacer(limit=100)
        pacer.rate = 10
        assert False is await pacer.take(time.monotonic() - 1)
        assert 0 == pacer.issued


class TestLoadAccounting:
    @staticmethod
    def load(server: FaultServer, calls: int) -> Any:
        """A one-worker load of *calls* calls on a primary without fallback."""
        import time

        from llm_rate_limiter import (
            AsyncLLMClient,
            BreakerPolicy,
            ProviderConfig,
            RetryPolicy,
        )
        from llm_rate_limiter.cli.demo._load import LoadGenerator, Pacer

        config = ProviderConfig(
            name="primary",
            base_url=server.base_url,
            api_key="sk-load",
            model="mock-gpt",
            retry=RetryPolicy(max_retries=0, wait_for_breaker=False),
            breaker=BreakerPolicy(fail_max=2, reset_timeout=60),
        )
        client = AsyncLLMClient([config])
        pacer = Pacer(calls)
        pacer.rate = 1e6
        generator = LoadGenerator(
            client,
            pacer,
            concurrency=1,
            deadline=time.monotonic() + 30,
            call_timeout=30,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=4,
        )
        return client, generator

    @pytest.mark.anyio
    async def test_failed_and_shed_apart(self, provider_server: FaultServer) -> None:
        """Two calls fail and open the breaker, three are shed unserved: counted apart, once."""
        provider_server.outage(3600)
        client, generator = self.load(provider_server, 5)
        async with client:
            generator.start()
            assert 0 == await generator.stop(30.0)
        calls = generator.stats.as_dict()
        assert (5, 0, 2, 3, 3, 0) == (
            calls["calls_started"],
            calls["calls_served"],
            calls["calls_failed"],
            calls["calls_shed"],
            calls["shed_failed"],
            calls["calls_cancelled"],
        )
        assert 2 == provider_server.stats().requests

    @pytest.mark.anyio
    async def test_cancelled_at_the_end(self, provider_server: FaultServer) -> None:
        """A call still hanging when the load stops is counted as cancelled, nothing else."""
        provider_server.set_faults(hang_rate=1.0)
        client, generator = self.load(provider_server, 1)
        async with client:
            generator.start()
            with anyio.fail_after(10):
                await provider_server.wait_until(lambda s: s.hangs == 1)
            assert 1 == await generator.stop(0.0)
        calls = generator.stats.as_dict()
        assert (1, 0, 0, 0, 1) == (
            calls["calls_started"],
            calls["calls_served"],
            calls["calls_failed"],
            calls["calls_shed"],
            calls["calls_cancelled"],
        )
