# SPDX-License-Identifier: MIT
"""Round-trip properties of the header parsers: each dialect's real format parses back."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_rate_limiter import parse_duration, parse_rate_limit_headers, parse_retry_after
from llm_rate_limiter._headers import server_pause

NOW = 1_700_000_000.0
_FAST = settings(max_examples=150, deadline=None)

# Nanoseconds in each of the ranges Go's time.Duration.String() renders differently.
nanoseconds = st.one_of(
    st.just(0),
    st.integers(1, 999),  # "150ns"
    st.integers(1_000, 999_999),  # "1.5µs"
    st.integers(1_000_000, 999_999_999),  # "20ms", "1.25ms"
    st.integers(1, 59).map(lambda s: s * 10**9),  # "1s", "59s"
    st.integers(10**9, 3_600 * 10**9 - 1),  # "6m0s", "17.28s"
    st.integers(3_600 * 10**9, 10**6 * 10**9),  # "1h2m3.5s"
)
counts = st.integers(0, 10**9)


def _fraction(value: int, digits: int) -> str:
    """*value* / 10**digits with trailing zeros dropped, as Go prints it."""
    whole, frac = divmod(value, 10**digits)
    return f"{whole}.{frac:0{digits}d}".rstrip("0") if frac else str(whole)


def go_duration(ns: int, micro: str = "µs") -> str:
    """Render *ns* nanoseconds exactly as Go's time.Duration.String() (what OpenAI sends)."""
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return _fraction(ns, 3) + micro
    if ns < 1_000_000_000:
        return _fraction(ns, 6) + "ms"
    seconds, frac = divmod(ns, 10**9)
    hours, rest = divmod(seconds, 3_600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}h" if hours else ""
    text += f"{minutes}m" if hours or minutes else ""
    return text + _fraction(secs * 10**9 + frac, 9) + "s"


@st.composite
def any_case(draw: st.DrawFn, name: str) -> str:
    """*name* with each letter upper- or lower-cased at random."""
    mask = draw(st.integers(0, 2 ** len(name) - 1))
    return "".join(c.upper() if mask >> i & 1 else c for i, c in enumerate(name))


def approx_seconds(ns: int) -> object:
    """*ns* nanoseconds in seconds, up to float rounding."""
    return pytest.approx(ns / 1e9, rel=1e-12, abs=1e-15)


class TestDuration:
    def test_documented_examples(self) -> None:
        """The renderer prints the durations OpenAI documents, and each parses to its seconds."""
        samples = [10**9, 360 * 10**9, 20 * 10**6, 3_723_500_000_000, 150, 1_500]
        texts = [go_duration(ns) for ns in samples]
        assert ["1s", "6m0s", "20ms", "1h2m3.5s", "150ns", "1.5µs"] == texts
        assert [approx_seconds(ns) for ns in samples] == [parse_duration(t) for t in texts]

    @_FAST
    @given(ns=nanoseconds, micro=st.sampled_from(["µs", "us"]), pad=st.sampled_from(["", " "]))
    def test_go_duration_round_trips(self, ns: int, micro: str, pad: str) -> None:
        """Any duration in Go's format (µs or us, padded or not) parses back to its seconds."""
        assert approx_seconds(ns) == parse_duration(pad + go_duration(ns, micro) + pad)

    @_FAST
    @given(seconds=st.integers(0, 10**8), millis=st.integers(0, 999))
    def test_plain_seconds_round_trip(self, seconds: int, millis: int) -> None:
        """Plain (decimal) seconds parse back to themselves."""
        assert approx_seconds(seconds * 10**9 + millis * 10**6) == parse_duration(
            f"{seconds}.{millis:03d}"
        )


Sample = tuple[dict[str, str], dict[str, float]]


@st.composite
def openai_headers(draw: st.DrawFn) -> Sample:
    """The six OpenAI headers in their real format (names in any case), and their values."""
    values = {
        "limit_requests": draw(counts),
        "remaining_requests": draw(counts),
        "reset_requests": draw(nanoseconds),
        "limit_tokens": draw(counts),
        "remaining_tokens": draw(counts),
        "reset_tokens": draw(nanoseconds),
    }
    headers: dict[str, str] = {}
    for field, value in values.items():
        limit_kind, kind = field.split("_")
        name = draw(any_case(f"x-ratelimit-{limit_kind}-{kind}"))
        headers[name] = go_duration(value, "us") if limit_kind == "reset" else str(value)
    expected = {f: v / 1e9 if f.startswith("reset") else float(v) for f, v in values.items()}
    return headers, expected


class TestRateLimitHeaders:
    @_FAST
    @given(sample=openai_headers(), as_httpx=st.booleans())
    def test_openai_round_trip(self, sample: Sample, as_httpx: bool) -> None:
        """OpenAI's limit, remaining and reset headers, in any case, in a dict or httpx2.Headers."""
        headers, expected = sample
        parsed = parse_rate_limit_headers(httpx2.Headers(headers) if as_httpx else headers)
        fields = {k: v for k, v in dataclasses.asdict(parsed).items() if k in expected}
        assert pytest.approx(expected, rel=1e-12, abs=1e-15) == fields

    @_FAST
    @given(
        limit=counts,
        remaining=counts,
        reset=st.one_of(
            st.tuples(st.just("duration"), nanoseconds),
            st.tuples(st.just("epoch"), st.integers(0, 10**7)),
            st.tuples(st.just("past"), st.integers(1, 10**7)),
        ),
        data=st.data(),
    )
    def test_plain_dialect_round_trip(
        self, limit: int, remaining: int, reset: tuple[str, int], data: st.DataObject
    ) -> None:
        """Plain x-ratelimit-* fill the request fields; a reset above 1e9 is a Unix timestamp."""
        form, amount = reset
        if form == "duration":
            raw, seconds = go_duration(amount), amount / 1e9
        else:
            sign = 1 if form == "epoch" else -1
            raw, seconds = str(int(NOW) + sign * amount), max(0, sign * amount)
        headers = {
            data.draw(any_case("x-ratelimit-limit")): str(limit),
            data.draw(any_case("x-ratelimit-remaining")): str(remaining),
            data.draw(any_case("x-ratelimit-reset")): raw,
        }
        parsed = parse_rate_limit_headers(headers, now=lambda: NOW)
        expected = [float(limit), float(remaining), seconds]
        actual = [parsed.limit_requests, parsed.remaining_requests, parsed.reset_requests]
        assert pytest.approx(expected, rel=1e-12, abs=1e-15) == actual
        assert (None, None, None) == (
            parsed.limit_tokens,
            parsed.remaining_tokens,
            parsed.reset_tokens,
        )

    @_FAST
    @given(specific=openai_headers(), plain=st.tuples(counts, counts, nanoseconds))
    def test_specific_wins_over_plain(self, specific: Sample, plain: tuple[int, int, int]) -> None:
        """With both dialects present the -requests headers win, whatever the plain ones say."""
        headers, expected = specific
        limit, remaining, reset = plain
        headers |= {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": go_duration(reset),
        }
        parsed = parse_rate_limit_headers(headers)
        fields = {k: v for k, v in dataclasses.asdict(parsed).items() if k in expected}
        assert pytest.approx(expected, rel=1e-12, abs=1e-15) == fields


def http_date(timestamp: float) -> str:
    """*timestamp* as an HTTP date (IMF-fixdate), as servers send Retry-After."""
    return format_datetime(datetime.fromtimestamp(timestamp, UTC), usegmt=True)


class TestRetryAfter:
    @_FAST
    @given(seconds=st.integers(0, 10**7), name=any_case("retry-after"), as_httpx=st.booleans())
    def test_integer_seconds(self, seconds: int, name: str, as_httpx: bool) -> None:
        """Retry-After in integer seconds, the name in any case, parses to those seconds."""
        headers = {name: str(seconds)}
        assert float(seconds) == parse_retry_after(httpx2.Headers(headers) if as_httpx else headers)

    @_FAST
    @given(offset=st.integers(-(10**8), 10**8), name=any_case("retry-after"))
    def test_http_date(self, offset: int, name: str) -> None:
        """Retry-After as an HTTP date is its distance from the injected now (0 when past)."""
        headers = {name: http_date(NOW + offset)}
        assert float(max(0, offset)) == parse_retry_after(headers, now=lambda: NOW)

    @_FAST
    @given(
        ms=st.one_of(st.integers(0, 10**9).map(str), st.decimals(0, 10**6, places=3).map(str)),
        seconds=st.one_of(st.none(), st.integers(0, 10**6)),
        name=any_case("retry-after-ms"),
    )
    def test_ms_wins(self, ms: str, seconds: int | None, name: str) -> None:
        """retry-after-ms parses to its value / 1000 and wins over any retry-after."""
        headers = {name: ms} | ({} if seconds is None else {"Retry-After": str(seconds)})
        assert pytest.approx(float(ms) / 1000.0, rel=1e-12) == parse_retry_after(headers)

    @_FAST
    @given(
        sample=openai_headers(),
        exhausted=st.sets(st.sampled_from(["requests", "tokens"])),
        retry_after=st.one_of(st.none(), st.integers(0, 10**6)),
    )
    def test_server_pause(
        self, sample: Sample, exhausted: set[str], retry_after: int | None
    ) -> None:
        """A 429's pause is its retry-after, else the longest reset of an exhausted kind."""
        headers, values = sample
        lowered = {name.lower(): name for name in headers}
        for kind in exhausted:
            headers[lowered[f"x-ratelimit-remaining-{kind}"]] = "0"
        for kind in {"requests", "tokens"} - exhausted:  # a kind with room left sets no pause
            headers[lowered[f"x-ratelimit-remaining-{kind}"]] = "1"
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        resets = [values[f"reset_{kind}"] for kind in exhausted]
        if retry_after is None and not resets:
            assert server_pause(headers) is None
            return
        expected = float(retry_after) if retry_after is not None else max(resets)
        assert pytest.approx(expected, rel=1e-12, abs=1e-15) == server_pause(headers)
