# SPDX-License-Identifier: MIT
"""``bench --quick`` tells the truth: what it measures, what it cannot, and how it draws it."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, replace
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from llm_rate_limiter.cli.bench._clients import BREAKER
from llm_rate_limiter.cli.bench._metrics import CallRecord, failed_at_once, summarize
from llm_rate_limiter.cli.bench._plots import bars, timeline_figure
from llm_rate_limiter.cli.bench._report import markdown
from llm_rate_limiter.cli.bench._run import BenchOptions, _run_client, progress_line, timeline_bin
from llm_rate_limiter.cli.bench._scenarios import SCENARIOS, build_requests, quick_scenario
from llm_rate_limiter.cli.bench._server import BenchServer
from llm_rate_limiter.cli.bench._steady import steady_goodput
from llm_rate_limiter.cli.bench._targets import (
    evaluate_targets,
    outage_unmeasured,
    recovery_unmeasured,
)
from llm_rate_limiter.cli.bench._wire import WireRecord, attempts, wire_timeline

RESET = float(BREAKER["reset_timeout"])
RATE_LIMITED = quick_scenario(SCENARIOS["rate_limited"])  # 40 calls, 20/s, a bucket of 20
QUOTA = quick_scenario(SCENARIOS["insufficient_quota"])


def paced(start: float, count: int, gap: float, first_index: int = 0) -> list[WireRecord]:
    """*count* admitted requests, *gap* seconds apart from *start*."""
    return [WireRecord(first_index + i, start + i * gap, 200) for i in range(count)]


def burst_then_paced(gap: float, *, burst_at: float = 0.0) -> list[WireRecord]:
    """The quick rate_limited run of a good client: its 20-request burst, then 20 more."""
    return paced(burst_at, 20, 0.001) + paced(burst_at + 0.05, 20, gap, first_index=20)


def quick_report(name: str, clients: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A one-scenario report of quick sizes around *clients*' figures."""
    scenario = quick_scenario(SCENARIOS[name])
    entry = {
        "description": scenario.describe(),
        "fails_by_design": scenario.fails_by_design,
        "scenario": asdict(scenario) | {"request_burst": scenario.request_burst},
        "clients": clients,
    }
    return {"scenarios": {name: entry}, "settings": {"timeline_bin": 0.25}, "targets": []}


def _ys(line: Any) -> list[float]:
    return [float(y) for y in line.get_ydata()]


class TestQuickSizes:
    def test_every_quick_target_measurable(self) -> None:
        """Every --quick scenario is sized so that each target can be measured."""
        within = RESET + 1.0
        reasons = {
            name: (
                outage_unmeasured(asdict(quick_scenario(s)), RESET),
                recovery_unmeasured(asdict(quick_scenario(s)), within),
            )
            for name, s in SCENARIOS.items()
        }
        assert dict.fromkeys(SCENARIOS, (None, None)) == reasons

    def test_quick_outage_lets_the_breaker_trial_twice(self) -> None:
        """The quick outage outlasts the breaker's opening plus two reset timeouts."""
        outage = quick_scenario(SCENARIOS["outage"])
        assert outage.outage is not None
        assert outage.arrival_rate is not None
        start, duration = outage.outage
        opened = start + BREAKER["fail_max"] / outage.arrival_rate
        second_trial = opened + 2 * RESET
        assert (True, True) == (second_trial < start + duration, outage.call_deadline > duration)

    def test_too_short_an_outage_is_not_measured(self) -> None:
        """A 1 s outage's targets read "not measured in --quick", never met, even at 16 requests."""
        # The old quick sizes: 60 calls at 20/s, a 1 s outage from 1 s.
        short = replace(
            quick_scenario(SCENARIOS["outage"]), outage=(1.0, 1.0), calls=60, arrival_rate=20.0
        )
        scenarios = {
            "outage": {
                "scenario": asdict(short),
                "clients": {
                    "ours": {"outage_max_per_second": 0, "recovery_seconds": None},
                    "sdk_default": {
                        "outage_requests": 16,
                        "outage_max_per_second": 0,
                        "recovery_seconds": None,
                    },
                },
            }
        }
        targets = evaluate_targets(scenarios, BREAKER, quick=True)
        verdicts = [{v["met"] for v in t["clients"].values()} for t in targets]
        notes = [t["note"].split(":")[0] for t in targets]
        assert ([{None}, {None}], ["not measured in --quick"] * 2) == (verdicts, notes)


class TestSteadyGoodput:
    def test_slow_warm_up_left_out(self) -> None:
        """Paced at the limit after a slow start: steady goodput 1.0, whole-run below 0.97."""
        wire = burst_then_paced(0.05, burst_at=0.2)
        records = [CallRecord(r.index or 0, 0.0, r.sent + 0.05, ok=True) for r in wire]
        stats = {"requests": 40, "rate_limited": 0, "server_errors": 0, "timeline": []}
        figures = summarize(RATE_LIMITED, records, build_requests(40), stats, wire=wire)
        assert (1.0, True) == (figures["goodput_steady"], figures["goodput"] < 0.97)

    def test_slow_pacing_measured(self) -> None:
        """A client pacing at 90% of the limit has steady goodput 0.9."""
        wire = burst_then_paced(0.05 / 0.9)
        assert 0.9 == steady_goodput(RATE_LIMITED, wire, build_requests(40))

    def test_stored_capacity_drawn_is_on_offer(self) -> None:
        """A client drawing on what the bucket stored, above the rate, scores 1.0, not 1.25."""
        # Half the bucket at once, then one request per 40 ms (25/s against 20/s) from it.
        wire = paced(0.0, 10, 0.001) + paced(0.04, 30, 0.04, 10)
        assert 1.0 == steady_goodput(RATE_LIMITED, wire, build_requests(40))

    def test_token_limit_binds(self) -> None:
        """With tokens binding, steady goodput is tokens admitted over the token rate."""
        scenario = quick_scenario(SCENARIOS["token_limited"])
        requests = build_requests(60)
        assert scenario.tps is not None
        assert scenario.token_burst is not None
        t, level, wire = 0.0, scenario.token_burst, []
        for index, request in enumerate(requests):  # admitted as soon as the bucket allows
            if level < request.tokens:
                t += (request.tokens - level) / scenario.tps
                level = float(request.tokens)
            level -= request.tokens
            wire.append(WireRecord(index, t, 200))
        assert 1.0 == steady_goodput(scenario, wire, requests)

    def test_too_short_a_steady_part_not_measured(self) -> None:
        """Fewer than 10 admissions past the burst give no figure, and the target says why."""
        wire = paced(0.0, 20, 0.001) + paced(0.05, 12, 0.05, 20)
        figure = steady_goodput(RATE_LIMITED, wire, build_requests(40))
        clients = {"ours": {"goodput_steady": figure, "share_429": 0.0, "failures": 0}}
        [goodput, *_] = evaluate_targets({"rate_limited": {"clients": clients}}, BREAKER)
        assert (None, {"value": None, "met": None}) == (figure, goodput["clients"]["ours"])
        assert "fewer than 10 admissions" in goodput["note"]


class TestExpectedOutcome:
    def test_failed_at_once(self) -> None:
        """Only a call that sent one request, refused with a 4xx, failed at once."""
        records = [CallRecord(i, 0.0, 0.1, ok=False, error="X") for i in range(3)]
        wire = [WireRecord(0, 0.0, 429)]
        wire += [WireRecord(1, t, 429) for t in (0.0, 0.5, 1.0)] + [WireRecord(2, 0.0, None)]
        assert (1, {0: 1, 1: 3, 2: 1}) == (failed_at_once(records, wire), dict(attempts(wire)))

    def test_progress_line(self) -> None:
        """A scenario failing by design reports its expected outcome, not "ok 0/6"."""
        s = {"successes": 0, "calls": 6, "failed_at_once": 6, "quota_retries": 0}
        s |= {"server_requests": 6, "server_429": 6}
        line = progress_line(QUOTA, "ours", s, 0.1)
        expected = "expected outcome: 6/6 failed at once, 0 retries of insufficient_quota;"
        assert (True, False) == (expected in line, "ok 0/6" in line)

    def test_table_and_target(self) -> None:
        """The table says no success was expected and how many failed at once; a target judges."""
        figures: dict[str, Any] = {"calls": 6, "successes": 0, "failures": 6, "failed_at_once": 6}
        figures |= {"quota_retries": 0, "server_requests": 6, "server_429": 6, "goodput": None}
        figures |= dict.fromkeys(("p50_ms", "p95_ms", "p99_ms", "wall_seconds"), None)
        figures |= dict.fromkeys(("outage_requests", "outage_max_per_second"), None)
        figures |= {"recovery_seconds": None}
        report = quick_report("insufficient_quota", {"ours": figures})
        report["targets"] = evaluate_targets(report["scenarios"], BREAKER, quick=True)
        text = markdown(report)
        assert "| insufficient_quota | ours | 0 (none expected) | 6 (6 at once) |" in text
        assert "| every call fails at once, as expected (one request, refused) | 6/6 met |" in text


@pytest.fixture(scope="module")
def flaky_run() -> dict[str, Any]:
    """Run 20 calls against 30% 503s and 10% drops for ours and the SDK (about 4 s)."""
    faults = {"error_503_rate": 0.3, "drop_rate": 0.1}
    scenario = replace(quick_scenario(SCENARIOS["flaky"]), calls=20, faults=faults)
    requests = build_requests(scenario.calls)
    out: dict[str, Any] = {}
    with BenchServer() as server:
        for name in ("ours", "sdk_default"):
            bin_seconds = timeline_bin(BenchOptions(quick=True))
            figures = asyncio.run(_run_client(server, name, scenario, requests, bin_seconds))
            out[name] = (figures, server.stats())
    return out


class TestHttpLog:
    @pytest.mark.parametrize("client", ["ours", "sdk_default"])
    def test_matches_the_server(self, flaky_run: dict[str, Any], client: str) -> None:
        """The client's HTTP log counts what the server counted: requests, 5xx, dropped ones."""
        figures, stats = flaky_run[client]
        rows = figures["http_timeline"]
        logged = tuple(sum(row[k] for row in rows) for k in ("sent", "server_errors", "no_reply"))
        assert (stats["requests"], stats["server_errors"], stats["drops"]) == logged
        assert (stats["requests"], True) == (figures["http_requests"], min(logged) > 0)

    def test_quick_bins(self) -> None:
        """With --quick the timeline is binned per quarter second, from 0, empty bins kept."""
        wire = [WireRecord(0, 0.1, 200), WireRecord(1, 0.3, 503), WireRecord(1, 0.8, 200)]
        rows = wire_timeline(wire, timeline_bin(BenchOptions(quick=True)))
        found = [(row["t"], row["sent"], row["server_errors"]) for row in rows]
        assert [(0.0, 1, 0), (0.25, 1, 1), (0.5, 0, 0), (0.75, 1, 0)] == found


class TestPlots:
    def test_summary_linear_and_zero_marked(self) -> None:
        """Summary bars are linear and annotated: a zero bar is drawn and says 0, none says n/a."""
        zero = {"calls": 40, "successes": 40, "server_429": 0}
        clients = {"ours": zero, "peer": zero | {"server_429": 25}, "none": {"calls": 40}}
        report = quick_report("rate_limited", clients)
        fig, ax = plt.subplots()
        bars(ax, report, "server_429", "429s")
        ticks = [line for line in ax.get_lines() if _ys(line) == [0.0, 0.0]]
        found = (ax.get_yscale(), sorted(t.get_text() for t in ax.texts), len(ticks))
        plt.close(fig)
        assert ("linear", ["0", "25", "n/a"], 1) == found

    def test_timeline_bins_faults_and_burst(self) -> None:
        """A quick timeline steps per 0.25 s, draws its 5xx and 429s, and labels the burst band."""
        row = {"sent": 8, "accepted": 5, "rate_limited": 2, "server_errors": 1, "no_reply": 0}
        rows = [{"t": 0.25 * i, **row} for i in range(4)]
        report = quick_report("rate_limited", {"ours": {"http_timeline": rows}})
        fig = timeline_figure(plt, "rate_limited", report["scenarios"]["rate_limited"], 0.25)
        [ax] = fig.axes
        xs = list(ax.get_lines()[0].get_xdata())
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        plt.close(fig)
        assert [0.0, 0.25, 0.5, 0.75, 1.0] == xs
        assert {"429", "5xx", "limit 20/s"} <= set(labels)
        band = "burst allowance: a full bucket of 20 requests (up to 100 req/s in one bin)"
        assert band in labels
        # The axis fits the data (8 sent per 0.25 s: 32/s), not the band's top at 100/s.
        assert pytest.approx(32 * 1.15) == ax.get_ylim()[1]
