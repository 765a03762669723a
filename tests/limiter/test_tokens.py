# SPDX-License-Identifier: MIT
from __future__ import annotations

from typing import Any

import pytest
import tiktoken
import tiktoken.load

from llm_rate_limiter.limiter import _tokens, estimate_request_tokens, estimate_tokens


@pytest.fixture(autouse=True)
def _fresh_encoders():
    """Forget cached encoders around each test."""
    _tokens._ENCODERS.clear()
    yield
    _tokens._ENCODERS.clear()


def _byte_encoding() -> tiktoken.Encoding:
    """A tiktoken encoding built offline: one token per byte."""
    return tiktoken.Encoding(
        name="bytes",
        pat_str=r"[\s\S]",
        mergeable_ranks={bytes([i]): i for i in range(256)},
        special_tokens={},
    )


class TestHeuristic:
    def test_plain_string(self):
        """A string costs ceil(characters / 3) tokens."""
        assert 4 == estimate_tokens("abcdefghij")

    def test_messages(self):
        """Each message adds 4 tokens, every text ceil(chars / 3), the reply 3."""
        messages = [
            {"role": "system", "content": "You are terse."},  # 6 + 5
            {"role": "user", "content": "Hello there!", "name": "bob"},  # 4 + 4 + 1 + 1
        ]
        expected = 3 + (4 + 2 + 5) + (4 + 2 + 4 + 1 + 1)
        assert expected == estimate_tokens(messages)

    def test_content_parts_and_none(self):
        """Text parts of multi-part content are counted; None values cost nothing."""
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": [{"type": "text", "text": "abcdef"}]},
            {"role": "assistant", "content": None},
        ]
        expected = 3 + (4 + 2 + 2) + (4 + 3)
        assert expected == estimate_tokens(messages)

    @pytest.mark.parametrize(
        ("text", "known", "heuristic"),
        [
            # cl100k_base counts from OpenAI's cookbook ("How to count tokens with tiktoken");
            # the heuristic is ceil(characters / 3): 18 and 28 characters.
            ("tiktoken is great!", 6, 6),
            ("antidisestablishmentarianism", 6, 10),
        ],
    )
    def test_errs_high_against_a_known_count(self, text, known, heuristic):
        """The heuristic is ceil(chars / 3): at or above the true count, below twice it."""
        estimate = estimate_tokens(text)
        assert heuristic == estimate
        assert known <= estimate < 2 * known

    def test_unknown_model_falls_back(self):
        """A model tiktoken does not know uses the heuristic, and the decision is cached."""
        assert 4 == estimate_tokens("abcdefghij", model="no-such-model-xyz")
        assert _tokens._ENCODERS["no-such-model-xyz"] is None


class TestTiktoken:
    def test_never_downloads(self, tmp_path, monkeypatch):
        """With an empty tiktoken cache the library refuses the download and uses the heuristic."""
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
        downloads: list[str] = []
        refusals: list[str] = []

        def downloader(blobpath: str) -> bytes:
            downloads.append(blobpath)
            raise OSError(blobpath)

        read_file_cached = tiktoken.load.read_file_cached

        def watched(blobpath: str, expected_hash: str | None = None) -> bytes:
            try:
                return read_file_cached(blobpath, expected_hash)
            except OSError as exc:
                refusals.append(str(exc))
                raise

        monkeypatch.setattr(tiktoken.load, "read_file", downloader)
        monkeypatch.setattr(tiktoken.load, "read_file_cached", watched)
        assert 4 == estimate_tokens("abcdefghij", model="gpt-4o-mini")
        assert _tokens._ENCODERS["gpt-4o-mini"] is None
        # tiktoken really went for gpt-4o-mini's file and met the library's refusal.
        assert ([], 1) == (downloads, len(refusals))
        assert refusals[0].startswith("llm_rate_limiter never downloads tiktoken files")
        assert "o200k_base.tiktoken" in refusals[0]
        assert [] == list(tmp_path.iterdir())
        # Afterwards tiktoken's own reader is back: a later read reaches it.
        with pytest.raises(OSError, match="after"):
            tiktoken.load.read_file("after")
        assert ["after"] == downloads

    def test_known_model_counts_with_its_encoding(self, monkeypatch):
        """A model whose encoding loads offline is counted with it (here one token per byte)."""
        monkeypatch.setattr(tiktoken, "encoding_for_model", lambda model: _byte_encoding())
        assert 10 == estimate_tokens("abcdefghij", model="gpt-test")
        messages = [{"role": "user", "content": "hello"}]
        assert 3 + 4 + 4 + 5 == estimate_tokens(messages, model="gpt-test")

    def test_encoder_cached(self, monkeypatch):
        """The encoder of a model is loaded once."""
        loads: list[str] = []

        def load(model: str) -> tiktoken.Encoding:
            loads.append(model)
            return _byte_encoding()

        monkeypatch.setattr(tiktoken, "encoding_for_model", load)
        estimate_tokens("a", model="gpt-test")
        estimate_tokens("b", model="gpt-test")
        assert ["gpt-test"] == loads


class TestRequestTokens:
    def test_max_tokens_added(self):
        """The request's max_tokens is added to the prompt estimate."""
        assert 4 + 100 == estimate_request_tokens("abcdefghij", max_tokens=100)

    def test_allowance_without_max_tokens(self):
        """Without max_tokens the completion allowance is added."""
        assert 4 + 64 == estimate_request_tokens("abcdefghij", completion_tokens=64)

    def test_default_allowance(self):
        """The default allowance is 256 tokens."""
        assert 4 + 256 == estimate_request_tokens("abcdefghij")
