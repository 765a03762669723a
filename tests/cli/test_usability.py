# SPDX-License-Identifier: MIT
"""The first hour with the command line: its options speak the API's language, its errors help."""

from __future__ import annotations

import re
import socket

import pytest

import llm_rate_limiter
from llm_rate_limiter.cli import main
from llm_rate_limiter.cli._serve import _config
from llm_rate_limiter.cli.bench._command import FULL_MINUTES, QUICK_MINUTES
from llm_rate_limiter.cli.bench._scenarios import CLIENT_NAMES, SCENARIOS, build_requests

pytest_plugins = ["pytester"]

#: What ``serve-mock --help`` must say each numeric option defaults to.
SERVE_DEFAULTS = {
    "--port": "8000",
    "--rpm": "unlimited",
    "--rps": "unlimited",
    "--tpm": "unlimited",
    "--tps": "unlimited",
    "--request-burst": "1 s worth",
    "--token-burst": "1 s worth",
    "--concurrency": "unlimited",
    "--completion-tokens": "16",
    "--latency": "0",
    "--latency-jitter": "0",
    "--error-500-rate": "0",
    "--error-502-rate": "0",
    "--error-503-rate": "0",
    "--hang-rate": "0",
    "--drop-rate": "0",
    "--stream-failure-rate": "0",
    "--malformed-rate": "0",
    "--seed": "0",
}


def help_text(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """The ``--help`` output of *argv*, one option per line (a wide terminal)."""
    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit) as caught:
        main([*argv, "--help"])
    assert 0 == caught.value.code
    return capsys.readouterr().out


def option_lines(text: str) -> dict[str, str]:
    """Option -> its entry on one line, for every ``--option`` listed in *text*."""
    lines: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        found = re.match(r"  (--[\w-]+)", line)
        if found:
            current = found.group(1)
            lines[current] = line.rstrip()
        elif current is not None and line.startswith("   "):
            lines[current] += " " + line.strip()
        else:
            current = None
    return lines


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the program name and the package version and exits 0."""
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert 0 == caught.value.code
    assert f"llm-rate-limiter {llm_rate_limiter.__version__}\n" == capsys.readouterr().out


class TestServeMockOptions:
    def test_error_500_rate_sets_its_field(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--error-500-rate sets error_500_rate; so does --error-rate, warning it is deprecated."""
        from llm_rate_limiter.cli import build_parser

        parse = build_parser().parse_args
        new = _config(parse(["serve-mock", "--error-500-rate", "0.25"]))
        assert "" == capsys.readouterr().err
        old = _config(parse(["serve-mock", "--error-rate", "0.5"]))
        assert (0.25, 0.5) == (new.error_500_rate, old.error_500_rate)
        assert (
            "llm-rate-limiter serve-mock: --error-rate is deprecated, use --error-500-rate\n"
            == capsys.readouterr().err
        )

    @pytest.mark.parametrize("flag", ["--error-500-rate", "--error-rate"])
    def test_error_names_the_option_typed(
        self, flag: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A bad probability is reported under the option the user typed, not the field name."""
        assert 2 == main(["serve-mock", flag, "1.5"])
        last = capsys.readouterr().err.splitlines()[-1]
        assert f"llm-rate-limiter serve-mock: {flag}: must be a probability in [0, 1], got 1.5" == (
            last
        )

    def test_sum_error_names_the_options(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Fault probabilities adding up past 1 are reported under the options that set them."""
        assert 2 == main(["serve-mock", "--error-503-rate", "0.6", "--drop-rate", "0.6"])
        assert (
            "llm-rate-limiter serve-mock: --drop-rate, --error-503-rate: "
            "the fault probabilities add up to 1.2, more than 1\n"
        ) == capsys.readouterr().err

    def test_conflict_names_both_options(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Giving a rate per minute and per second names both options in their CLI spelling."""
        assert 2 == main(["serve-mock", "--tpm", "600", "--tps", "10"])
        assert "llm-rate-limiter serve-mock: --tpm: give --tpm or --tps, not both\n" == (
            capsys.readouterr().err
        )

    def test_help_shows_every_default(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every numeric option's help ends with its default, "unlimited" where unset is."""
        lines = option_lines(help_text(["serve-mock"], capsys, monkeypatch))
        shown = {
            flag: found.group(1)
            for flag, line in lines.items()
            if (found := re.search(r"\(default: ([^)]*)\)$", line))
        }
        assert SERVE_DEFAULTS == {flag: shown.get(flag) for flag in SERVE_DEFAULTS}
        numeric = {
            flag
            for flag, line in lines.items()
            if re.match(rf"\s+{flag} (N|P|X|SECONDS|PORT)\b", line)
        }
        assert {"--error-rate"} == numeric - set(SERVE_DEFAULTS)
        assert "deprecated alias of --error-500-rate" in lines["--error-rate"]

    def test_help_explains_the_switches(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--dialect, --insufficient-quota and --unauthorized each have a help text."""
        lines = option_lines(help_text(["serve-mock"], capsys, monkeypatch))
        words = {
            "--dialect": "error bodies",
            "--insufficient-quota": "429 insufficient_quota",
            "--unauthorized": "401 invalid_api_key",
        }
        assert dict.fromkeys(words, True) == {
            flag: text in lines[flag] for flag, text in words.items()
        }

    def test_port_in_use_suggests_port_0(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A port another socket listens on exits 2 with a hint to use --port 0, no traceback."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            code = main(["serve-mock", "--port", str(port)])
        err = capsys.readouterr().err
        assert 2 == code
        assert f"cannot listen on 127.0.0.1:{port}" in err
        assert "--port 0 to pick a free one" in err
        assert "Traceback" not in err


class TestBenchHelp:
    @pytest.mark.parametrize("argv", [[], ["demo"], ["bench"], ["serve-mock"]])
    def test_no_markup_in_help(
        self,
        argv: list[str],
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """No reStructuredText (backticks, :role: markup) leaks into any help text."""
        text = help_text(argv, capsys, monkeypatch)
        assert [] == re.findall(r"``|`[^`]+`|:\w+:`", text)

    def test_sizes_show_defaults(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--calls and --concurrency say what they default to, full size and with --quick."""
        lines = option_lines(help_text(["bench"], capsys, monkeypatch))
        assert "(default: each scenario's own, 40-400; with --quick 6-60)" in lines["--calls"]
        assert "(default: each scenario's own, 40; with --quick 6-8)" in lines["--concurrency"]

    def test_says_how_long(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The help gives a full run's minutes, at least the scenarios' own pace, and --quick's."""
        text = " ".join(help_text(["bench"], capsys, monkeypatch).split())
        assert f"A full run takes about {FULL_MINUTES} minutes" in text
        assert "--quick runs every scenario small" in text
        assert f"about {QUICK_MINUTES} minute instead of {FULL_MINUTES}" in text
        paced = 0.0
        for scenario in SCENARIOS.values():
            tokens = sum(r.tokens for r in build_requests(scenario.calls))
            paces = [
                scenario.calls / rate for rate in (scenario.rps, scenario.arrival_rate) if rate
            ]
            paces += [tokens / scenario.tps] if scenario.tps else []
            paced += min(max(paces, default=0.0), scenario.max_seconds)
        capped = sum(s.max_seconds for s in SCENARIOS.values())
        assert paced * len(CLIENT_NAMES) <= FULL_MINUTES * 60 <= capped * len(CLIENT_NAMES)


class TestFaultServerFixtureHint:
    INNER = ("-p", "no:asyncio", "-p", "no:cacheprovider", "-W", "error")

    def test_missing_anyio_marker(self, pytester: pytest.Pytester) -> None:
        """A test using fault_server without @pytest.mark.anyio is told to add it."""
        pytester.makepyfile(
            """
            import pytest

            async def test_unmarked(fault_server):
                pass

            def test_sync(fault_server):
                pass

            @pytest.mark.anyio
            async def test_marked(fault_server):
                assert fault_server.base_url.endswith("/v1")
            """
        )
        result = pytester.runpytest_inprocess(*self.INNER)
        result.assert_outcomes(passed=1, errors=2)
        result.stdout.fnmatch_lines(
            [
                "*'test_unmarked' uses the async fixture 'fault_server', but anyio does not run "
                "it: add @pytest.mark.anyio to it*",
                "*'test_sync' uses the async fixture 'fault_server', but anyio does not run "
                "it: make it an `async def` test and add @pytest.mark.anyio*",
            ]
        )
        result.stdout.no_fnmatch_line("*no plugin or hook that handled it*")
