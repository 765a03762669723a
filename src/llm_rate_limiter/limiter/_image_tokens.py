# SPDX-License-Identifier: MIT
"""
What an image (or other non-text) content part of a chat request costs in tokens.

An ``image_url`` part (``{"type": "image_url", "image_url": {"url": ...,
"detail": "low" | "high" | "auto"}}``) is charged what OpenAI bills for a
GPT-4o-class model, never the length of its base64 text:

- ``detail: "low"``: `LOW_DETAIL_TOKENS` (85), whatever the size.
- ``"high"`` or ``"auto"`` (or no detail; ``auto`` is taken as high): the
  image is scaled to fit within 2048 x 2048, then so that its shortest side is
  768 px (only if longer); each 512 px tile of the result costs
  `TILE_TOKENS` (170), plus 85. The scaling is exact (no rounding), so a size
  on a tile border errs high.
- The size is read from a ``data:`` URI carrying a PNG (IHDR), JPEG (the SOFn
  marker; segments are skipped, not decoded, at most `JPEG_MAX_SEGMENTS` of
  them), GIF (logical screen descriptor) or WebP (VP8, VP8L, VP8X), decoding
  only the few base64 characters around each header. An ``https`` URL, another
  format or a truncated header costs `DEFAULT_IMAGE_TOKENS` (1445), the most a
  high-detail image can cost (768 x 2048 after scaling: 8 tiles), so the
  estimate never falls short.

Any other non-text part (``input_audio``, ``file``, ...) costs a flat
`OTHER_PART_TOKENS` (1000): its size says little about its tokens. The
limiter's reconciliation with ``usage.total_tokens`` corrects every guess.
Other models bill images differently (gpt-4o-mini 33 times these tokens,
newer models by 32 px patches); this module knows only the GPT-4o rule.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

__all__ = [
    "DEFAULT_IMAGE_TOKENS",
    "LOW_DETAIL_TOKENS",
    "OTHER_PART_TOKENS",
    "TILE_TOKENS",
    "high_detail_tokens",
    "image_size",
    "image_tokens",
    "part_tokens",
]

#: An image in low detail, and the base of every high-detail image.
LOW_DETAIL_TOKENS = 85
#: Each 512 px tile of a high-detail image.
TILE_TOKENS = 170
#: A high-detail image of unknown size: the most one can cost (8 tiles).
DEFAULT_IMAGE_TOKENS = LOW_DETAIL_TOKENS + 8 * TILE_TOKENS
#: A non-text, non-image part (audio, file): a flat guess.
OTHER_PART_TOKENS = 1000
#: JPEG segments skipped, at most, while looking for the frame header.
JPEG_MAX_SEGMENTS = 64

_FIT = 2048
_SHORT_SIDE = 768
_TILE = 512

_Read = Callable[[int, int], bytes]


def high_detail_tokens(width: int, height: int) -> int:
    """The tokens of a *width* x *height* image in high detail (both > 0)."""
    if width <= 0 or height <= 0:
        msg = f"image size must be positive, got {width}x{height}"
        raise ValueError(msg)
    w, h = Fraction(width), Fraction(height)
    fit = min(Fraction(1), Fraction(_FIT) / max(w, h))
    w, h = w * fit, h * fit
    short = min(w, h)
    if short > _SHORT_SIDE:
        w, h = w * _SHORT_SIDE / short, h * _SHORT_SIDE / short
    tiles = math.ceil(w / _TILE) * math.ceil(h / _TILE)
    return LOW_DETAIL_TOKENS + TILE_TOKENS * tiles


def image_tokens(url: Any, detail: Any = "auto") -> int:
    """The tokens of the image at *url* (a URL or ``data:`` URI) in *detail*."""
    if detail == "low":
        return LOW_DETAIL_TOKENS
    size = image_size(url) if isinstance(url, str) else None
    if size is None:
        return DEFAULT_IMAGE_TOKENS
    return high_detail_tokens(*size)


def part_tokens(part: Any) -> int | None:
    """
    The tokens of a non-text content part, or None for a text part.

    Text parts (a ``text`` string, ``type`` ``text`` or ``refusal``, or no
    ``type`` at all) are left to the text estimate.
    """
    if not isinstance(part, Mapping) or isinstance(part.get("text"), str):
        return None
    kind = part.get("type")
    if not isinstance(kind, str) or kind in ("text", "refusal"):
        return None
    if kind != "image_url":
        return OTHER_PART_TOKENS
    image = part.get("image_url")
    if isinstance(image, Mapping):
        return image_tokens(image.get("url"), image.get("detail", "auto"))
    return image_tokens(image)


def image_size(url: str) -> tuple[int, int] | None:
    """The (width, height) of a PNG, JPEG, GIF or WebP ``data:`` URI, or None."""
    read = _data_reader(url)
    if read is None:
        return None
    head = read(0, 30)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        size = _png(head)
    elif head.startswith(b"\xff\xd8"):
        size = _jpeg(read)
    elif head.startswith((b"GIF87a", b"GIF89a")):
        size = _gif(head)
    elif head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        size = _webp(head)
    else:
        size = None
    if size is None or min(size) <= 0:
        return None
    return size


def _data_reader(url: str) -> _Read | None:
    """Random access to the bytes of a base64 ``data:`` URI, decoding only what is read."""
    if url[:5].lower() != "data:":
        return None
    header, comma, payload = url.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        return None
    if any(space in payload for space in " \t\r\n"):
        payload = "".join(payload.split())

    def read(offset: int, size: int) -> bytes:
        # Every 4 characters are 3 bytes: decode whole quads around the range.
        first = offset // 3
        last = min(math.ceil((offset + size) / 3), len(payload) // 4)
        if first >= last:
            return b""
        try:
            data = base64.b64decode(payload[4 * first : 4 * last], validate=True)
        except ValueError:  # binascii.Error included
            return b""
        return data[offset - 3 * first : offset - 3 * first + size]

    return read


def _png(head: bytes) -> tuple[int, int] | None:
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _gif(head: bytes) -> tuple[int, int] | None:
    if len(head) < 10:
        return None
    width, height = struct.unpack("<HH", head[6:10])
    return width, height


def _webp(head: bytes) -> tuple[int, int] | None:
    if len(head) < 30:
        return None
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    return None


#: JPEG markers that start a frame (SOF0-SOF15 but DHT, JPG and DAC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers with no length field: TEM, RST0-RST7.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _jpeg(read: _Read) -> tuple[int, int] | None:
    """Walk the segments after SOI to the frame header; None at the scan, the end or a bad byte."""
    offset = 2
    for _ in range(JPEG_MAX_SEGMENTS):
        marker = read(offset, 4)
        if len(marker) < 4 or marker[0] != 0xFF:
            return None
        if marker[1] == 0xFF:  # a fill byte
            offset += 1
            continue
        if marker[1] in _STANDALONE:
            offset += 2
            continue
        if marker[1] in _SOF:
            frame = read(offset + 5, 4)
            if len(frame) < 4:
                return None
            height, width = struct.unpack(">HH", frame)
            return width, height
        if marker[1] in (0xD9, 0xDA):  # EOI or SOS before any frame
            return None
        offset += 2 + int.from_bytes(marker[2:4], "big")
    return None
