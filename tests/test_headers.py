# SPDX-License-Identifier: MIT
from __future__ import annotations

import dataclasses

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_rate_limiter import (
    RateLimitHeaders,
    parse_duration,
    parse_rate_limit_headers,
    parse_retry_after,
)

NOW = 1_700_000_000.0


class TestDuration:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("1s", 1.0),
            ("20ms", 0.02),
            ("6m0s", 360.0),
            ("1h2m3.5s", 3723.5),
            ("1m30s", 90.0),
            ("0s", 0.0),
            ("2", 2.0),
            ("0.5", 0.5),
            (" 3s ", 3.0),
            ("150us", 0.00015),
        ],
    )
    def test_valid(self, text: str, expected: float) -> None:
        """Go-style durations and plain seconds parse to seconds."""
        assert expected == pytest.approx(parse_duration(text))

    @pytest.mark.parametrize("text", ["", "s", "1x", "-1s", "-2", "nan", "inf", "1s2", "abc", None])
    def test_malformed(self, text: str | None) -> None:
        """Malformed durations give None."""
        assert parse_duration(text) is None


class TestRetryAfter:
    def test_seconds(self) -> None:
        """retry-after in integer seconds."""
        assert 2.0 == parse_retry_after({"Retry-After": "2"})

    def test_float_seconds(self) -> None:
        """retry-after in float seconds."""
        assert 0.25 == parse_retry_after({"retry-after": "0.25"})

    def test_ms_wins(self) -> None:
        """retry-after-ms is preferred over retry-after."""
        assert 0.15 == parse_retry_after({"retry-after-ms": "150", "retry-after": "3"})

    def test_bad_ms_falls_back(self) -> None:
        """A malformed retry-after-ms falls back to retry-after."""
        assert 3.0 == parse_retry_after({"retry-after-ms": "soon", "retry-after": "3"})

    def test_http_date(self) -> None:
        """An HTTP date is converted to seconds from now."""
        headers = {"retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"}  # NOW + 10 s
        assert 10.0 == pytest.approx(parse_retry_after(headers, now=lambda: NOW))

    def test_http_date_in_past(self) -> None:
        """A date in the past means no wait."""
        headers = {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}
        assert 0.0 == parse_retry_after(headers, now=lambda: NOW)

    def test_httpx_headers(self) -> None:
        """Case-insensitive httpx2.Headers work as well as dicts."""
        assert 1.5 == parse_retry_after(httpx2.Headers({"Retry-After-Ms": "1500"}))

    @pytest.mark.parametrize("value", ["", "soon", "-5", "nan", "Mon, 99 Foo 2023"])
    def test_malformed(self, value: str) -> None:
        """Malformed values give None."""
        assert parse_retry_after({"retry-after": value}) is None

    def test_absent(self) -> None:
        """No header gives None."""
        assert parse_retry_after({}) is None


class TestRateLimitHeaders:
    def test_openai(self) -> None:
        """All six OpenAI headers parse, durations included."""
        headers = httpx2.Headers(
            {
                "x-ratelimit-limit-requests": "500",
                "x-ratelimit-remaining-requests": "499",
                "x-ratelimit-reset-requests": "120ms",
                "x-ratelimit-limit-tokens": "30000",
                "x-ratelimit-remaining-tokens": "29000",
                "x-ratelimit-reset-tokens": "6m0s",
            }
        )
        expected = RateLimitHeaders(
            500.0, 499.0, 0.12, 30000.0, 29000.0, 360.0, 60.0, 60.0, "openai"
        )
        assert expected == parse_rate_limit_headers(headers)

    def test_plain(self) -> None:
        """The plain x-ratelimit-* headers fill the request fields."""
        parsed = parse_rate_limit_headers(
            {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "7"}
        )
        assert (60.0, 0.0, 7.0) == (
            parsed.limit_requests,
            parsed.remaining_requests,
            parsed.reset_requests,
        )

    def test_plain_epoch_reset(self) -> None:
        """A plain reset that is a Unix timestamp becomes seconds from now."""
        parsed = parse_rate_limit_headers({"x-ratelimit-reset": str(NOW + 30)}, now=lambda: NOW)
        assert 30.0 == parsed.reset_requests

    def test_specific_wins_over_plain(self) -> None:
        """-requests headers win over the plain ones."""
        parsed = parse_rate_limit_headers(
            {"x-ratelimit-remaining-requests": "3", "x-ratelimit-remaining": "9"}
        )
        assert 3.0 == parsed.remaining_requests

    def test_empty(self) -> None:
        """A response without limit headers is empty; malformed values are None."""
        assert parse_rate_limit_headers({}).empty
        parsed = parse_rate_limit_headers({"x-ratelimit-remaining-tokens": "lots"})
        assert parsed.empty
        assert not parse_rate_limit_headers({"x-ratelimit-limit-tokens": "1"}).empty


header_names = st.sampled_from(
    [
        "retry-after",
        "retry-after-ms",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ]
)


UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
duration_parts = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=999),
        st.sampled_from(["", ".5", ".25"]),
        st.sampled_from(sorted(UNITS)),
    ),
    min_size=1,
    max_size=4,
)


def _render(parts: list[tuple[int, str, str]]) -> tuple[str, float]:
    return (
        "".join(f"{n}{frac}{unit}" for n, frac, unit in parts),
        sum((n + float(f"0{frac}")) * UNITS[unit] for n, frac, unit in parts),
    )


#: Header values: any text, and numbers and durations that do parse.
header_values = (
    st.text(max_size=40)
    | st.integers(min_value=0, max_value=2 * 10**9).map(str)
    | duration_parts.map(lambda parts: _render(parts)[0])
)


@given(st.dictionaries(header_names, header_values, max_size=11))
def test_parsers_never_raise(headers: dict[str, str]) -> None:
    """Arbitrary header values never make the parsers raise, and results are sane."""
    delay = parse_retry_after(headers, now=lambda: NOW)
    assert delay is None or delay >= 0
    parsed = parse_rate_limit_headers(headers, now=lambda: NOW)
    for value in (
        parsed.limit_requests,
        parsed.remaining_requests,
        parsed.reset_requests,
        parsed.limit_tokens,
        parsed.remaining_tokens,
        parsed.reset_tokens,
    ):
        assert value is None or value >= 0


#: Text no parser can read a number from: no digit of any script (float() reads those).
junk = st.text(max_size=20).filter(lambda t: not any(c.isnumeric() for c in t))
spaces = st.sampled_from(["", " ", "  "])


@st.composite
def count_value(draw: st.DrawFn) -> tuple[str, float | None]:
    """A limit or remaining value: a plain number (maybe padded) and its value, or junk."""
    if draw(st.booleans()):
        return draw(junk), None
    n = draw(st.integers(min_value=0, max_value=10**7))
    if draw(st.booleans()):
        return f"{draw(spaces)}{n}{draw(spaces)}", float(n)
    return f"{n}.5", n + 0.5


@st.composite
def reset_value(draw: st.DrawFn, *, plain: bool) -> tuple[str, float | None]:
    """A reset value (seconds, a duration, or for the plain header a Unix time) or junk."""
    form = draw(st.sampled_from(["junk", "seconds", "ms", "minutes", "epoch" if plain else "s"]))
    n = draw(st.integers(min_value=0, max_value=3599))
    if form == "junk":
        return draw(junk), None
    if form == "seconds":
        return str(n), float(n)
    if form == "ms":
        return f"{n}ms", n / 1000
    if form == "minutes":
        return f"{n // 60}m{n % 60}s", float(n)
    if form == "epoch":
        return str(int(NOW) + n), float(n)
    return f"{n}s", float(n)


@given(data=st.data(), present=st.sets(header_names))
def test_each_field_is_its_own_header_else_the_plain_one(
    data: st.DataObject, present: set[str]
) -> None:
    """In any mix of well-formed and malformed headers each field is read from its own
    header; a request field whose header is missing or malformed takes the plain one's value."""
    headers: dict[str, str] = {}
    values: dict[str, float | None] = {}
    for name in sorted(present - {"retry-after", "retry-after-ms"}):
        if name.startswith("x-ratelimit-reset"):
            value = reset_value(plain=name == "x-ratelimit-reset")
        else:
            value = count_value()
        headers[name], values[name] = data.draw(value, label=name)
    parsed = parse_rate_limit_headers(headers, now=lambda: NOW)

    def field(kind: str, suffix: str = "") -> float | None:
        specific = values.get(f"x-ratelimit-{kind}{suffix}")
        return values.get(f"x-ratelimit-{kind}") if specific is None and suffix else specific

    expected = RateLimitHeaders(
        limit_requests=field("limit", "-requests"),
        remaining_requests=field("remaining", "-requests"),
        reset_requests=field("reset", "-requests"),
        limit_tokens=field("limit-tokens"),
        remaining_tokens=field("remaining-tokens"),
        reset_tokens=field("reset-tokens"),
    )
    assert pytest.approx(dataclasses.astuple(expected)[:6]) == dataclasses.astuple(parsed)[:6]
    assert (not any(v is not None for v in values.values())) == parsed.empty


@given(
    ms=st.none() | st.integers(min_value=0, max_value=10**6).map(str) | junk,
    seconds=st.none() | st.integers(min_value=0, max_value=10**6).map(str) | junk,
)
def test_retry_after_takes_the_first_readable_header(ms: str | None, seconds: str | None) -> None:
    """retry-after-ms when readable, else retry-after when readable, else no wait is known."""
    headers = {k: v for k, v in (("retry-after-ms", ms), ("retry-after", seconds)) if v is not None}
    if ms is not None and ms.isdigit():
        expected: float | None = int(ms) / 1000
    elif seconds is not None and seconds.isdigit():
        expected = float(seconds)
    else:
        expected = None
    assert expected == parse_retry_after(headers, now=lambda: NOW)


@given(st.text(max_size=80))
def test_duration_never_raises(text: str) -> None:
    """parse_duration returns None or a non-negative number for any text."""
    result = parse_duration(text)
    assert result is None or result >= 0


@given(parts=duration_parts, pad=spaces)
def test_any_sequence_of_parts_is_their_sum(parts: list[tuple[int, str, str]], pad: str) -> None:
    """Number-and-unit parts in any order, repeated or not, add up (surrounding blanks ignored)."""
    text, seconds = _render(parts)
    assert seconds == pytest.approx(parse_duration(f"{pad}{text}{pad}"), rel=1e-9, abs=1e-12)


@given(
    parts=duration_parts,
    corruption=st.sampled_from(
        ["minus", "inner space", "trailing number", "unknown unit", "bare fraction", "too long"]
    ),
    data=st.data(),
)
def test_a_corrupted_duration_is_refused(
    parts: list[tuple[int, str, str]], corruption: str, data: st.DataObject
) -> None:
    """A duration with a sign, a blank inside, a number without unit, an unknown unit,
    a fraction without its integer part, or over 64 characters gives None."""
    text, _ = _render(parts)
    cut = data.draw(st.integers(min_value=0, max_value=len(parts) - 1), label="part")
    head, _ = _render(parts[:cut])
    tail, _ = _render(parts[cut:])
    corrupted = {
        "minus": f"-{text}",
        "inner space": f"{head} {tail}" if head else f"{text} 1s",
        "trailing number": f"{text}7",
        "unknown unit": f"{head}3d{tail}",
        "bare fraction": f"{head}.5s{tail}",
        "too long": (text * 65)[:65],
    }[corruption]
    assert parse_duration(corrupted) is None, corrupted


def test_any_mapping_is_read_case_insensitively() -> None:
    """A read-only mapping with mixed-case names is parsed like a dict."""
    from types import MappingProxyType

    from llm_rate_limiter import parse_retry_after

    assert 2.0 == parse_retry_after(MappingProxyType({"Retry-After": "2"}))
