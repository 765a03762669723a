# SPDX-License-Identifier: MIT
"""Each provider's rate-limit dialect, from its real format, read into one RateLimitHeaders."""

from __future__ import annotations

import json

import httpx2
import pytest

from llm_rate_limiter import ProviderConfig, RateLimitHeaders, parse_rate_limit_headers
from llm_rate_limiter._headers import (
    RATE_LIMIT_DIALECTS,
    parse_retry_after,
    parse_retry_delay,
    server_pause,
)
from llm_rate_limiter.exceptions import ConfigurationError

NOW = 1_700_000_000.0

# What each provider sends, as documented (values from their docs' examples).
OPENAI = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-reset-requests": "120ms",
    "x-ratelimit-limit-tokens": "30000",
    "x-ratelimit-remaining-tokens": "29000",
    "x-ratelimit-reset-tokens": "6m0s",
}
MOONSHOT = {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "198", "X-RateLimit-Reset": "7"}
GROQ = {
    "x-ratelimit-limit-requests": "14400",
    "x-ratelimit-limit-tokens": "18000",
    "x-ratelimit-remaining-requests": "14370",
    "x-ratelimit-remaining-tokens": "17997",
    "x-ratelimit-reset-requests": "2m59.56s",
    "x-ratelimit-reset-tokens": "7.66s",
    "x-groq-region": "gcp-europe-west4",
}
TOGETHER = {
    "x-ratelimit-limit": "10",
    "x-ratelimit-remaining": "9",
    "x-ratelimit-reset": "1",
    "x-tokenlimit-limit": "3000",
    "x-tokenlimit-remaining": "2950",
}
AZURE = {
    "x-ratelimit-remaining-requests": "119",
    "x-ratelimit-remaining-tokens": "119000",
    "x-ms-region": "East US",
}
IETF = {"RateLimit": "limit=20, remaining=3, reset=1", "RateLimit-Policy": "20;w=1"}
GEMINI_429 = [
    {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "43s"},
            ],
        }
    }
]
SAMPLES = {
    "openai": OPENAI,
    "plain": MOONSHOT,
    "groq": GROQ,
    "together": TOGETHER,
    "azure": AZURE,
    "ietf": IETF,
}


class TestEachDialect:
    def test_openai(self) -> None:
        """OpenAI's six headers are per minute: both windows are 60 s."""
        expected = RateLimitHeaders(
            500.0, 499.0, 0.12, 30000.0, 29000.0, 360.0, 60.0, 60.0, "openai"
        )
        assert expected == parse_rate_limit_headers(httpx2.Headers(OPENAI))

    def test_openai_filled_in_by_plain(self) -> None:
        """Beside OpenAI's names, plain headers fill the request fields they leave empty."""
        headers = {"x-ratelimit-limit-tokens": "1000", "x-ratelimit-limit": "60"}
        expected = RateLimitHeaders(60.0, None, None, 1000.0, None, None, 60.0, 60.0, "openai")
        assert expected == parse_rate_limit_headers(headers)

    def test_moonshot_plain(self) -> None:
        """Moonshot's plain X-RateLimit-* headers are requests per minute, and nothing of tokens."""
        expected = RateLimitHeaders(200.0, 198.0, 7.0, request_window=60.0, dialect="plain")
        assert expected == parse_rate_limit_headers(MOONSHOT)

    def test_groq_requests_are_per_day(self) -> None:
        """Groq's request limit is per day (86400 s), its token limit per minute."""
        parsed = parse_rate_limit_headers(httpx2.Headers(GROQ))
        expected = RateLimitHeaders(
            14400.0, 14370.0, 179.56, 18000.0, 17997.0, 7.66, 86400.0, 60.0, "groq"
        )
        assert expected == parsed
        assert (10.0, 18000.0) == (parsed.requests_per_minute, parsed.tokens_per_minute)

    def test_groq_named_without_its_region_header(self) -> None:
        """Named in the profile, Groq's headers are per day even without x-groq-region."""
        headers = {k: v for k, v in GROQ.items() if k != "x-groq-region"}
        parsed = parse_rate_limit_headers(headers, dialect="groq")
        assert (14400.0, 86400.0, 10.0) == (
            parsed.limit_requests,
            parsed.request_window,
            parsed.requests_per_minute,
        )

    def test_together_is_per_second(self) -> None:
        """Together's requests and tokens are per second, x-tokenlimit-* the tokens."""
        parsed = parse_rate_limit_headers(TOGETHER)
        expected = RateLimitHeaders(10.0, 9.0, 1.0, 3000.0, 2950.0, None, 1.0, 1.0, "together")
        assert expected == parsed
        assert (600.0, 180_000.0) == (parsed.requests_per_minute, parsed.tokens_per_minute)

    def test_azure_remaining_without_limits(self) -> None:
        """Azure's remaining counts are read with no limit invented for them."""
        parsed = parse_rate_limit_headers(httpx2.Headers(AZURE))
        expected = RateLimitHeaders(
            remaining_requests=119.0,
            remaining_tokens=119000.0,
            request_window=60.0,
            token_window=60.0,
            dialect="azure",
        )
        assert expected == parsed
        assert (None, None) == (parsed.requests_per_minute, parsed.tokens_per_minute)

    def test_azure_retry_after_ms(self) -> None:
        """x-ms-retry-after-ms is a wait, retry-after-ms wins over it, both over retry-after."""
        alone = {"x-ms-retry-after-ms": "1500", "retry-after": "2"}
        both = {"retry-after-ms": "250", **alone}
        assert (1.5, 0.25) == (parse_retry_after(alone), parse_retry_after(httpx2.Headers(both)))

    def test_ietf_policy_window(self) -> None:
        """RateLimit with RateLimit-Policy: 20;w=1 is 20 requests per second, not per minute."""
        parsed = parse_rate_limit_headers(httpx2.Headers(IETF))
        expected = RateLimitHeaders(20.0, 3.0, 1.0, request_window=1.0, dialect="ietf")
        assert expected == parsed
        assert 1200.0 == parsed.requests_per_minute

    def test_ietf_named_policies(self) -> None:
        """The later drafts' named form picks the policy of the same name and its quota."""
        headers = {
            "RateLimit": '"day";r=50;t=30',
            "RateLimit-Policy": '"burst";q=100;w=60, "day";q=1000;w=86400',
        }
        expected = RateLimitHeaders(1000.0, 50.0, 30.0, request_window=86400.0, dialect="ietf")
        assert expected == parse_rate_limit_headers(headers)

    def test_ietf_early_drafts(self) -> None:
        """RateLimit-Limit: 100, 100;w=60 with its -Remaining and -Reset is 100 per minute."""
        headers = {
            "RateLimit-Limit": "100, 100;w=60, 1000;w=3600",
            "RateLimit-Remaining": "5",
            "RateLimit-Reset": "7",
        }
        expected = RateLimitHeaders(100.0, 5.0, 7.0, request_window=60.0, dialect="ietf")
        assert expected == parse_rate_limit_headers(headers)

    def test_ietf_window_never_guessed(self) -> None:
        """A limit no policy announces gets no window rather than another policy's."""
        headers = {"RateLimit": "limit=100, remaining=3, reset=1", "RateLimit-Policy": "10;w=1"}
        parsed = parse_rate_limit_headers(headers)
        assert (100.0, None, None) == (
            parsed.limit_requests,
            parsed.request_window,
            parsed.requests_per_minute,
        )

    def test_gemini_headers_say_nothing(self) -> None:
        """Gemini's responses carry no limit header: its dialect reads nothing, dialect None."""
        headers = {"x-request-id": "a", **OPENAI}
        assert RateLimitHeaders() == parse_rate_limit_headers(headers, dialect="gemini")


class TestGeminiRetryDelay:
    @pytest.mark.parametrize(
        "body",
        [
            GEMINI_429,  # the OpenAI-compatible endpoint wraps the error in a list
            GEMINI_429[0],  # the native API
            GEMINI_429[0]["error"],  # what the openai SDK keeps as exc.body
            json.dumps(GEMINI_429),  # the raw text
            json.dumps(GEMINI_429).encode(),
        ],
    )
    def test_retry_delay(self, body: object) -> None:
        """retryDelay "43s" of google.rpc.RetryInfo is 43 seconds, in every form of the body."""
        assert 43.0 == parse_retry_delay(body)

    @pytest.mark.parametrize(
        "body",
        [
            None,
            {},
            [],
            "not json",
            {"error": {"message": "Rate limit reached", "type": "requests"}},
            {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo"}]},
            {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": 4}]},
            {"details": [{"@type": "type.googleapis.com/google.rpc.Help", "retryDelay": "4s"}]},
            {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "?"}]},
        ],
    )
    def test_no_retry_delay(self, body: object) -> None:
        """A body without a readable google.rpc.RetryInfo delay gives None."""
        assert parse_retry_delay(body) is None


class TestNeverMisread:
    @pytest.mark.parametrize(("dialect", "headers"), sorted(SAMPLES.items()))
    def test_detected_as_named(self, dialect: str, headers: dict[str, str]) -> None:
        """Each provider's headers are detected as its own dialect and read as if named."""
        detected = parse_rate_limit_headers(httpx2.Headers(headers))
        assert (dialect, detected) == (
            detected.dialect,
            parse_rate_limit_headers(headers, dialect=dialect),
        )

    @pytest.mark.parametrize("dialect", ["groq", "together", "ietf"])
    def test_no_other_window_is_per_minute(self, dialect: str) -> None:
        """A per-day or per-second limit is never reported as that many per minute."""
        parsed = parse_rate_limit_headers(SAMPLES[dialect])
        assert parsed.limit_requests != parsed.requests_per_minute

    def test_a_named_dialect_reads_only_its_own_names(self) -> None:
        """Named plain, OpenAI's names are not read; named openai, Together's tokens are not."""
        plain = parse_rate_limit_headers(OPENAI, dialect="plain")
        openai = parse_rate_limit_headers(TOGETHER, dialect="openai")
        assert (RateLimitHeaders(), None, None) == (plain, openai.limit_tokens, openai.token_window)

    def test_exhausted_groq_pauses_until_its_reset(self) -> None:
        """A 429 of Groq with no requests left and no retry-after pauses until the day's reset."""
        headers = {**GROQ, "x-ratelimit-remaining-requests": "0"}
        assert 179.56 == server_pause(headers, dialect="groq")

    def test_nothing_to_read_is_the_shared_empty_value(self) -> None:
        """Headers without any limit give the one empty value, dialect None, fast."""
        assert parse_rate_limit_headers({}) is parse_rate_limit_headers({"x-request-id": "r"})
        assert parse_rate_limit_headers({"date": "x"}).dialect is None

    def test_unknown_dialect(self) -> None:
        """An unknown dialect is refused with a ValueError naming it."""
        with pytest.raises(ValueError, match="'klingon'"):
            parse_rate_limit_headers(OPENAI, dialect="klingon")

    def test_epoch_reset_of_plain(self) -> None:
        """A plain reset above 10^9 is a Unix time: seconds from now."""
        parsed = parse_rate_limit_headers({"x-ratelimit-reset": str(NOW + 30)}, now=lambda: NOW)
        assert (30.0, 60.0) == (parsed.reset_requests, parsed.request_window)


class TestProviderDialect:
    def test_profiles(self) -> None:
        """OpenAI's profile reads the openai dialect, Moonshot's the plain one, others detect."""
        profiles = [
            ProviderConfig.openai("k", environ={}),
            ProviderConfig.moonshot("k", environ={}),
            ProviderConfig.compatible("groq", "https://api.groq.com/openai/v1", "k", environ={}),
        ]
        assert ["openai", "plain", None] == [p.rate_limit_dialect for p in profiles]

    @pytest.mark.parametrize("dialect", RATE_LIMIT_DIALECTS)
    def test_every_dialect_is_accepted(self, dialect: str) -> None:
        """Every dialect the parser reads may be named in a provider's profile."""
        assert dialect == ProviderConfig(name="p", rate_limit_dialect=dialect).rate_limit_dialect

    @pytest.mark.parametrize("dialect", ["moonshot", "OpenAI", "", 60])
    def test_unknown_dialect_is_named(self, dialect: object) -> None:
        """An unknown dialect raises ConfigurationError naming rate_limit_dialect."""
        with pytest.raises(ConfigurationError) as caught:
            ProviderConfig(name="p", rate_limit_dialect=dialect)  # type: ignore[arg-type]
        assert "rate_limit_dialect" == caught.value.setting
