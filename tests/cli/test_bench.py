# SPDX-License-Identifier: MIT
"""``llm-rate-limiter bench``: a quick run against the fault server process, and its figures."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest

from llm_rate_limiter import cli
from llm_rate_limiter.cli.bench._metrics import (
    CallRecord,
    evaluate_targets,
    outage_arrivals,
    percentile,
    recovery_time,
    summarize,
)
from llm_rate_limiter.cli.bench._scenarios import (
    CLIENT_NAMES,
    SCENARIOS,
    Scenario,
    build_requests,
    server_settings,
)
from llm_rate_limiter.cli.bench._server import BenchServer

QUICK_SCENARIOS = ("rate_limited", "insufficient_quota")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run ``bench --quick`` once on two scenarios with every client (about 15 s)."""
    output = tmp_path_factory.mktemp("bench")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(
            ["bench", "--quick", "--scenarios", ",".join(QUICK_SCENARIOS), "--output", str(output)]
        )
    lines = stdout.getvalue().splitlines()
    report = json.loads((output / "bench.json").read_text())
    return {"code": code, "output": output, "stdout": lines, "report": report}


class TestQuickRun:
    def test_exit_code_and_table(self, quick_run: dict[str, Any]) -> None:
        """The run succeeds and prints and writes one table row per scenario and client."""
        assert 0 == quick_run["code"]
        text = (quick_run["output"] / "bench.md").read_text()
        rows = [line for line in text.splitlines() if line.startswith(("| rate_", "| insuff"))]
        result_rows = [r for r in rows if r.count("|") == 16]
        assert len(QUICK_SCENARIOS) * len(CLIENT_NAMES) == len(result_rows)
        assert any(line.startswith("| scenario | client | ok |") for line in quick_run["stdout"])
        assert "### Targets" in text

    def test_plots_written(self, quick_run: dict[str, Any]) -> None:
        """The summary plot and one timeline per scenario are PNG files."""
        names = ["bench-summary.png"] + [f"bench-timeline-{s}.png" for s in QUICK_SCENARIOS]
        for name in names:
            data = (quick_run["output"] / name).read_bytes()
            assert PNG_MAGIC == data[:8]
            assert len(data) > 5000

    def test_counts_consistent(self, quick_run: dict[str, Any]) -> None:
        """Every call is a success or a failure, and every sent call reached the server."""
        for name, scenario in quick_run["report"]["scenarios"].items():
            calls = scenario["scenario"]["calls"]
            for client, figures in scenario["clients"].items():
                assert calls == figures["calls"], (name, client)
                assert calls == figures["successes"] + figures["failures"], (name, client)
                # Every request sent was answered: served once, or refused with a 429 or 5xx.
                assert figures["server_requests"] == (
                    figures["successes"] + figures["server_429"] + figures["server_5xx"]
                ), (name, client)
                assert figures["server_requests"] >= calls, (name, client)

    def test_quota_retries(self, quick_run: dict[str, Any]) -> None:
        """Ours never retries insufficient_quota; the SDK's defaults retry it twice per call."""
        clients = quick_run["report"]["scenarios"]["insufficient_quota"]["clients"]
        calls = clients["ours"]["calls"]
        assert 0 == clients["ours"]["quota_retries"]
        assert 2 * calls == clients["sdk_default"]["quota_retries"]
        assert calls == clients["ours"]["server_429"]

    def test_ours_rate_limited(self, quick_run: dict[str, Any]) -> None:
        """Under the server's limit our client fails no call and draws at most one 429."""
        ours = quick_run["report"]["scenarios"]["rate_limited"]["clients"]["ours"]
        # The client's bucket holds 0.95 s (19 requests) against the server's 1 s (20): a
        # one-request margin, 50 ms of refill. A pause of the test process longer than that
        # (a gen-2 GC over the whole suite's heap, a loaded CI core) sends requests admitted
        # before it together with those admitted after it, so one 429 can come through
        # (seen twice in full runs, never alone; the 400-call benchmark records 0).
        assert (0, True) == (ours["failures"], ours["server_429"] <= 1)
        assert 40 == ours["successes"]
        assert 40 + ours["server_429"] == ours["server_requests"]
        # Goodput: successes over the server's burst plus its rate over the measured wall time.
        assert round(40 / (20.0 + 20.0 * ours["wall_seconds"]), 3) == pytest.approx(
            ours["goodput"], abs=0.002
        )
        # At most the server's capacity; at least half of it (twice the ideal time: a
        # generous margin for a loaded machine, yet a limiter at half the rate falls under).
        assert 0.5 <= ours["goodput"] <= 1.05


class TestMetrics:
    def test_percentile(self) -> None:
        """Percentiles use the nearest rank; no values give None."""
        values = [float(v) for v in range(1, 101)]
        assert (50.0, 95.0, 100.0, None) == (
            percentile(values, 50),
            percentile(values, 95),
            percentile(values, 100),
            percentile([], 50),
        )

    def test_outage_arrivals(self) -> None:
        """Arrivals inside the outage are summed; the most per second skips its first second."""
        timeline = [{"t": t, "arrivals": n} for t, n in [(2, 30), (3, 9), (4, 1), (6, 2), (8, 30)]]
        assert (12, 2) == outage_arrivals(timeline, (3.0, 5.0))

    def test_recovery_time(self) -> None:
        """Recovery is when a 1 s window first holds 80% of the offered rate in successes."""
        finished = [8.5 + i * 0.02 for i in range(100)]  # 50/s from 8.5 s
        assert 0.5 == recovery_time(finished, 8.0, 50.0, 12.0)
        assert 0.0 == recovery_time([8.0, *finished], 8.0, 10.0, 12.0)
        assert recovery_time(finished[:10], 8.0, 50.0, 12.0) is None

    def test_summarize_goodput_and_quota(self) -> None:
        """Goodput is successes over burst + rate x wall; quota retries are the extra requests."""
        scenario = Scenario("s", calls=3, concurrency=1, rps=1.0)
        records = [
            CallRecord(i, 0.0, 1.0, ok=i < 2, error=None if i < 2 else "X") for i in range(3)
        ]
        stats = {"requests": 5, "rate_limited": 1, "server_errors": 0, "timeline": []}
        figures = summarize(scenario, records, build_requests(3), stats)
        assert (2, 1, 1.0, 0.2, {"X": 1}) == (
            figures["successes"],
            figures["failures"],
            figures["goodput"],
            figures["share_429"],
            figures["errors"],
        )
        quota = Scenario("q", calls=3, concurrency=1, faults={"insufficient_quota": True})
        assert 2 == summarize(quota, records, build_requests(3), stats)["quota_retries"]

    def test_targets(self) -> None:
        """Each target is judged per client with the measured value."""
        figures = {"quota_retries": 0}
        scenarios = {
            "insufficient_quota": {"clients": {"ours": figures, "peer": {"quota_retries": 4}}}
        }
        breaker = {"half_open_max_calls": 1, "reset_timeout": 1.0}
        [target] = evaluate_targets(scenarios, breaker)
        assert {"ours": {"value": 0, "met": True}, "peer": {"value": 4, "met": False}} == target[
            "clients"
        ]


class TestScenarios:
    def test_settings_reset_every_fault(self) -> None:
        """A scenario's server settings clear what another scenario set."""
        flaky = server_settings(SCENARIOS["flaky"])
        outage = server_settings(SCENARIOS["outage"])
        assert (None, [], 0.10) == (flaky["rps"], flaky["outages"], flaky["error_503_rate"])
        assert (50.0, [[3.0, 5.0]], 0.0) == (
            outage["rps"],
            outage["outages"],
            outage["error_503_rate"],
        )

    def test_same_request_set(self) -> None:
        """The seeded request set is the same for every client and costs what the server charges."""
        first, second = build_requests(20), build_requests(20)
        assert first == second
        request = first[0]
        chars = len(request.messages[0]["content"])
        assert -(-chars // 4) + 4 + 3 + request.max_tokens == request.tokens


class TestCli:
    def test_unknown_scenario(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown scenario name is a usage error naming the choices."""
        with pytest.raises(SystemExit) as caught:
            cli.main(["bench", "--scenarios", "nope"])
        assert 2 == caught.value.code
        assert "rate_limited" in capsys.readouterr().err


class TestServer:
    def test_child_process_stopped(self) -> None:
        """The fault server runs in its own process on loopback and is stopped on exit."""
        with BenchServer() as server:
            process = server.process
            assert process is not None
            assert server.base_url.startswith("http://127.0.0.1:")
            assert 0 == server.stats()["requests"]
        assert process.poll() is not None
