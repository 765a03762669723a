# SPDX-License-Identifier: MIT
from __future__ import annotations

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
        expected = RateLimitHeaders(500.0, 499.0, 0.12, 30000.0, 29000.0, 360.0)
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


@given(st.dictionaries(header_names, st.text(max_size=40), max_size=11))
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


@given(st.text(max_size=80))
def test_duration_never_raises(text: str) -> None:
    """parse_duration returns None or a non-negative number for any text."""
    result = parse_duration(text)
    assert result is None or result >= 0
