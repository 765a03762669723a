# SPDX-License-Identifier: MIT
from __future__ import annotations

import asyncio
import functools
import json

import anyio
import httpx2
import openai
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from llm_rate_limiter import (
    CircuitOpenError,
    ConfigurationError,
    RateLimitTimeoutError,
    RequestTooLargeError,
    RetryErrorType,
    classify_error,
    classify_error_for_retry,
    classify_status,
    is_quota_error,
    is_retryable,
)

E = RetryErrorType
REQUEST = httpx2.Request("POST", "https://api.example.test/v1/chat/completions")

STATUS_CLASSES: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
    500: openai.InternalServerError,
    502: openai.InternalServerError,
    503: openai.InternalServerError,
}


def sdk_error(
    status: int, body: object, headers: dict[str, str] | None = None
) -> openai.APIStatusError:
    """Build the exception exactly as the SDK does from a real HTTP response."""
    response = httpx2.Response(
        status, headers=headers or {}, content=json.dumps(body).encode(), request=REQUEST
    )
    client = openai.AsyncOpenAI(api_key="sk-test", base_url="https://api.example.test/v1")
    err = client._make_status_error_from_response(response)
    assert status == err.status_code
    return err


def openai_body(code: str | None, type_: str | None) -> dict[str, object]:
    return {"error": {"message": "m", "type": type_, "param": None, "code": code}}


def moonshot_body(type_: str) -> dict[str, object]:
    return {"error": {"message": "m", "type": type_}}


class TestStatusErrors:
    @pytest.mark.parametrize(
        ("status", "body", "expected"),
        [
            (429, openai_body("rate_limit_exceeded", "requests"), E.RATE_LIMIT),
            (429, openai_body("rate_limit_exceeded", "tokens"), E.RATE_LIMIT),
            (429, openai_body("insufficient_quota", "insufficient_quota"), E.PERMANENT),
            (429, openai_body(None, "insufficient_quota"), E.PERMANENT),
            (429, moonshot_body("rate_limit_reached_error"), E.RATE_LIMIT),
            (429, moonshot_body("engine_overloaded_error"), E.RATE_LIMIT),
            (429, moonshot_body("exceeded_current_quota_error"), E.PERMANENT),
            (401, openai_body("invalid_api_key", "invalid_request_error"), E.AUTHENTICATION),
            (401, moonshot_body("invalid_authentication_error"), E.AUTHENTICATION),
            (403, openai_body(None, "permission_error"), E.AUTHENTICATION),
            (400, openai_body("context_length_exceeded", "invalid_request_error"), E.PERMANENT),
            (404, openai_body("model_not_found", "invalid_request_error"), E.PERMANENT),
            (409, openai_body(None, None), E.PERMANENT),
            (422, openai_body(None, None), E.PERMANENT),
            (500, openai_body(None, "server_error"), E.SERVER_ERROR),
            (502, {"error": "bad gateway"}, E.SERVER_ERROR),
            (503, moonshot_body("engine_overloaded_error"), E.SERVER_ERROR),
        ],
    )
    def test_sdk_status_errors(self, status: int, body: object, expected: RetryErrorType) -> None:
        """Each SDK exception, built from a real response, gets its classification."""
        err = sdk_error(status, body)
        assert isinstance(err, STATUS_CLASSES[status])
        assert expected == classify_error(err)

    @pytest.mark.parametrize("status", [408, 418, 451, 504, 520, 599])
    def test_plain_status_errors(self, status: int) -> None:
        """Statuses without their own SDK class classify by number."""
        err = sdk_error(status, openai_body(None, None))
        expected = E.TIMEOUT if status == 408 else E.PERMANENT if status < 500 else E.SERVER_ERROR
        assert expected == classify_error(err)

    def test_should_retry_false_overrides(self) -> None:
        """x-should-retry: false makes a retryable status permanent."""
        err = sdk_error(503, openai_body(None, None), {"x-should-retry": "false"})
        assert E.PERMANENT == classify_error(err)

    def test_should_retry_true_overrides(self) -> None:
        """x-should-retry: true makes a refusal retryable."""
        err = sdk_error(409, openai_body(None, None), {"x-should-retry": "true"})
        assert is_retryable(classify_error(err))

    def test_text_body(self) -> None:
        """A non-JSON error body still classifies by status."""
        response = httpx2.Response(502, content=b"<html>bad gateway</html>", request=REQUEST)
        err = openai.InternalServerError("Error code: 502", response=response, body=None)
        assert E.SERVER_ERROR == classify_error(err)


class TestOtherErrors:
    @pytest.mark.parametrize(
        ("exc", "expected"),
        [
            (openai.APITimeoutError(request=REQUEST), E.TIMEOUT),
            (openai.APIConnectionError(request=REQUEST), E.TRANSIENT_NETWORK),
            (httpx2.ConnectError("refused", request=REQUEST), E.TRANSIENT_NETWORK),
            (httpx2.ReadError("reset", request=REQUEST), E.TRANSIENT_NETWORK),
            (httpx2.RemoteProtocolError("closed", request=REQUEST), E.TRANSIENT_NETWORK),
            (httpx2.ReadTimeout("slow", request=REQUEST), E.TIMEOUT),
            (httpx2.PoolTimeout("pool", request=REQUEST), E.TIMEOUT),
            (TimeoutError(), E.TIMEOUT),
            (asyncio.TimeoutError(), E.TIMEOUT),  # noqa: UP041 -- the alias is what users catch
            (ConnectionResetError(), E.TRANSIENT_NETWORK),
            (ConnectionRefusedError(), E.TRANSIENT_NETWORK),
            (OSError("network unreachable"), E.TRANSIENT_NETWORK),
            (anyio.BrokenResourceError(), E.TRANSIENT_NETWORK),
            (anyio.EndOfStream(), E.TRANSIENT_NETWORK),
            (json.JSONDecodeError("x", "doc", 0), E.SERVER_ERROR),
            (CircuitOpenError("openai", 3.0), E.SERVER_ERROR),
            (RateLimitTimeoutError("openai", 5.0, 1.0), E.RATE_LIMIT),
            (RequestTooLargeError("openai", 10_000, 1_000), E.PERMANENT),
            (ConfigurationError("rpm", "bad"), E.PERMANENT),
            (ValueError("x"), E.UNKNOWN),
            (KeyError("x"), E.UNKNOWN),
            (asyncio.CancelledError(), E.UNKNOWN),
        ],
    )
    def test_classification(self, exc: BaseException, expected: RetryErrorType) -> None:
        """Network, timeout, library and unknown errors map to their kinds."""
        assert expected == classify_error(exc)

    def test_connection_error_caused_by_timeout(self) -> None:
        """An APIConnectionError whose cause is a timeout is a TIMEOUT."""
        err = openai.APIConnectionError(request=REQUEST)
        err.__cause__ = httpx2.ReadTimeout("slow", request=REQUEST)
        assert E.TIMEOUT == classify_error(err)

    def test_seed_alias(self) -> None:
        """The seed's name is the same function."""
        assert classify_error is classify_error_for_retry


class TestRetryable:
    def test_default_set(self) -> None:
        """Transient network, rate limit, timeout and server errors are retryable."""
        retryable = {kind for kind in E if is_retryable(kind)}
        assert {E.TRANSIENT_NETWORK, E.RATE_LIMIT, E.TIMEOUT, E.SERVER_ERROR} == retryable

    def test_seed_values(self) -> None:
        """The enum keeps the seed's seven values."""
        assert [
            "transient_network",
            "rate_limit",
            "timeout",
            "server_error",
            "authentication",
            "permanent",
            "unknown",
        ] == [kind.value for kind in E]

    @pytest.mark.parametrize(
        ("status", "expected"),
        [(200, E.UNKNOWN), (301, E.UNKNOWN), (408, E.TIMEOUT), (429, E.RATE_LIMIT)],
    )
    def test_classify_status(self, status: int, expected: RetryErrorType) -> None:
        """classify_status maps bare statuses."""
        assert expected == classify_status(status)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    status=st.integers(min_value=100, max_value=999),
    body=json_values,
    headers=st.dictionaries(
        st.sampled_from(["x-should-retry", "retry-after", "content-type"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=10),
        max_size=3,
    ),
)
def test_classify_never_raises_on_any_response(
    status: int, body: object, headers: dict[str, str]
) -> None:
    """classify_error returns a kind for any status, body and headers."""
    response = httpx2.Response(status, headers=headers, json=body, request=REQUEST)
    err = openai.APIStatusError("m", response=response, body=body)
    assert isinstance(classify_error(err), RetryErrorType)


#: The kinds retried by default (DESIGN.md): the oracle below does not read the library's set.
RETRYABLE = {E.TRANSIENT_NETWORK, E.RATE_LIMIT, E.TIMEOUT, E.SERVER_ERROR}
QUOTA = ("insufficient_quota", "exceeded_current_quota_error")
error_words = st.sampled_from(
    [
        None,
        *QUOTA,
        "rate_limit_exceeded",
        "rate_limit_reached_error",
        "invalid_api_key",
        "invalid_request_error",
        "context_length_exceeded",
        "server_error",
        "engine_overloaded_error",
    ]
)


@functools.cache
def _sdk_client() -> openai.AsyncOpenAI:
    """One SDK client to build errors with (building one per example is slow)."""
    return openai.AsyncOpenAI(api_key="sk-test", base_url="https://api.example.test/v1")


def expected_kind(status: int, code: object, type_: object, should_retry: str | None) -> E:
    """DESIGN.md's classification of an HTTP error, restated independently."""
    if status == 429:
        kind = E.PERMANENT if code in QUOTA or type_ in QUOTA else E.RATE_LIMIT
    elif status >= 500:
        kind = E.SERVER_ERROR
    elif status == 408:
        kind = E.TIMEOUT
    elif status in (401, 403):
        kind = E.AUTHENTICATION
    else:
        kind = E.PERMANENT
    if should_retry == "false" and kind in RETRYABLE:
        return E.PERMANENT
    if should_retry == "true" and kind not in RETRYABLE:
        return E.SERVER_ERROR
    return kind


@example(status=429, code=None, type_=QUOTA[1], moonshot=True, should_retry=None)
@example(status=429, code=QUOTA[0], type_=None, moonshot=False, should_retry="true")
@example(status=503, code=None, type_=None, moonshot=True, should_retry="false")
@given(
    status=st.sampled_from([400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504])
    | st.integers(min_value=400, max_value=599),
    code=error_words,
    type_=error_words,
    moonshot=st.booleans(),
    should_retry=st.sampled_from([None, "true", "false", "maybe"]),
)
def test_classify_real_error_responses(
    status: int, code: str | None, type_: str | None, moonshot: bool, should_retry: str | None
) -> None:
    """Any well-formed OpenAI or Moonshot error response, built by the SDK, gets the kind its
    status, error code and type, and x-should-retry header call for."""
    body = moonshot_body(type_ or "error") if moonshot else openai_body(code, type_)
    headers = {} if should_retry is None else {"x-should-retry": should_retry}
    response = httpx2.Response(
        status, headers=headers, content=json.dumps(body).encode(), request=REQUEST
    )
    err = _sdk_client()._make_status_error_from_response(response)
    inner = body["error"]
    assert isinstance(inner, dict)
    expected = expected_kind(status, inner.get("code"), inner.get("type"), should_retry)
    assert expected == classify_error(err)
    quota = status == 429 and (inner.get("code") in QUOTA or inner.get("type") in QUOTA)
    assert quota == is_quota_error(err)


messages = st.text(max_size=40) | st.sampled_from(
    ["timed out", "429 Too Many Requests", "rate limit exceeded", "insufficient_quota", "503"]
)
EXCEPTIONS = [
    (Exception, E.UNKNOWN),
    (RuntimeError, E.UNKNOWN),
    (ValueError, E.UNKNOWN),
    (OSError, E.TRANSIENT_NETWORK),
    (ConnectionResetError, E.TRANSIENT_NETWORK),
    (TimeoutError, E.TIMEOUT),
    (lambda text: json.JSONDecodeError(text, text, 0), E.SERVER_ERROR),
    (lambda text: httpx2.ReadTimeout(text, request=REQUEST), E.TIMEOUT),
    (lambda text: httpx2.ConnectError(text, request=REQUEST), E.TRANSIENT_NETWORK),
    (lambda text: httpx2.RemoteProtocolError(text, request=REQUEST), E.TRANSIENT_NETWORK),
    (lambda text: openai.APIConnectionError(message=text, request=REQUEST), E.TRANSIENT_NETWORK),
]


@given(text=messages, case=st.sampled_from(EXCEPTIONS))
def test_classify_by_type_never_by_message(text: str, case: tuple[object, E]) -> None:
    """An exception is classified by its type: no message, however suggestive, changes it."""
    make, expected = case
    assert callable(make)
    assert expected == classify_error(make(text))


@given(st.text())
def test_classify_never_raises_on_arbitrary_exceptions(text: str) -> None:
    """classify_error accepts arbitrary exceptions."""
    for exc in (Exception(text), RuntimeError(text), OSError(text), TimeoutError(text)):
        assert isinstance(classify_error(exc), RetryErrorType)
