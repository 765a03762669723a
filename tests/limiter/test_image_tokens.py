# SPDX-License-Identifier: MIT
"""Token estimates of image and other non-text content parts."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import struct
import zlib
from typing import Any

import pytest
import tiktoken
from PIL import Image

from llm_rate_limiter import ProviderConfig
from llm_rate_limiter.limiter import (
    ProviderLimiter,
    _image_tokens,
    _tokens,
    estimate_request_tokens,
    estimate_tokens,
)
from llm_rate_limiter.limiter._image_tokens import image_size

pytestmark = pytest.mark.anyio

#: A message with empty content costs 3 (reply) + 4 (message) + 2 ("user").
EMPTY = 3 + 4 + 2
PROMPT = "What is in this image?"  # 22 characters: 8 tokens


@pytest.fixture(autouse=True)
def _fresh_encoders():
    """Forget cached encoders around each test."""
    _tokens._ENCODERS.clear()
    yield
    _tokens._ENCODERS.clear()


def _data_uri(data: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64," + base64.b64encode(data).decode()


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk (8-bit RGB): all a reader of the size needs."""
    body = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body))


def _pillow(fmt: str, size: tuple[int, int], **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(buffer, fmt, **options)
    return buffer.getvalue()


def _image(url: Any, detail: str | None = None) -> dict[str, Any]:
    image: dict[str, Any] = {"url": url}
    if detail is not None:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def _cost(*parts: Any) -> int:
    """What *parts* add to a one-message request."""
    return estimate_tokens([{"role": "user", "content": list(parts)}]) - EMPTY


class TestDetailRule:
    @pytest.mark.parametrize(
        ("width", "height", "detail", "expected"),
        [
            (100, 100, "low", 85),
            (4096, 8192, "low", 85),
            (1, 1, "high", 85 + 170),
            (512, 512, "high", 255),
            (513, 512, "high", 85 + 2 * 170),  # a pixel over a tile border is one more column
            (1024, 1024, "high", 765),
            (1024, 1024, "auto", 765),
            (1024, 1024, None, 765),  # no detail is auto
            (2048, 4096, "high", 1105),
            (4096, 8192, "high", 1105),
            (1920, 1080, "high", 85 + 6 * 170),  # 1365 x 768: 3 x 2 tiles
            (768, 2048, "high", 85 + 8 * 170),  # the most an image can cost
            (700, 700, "high", 85 + 4 * 170),  # a short side under 768 is not scaled up
            (512, 4096, "high", 85 + 4 * 170),  # fitted to 256 x 2048 first
        ],
    )
    def test_table(self, width, height, detail, expected):
        """An image part costs 85 in low detail, else 170 per 512 px tile after scaling, plus 85."""
        assert expected == _cost(_image(_data_uri(_png_header(width, height)), detail))

    @pytest.mark.parametrize(
        ("width", "height", "detail", "expected"),
        [(1024, 1024, "high", 765), (2048, 4096, "high", 1105), (4096, 8192, "low", 85)],
    )
    def test_openai_published_examples(self, width, height, detail, expected):
        """OpenAI's vision guide: 1024x1024 high 765, 2048x4096 high 1105, 4096x8192 low 85."""
        assert expected == _cost(_image(_data_uri(_png_header(width, height)), detail))


class TestFormats:
    @pytest.mark.parametrize(
        ("fmt", "options", "media"),
        [
            ("PNG", {}, "image/png"),
            ("JPEG", {}, "image/jpeg"),
            ("JPEG", {"progressive": True}, "image/jpeg"),
            ("GIF", {}, "image/gif"),
            ("WEBP", {"lossless": True}, "image/webp"),  # VP8L
            ("WEBP", {"quality": 50}, "image/webp"),  # VP8
            ("WEBP", {"exif": b"Exif\x00\x00II*\x00"}, "image/webp"),  # VP8X
        ],
    )
    def test_real_image_size(self, fmt, options, media):
        """The size of a real image is read from its data URI: 1030x20 is 3 x 1 tiles."""
        url = _data_uri(_pillow(fmt, (1030, 20), **options), media)
        assert ((1030, 20), 85 + 3 * 170) == (image_size(url), _cost(_image(url, "high")))

    def test_webp_chunk_kinds(self):
        """The three WebP cases above really are VP8L, VP8 and VP8X files."""
        kinds = [
            _pillow("WEBP", (8, 8), **options)[12:16]
            for options in ({"lossless": True}, {"quality": 50}, {"exif": b"Exif\x00\x00II*\x00"})
        ]
        assert [b"VP8L", b"VP8 ", b"VP8X"] == kinds

    def test_format_read_from_bytes_not_media_type(self):
        """A JPEG labelled image/png still has its size read."""
        url = _data_uri(_pillow("JPEG", (600, 40)), "image/png")
        assert (600, 40) == image_size(url)

    def test_jpeg_segments_skipped_not_decoded(self, monkeypatch):
        """A JPEG whose frame header follows 200 KB of ICC profile is sized decoding < 1 KB."""
        data = _pillow("JPEG", (1030, 20), icc_profile=b"x" * 200_000)
        decoded: list[int] = []
        b64decode = base64.b64decode

        def counting(text: str, validate: bool = False) -> bytes:
            decoded.append(len(text))
            return b64decode(text, validate=validate)

        monkeypatch.setattr(_image_tokens.base64, "b64decode", counting)
        assert (1030, 20) == image_size(_data_uri(data, "image/jpeg"))
        assert data.index(b"\xff\xc0") > 200_000
        assert sum(decoded) < 1000

    def test_jpeg_fill_bytes(self):
        """Fill bytes (0xFF) before a JPEG marker are skipped."""
        data = _pillow("JPEG", (1030, 20))
        assert (1030, 20) == image_size(_data_uri(data[:2] + b"\xff\xff" + data[2:]))

    def test_line_breaks_in_base64(self):
        """Base64 wrapped in lines still gives the size."""
        text = base64.encodebytes(_pillow("JPEG", (1030, 20))).decode()
        assert (1030, 20) == image_size("data:image/jpeg;base64," + text)


class TestUnknownSize:
    @pytest.mark.parametrize(
        "url",
        [
            "https://example.com/cat.png",
            _data_uri(_pillow("BMP", (10, 10)), "image/bmp"),
            _data_uri(_png_header(10, 10)[:20]),  # truncated in IHDR
            _data_uri(_pillow("JPEG", (10, 10), icc_profile=b"x" * 5000)[:3000], "image/jpeg"),
            "data:image/png," + base64.b64encode(_png_header(10, 10)).decode(),  # not ;base64
            "data:image/png;base64,!!!!" + "A" * 40,
            "data:image/png;base64,",
        ],
        ids=["https", "bmp", "png-cut", "jpeg-cut", "not-base64", "bad-base64", "empty"],
    )
    def test_default(self, url):
        """An image whose size is unknown costs the high-detail maximum, 1445, or 85 in low."""
        assert (None, 1445, 85) == (image_size(url), _cost(_image(url)), _cost(_image(url, "low")))

    def test_url_as_string(self):
        """An image_url given as a bare string costs the default."""
        assert 1445 == _cost({"type": "image_url", "image_url": "https://example.com/a.png"})


class TestOtherParts:
    def test_audio_and_file_flat(self):
        """An input_audio or file part costs a flat 1000, however long its base64."""
        audio = {"type": "input_audio", "input_audio": {"data": "A" * 300_000, "format": "wav"}}
        file = {"type": "file", "file": {"file_data": "data:application/pdf;base64," + "A" * 9}}
        assert (1000, 1000) == (_cost(audio), _cost(file))

    def test_text_parts_counted_together_around_media(self):
        """Text parts around an image are counted as one text, as without the image."""
        text = [{"type": "text", "text": "abcd"}, {"type": "text", "text": "ef"}]
        image = _image("https://example.com/a.png", "low")
        assert _cost(*text) + 85 == _cost(text[0], image, text[1])
        assert 2 == _cost(*text)

    def test_tool_calls_still_text(self):
        """Typed mappings outside content (tool calls) are still counted as their JSON."""
        call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        message = {"role": "assistant", "tool_calls": [call]}
        expected = 3 + 4 + 3 + math.ceil(len(json.dumps(call)) / 3)
        assert expected == estimate_tokens([message])

    def test_with_tiktoken(self, monkeypatch):
        """With a tiktoken encoding an image part still costs 85 in low detail, not its text."""
        encoding = tiktoken.Encoding(
            name="bytes",
            pat_str=r"[\s\S]",
            mergeable_ranks={bytes([i]): i for i in range(256)},
            special_tokens={},
        )
        monkeypatch.setattr(tiktoken, "encoding_for_model", lambda model: encoding)
        url = _data_uri(_png_header(4096, 4096))
        content = [{"type": "text", "text": "hi"}, _image(url, "low")]
        assert 3 + 4 + 4 + 2 + 85 == estimate_tokens([{"role": "user", "content": content}], "m")


class TestLargeImage:
    async def test_600_kb_low_detail_admitted(self):
        """A ~600 KB low-detail image costs 85 + text and the OpenAI profile admits it."""
        noise = Image.frombytes("RGB", (400, 376), os.urandom(400 * 376 * 3))
        buffer = io.BytesIO()
        noise.save(buffer, "PNG")
        url = _data_uri(buffer.getvalue())
        limits = ProviderConfig.openai(api_key="sk-x", environ={}).limits
        assert limits is not None
        messages = [
            {"role": "user", "content": [{"type": "text", "text": PROMPT}, _image(url, "low")]}
        ]
        estimate = estimate_request_tokens(messages, completion_tokens=limits.completion_tokens)
        # As text the base64 alone would be over the whole bucket.
        assert estimate_tokens(url) > limits.max_request_tokens > 100 * estimate
        assert EMPTY + 8 + 85 + 256 == estimate
        limiter = ProviderLimiter(limits)
        async with limiter.acquire(estimate):
            pass
        assert 1 == limiter.statistics().admitted
