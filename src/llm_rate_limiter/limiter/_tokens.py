# SPDX-License-Identifier: MIT
"""
Estimate the token cost of a chat request before sending it.

With tiktoken installed (the ``tokens`` extra) and a model it knows, prompts
are counted with the model's encoding, as OpenAI's cookbook counts chat
messages. tiktoken downloads its encoding files on first use; this module
never lets it: when an encoding is not already cached locally (or anything
else fails) the model falls back, silently and for good, to a heuristic that
errs high: ``ceil(characters / 3)`` per text, plus 4 per message and 3 for the
reply's priming. English averages about 4 characters per token, so the
heuristic overestimates by roughly a third; the limiter's reconciliation with
``usage.total_tokens`` gives the difference back.

Image parts of a message's content cost what the provider bills for them, not
their base64 text, and audio or file parts a flat default (see
`_image_tokens`); the text parts of the content are counted together, as one
text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._image_tokens import part_tokens

__all__ = ["estimate_request_tokens", "estimate_tokens"]

#: Tokens each message adds around its content (role, separators).
PER_MESSAGE = 4
#: Tokens that prime the reply.
PER_REPLY = 3
#: Characters per token assumed by the heuristic (low, so that it errs high).
CHARS_PER_TOKEN = 3

_Encode = Callable[[str], int]
# model -> encoder, or None when the heuristic must be used for that model.
_ENCODERS: dict[str, _Encode | None] = {}


def _heuristic(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _load_encoder(model: str) -> _Encode | None:
    try:
        import tiktoken
        import tiktoken.load
    except ImportError:
        return None

    def _no_download(blobpath: str) -> bytes:
        msg = f"llm_rate_limiter never downloads tiktoken files ({blobpath})"
        raise OSError(msg)

    # tiktoken reads from its cache directory first and calls read_file only
    # on a cache miss; replace the downloader while the encoding loads.
    original = tiktoken.load.read_file
    tiktoken.load.read_file = _no_download
    try:
        encoding = tiktoken.encoding_for_model(model)
        encoding.encode("ok")
    except Exception:
        return None
    finally:
        tiktoken.load.read_file = original

    def encode(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    return encode


def _encoder(model: str | None) -> _Encode | None:
    if model is None:
        return None
    try:
        return _ENCODERS[model]
    except KeyError:
        encoder = _ENCODERS[model] = _load_encoder(model)
        return encoder


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable) and not isinstance(content, Mapping | bytes):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                parts.append(_text(part))
        return "".join(parts)
    try:
        return json.dumps(content, default=str)
    except (TypeError, ValueError):
        return str(content)


def _content(content: Any, encode: _Encode) -> int:
    """A message's content: its text parts as one text, the other parts at their own cost."""
    if not isinstance(content, Iterable) or isinstance(content, str | Mapping | bytes):
        return encode(_text(content))
    texts = []
    media = 0
    for part in content:
        cost = part_tokens(part)
        if cost is not None:
            media += cost
        elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            texts.append(_text(part))
    return encode("".join(texts)) + media


def estimate_tokens(messages: Iterable[Mapping[str, Any]] | str, model: str | None = None) -> int:
    """
    Estimate the prompt tokens of *messages* (or of a plain string).

    Uses tiktoken for a model it knows when its encoding is available
    offline; else ``ceil(characters / 3)`` per text plus 4 per message and 3
    for the reply, which errs high. An ``image_url`` content part costs what
    OpenAI bills a GPT-4o-class model (85 tokens in low detail, 170 per
    512 px tile plus 85 in high; an image of unknown size 1445), any other
    non-text part (``input_audio``, ``file``) a flat 1000.

    Args:
        messages: Chat messages (mappings with ``role``, ``content`` and
            optionally ``name``, ``tool_calls``), or a plain prompt string.
        model: The model name, to pick tiktoken's encoding.

    Returns:
        The estimated prompt tokens.

    .. versionadded:: 0.1.0
    """
    encode = _encoder(model) or _heuristic
    if isinstance(messages, str):
        return encode(messages)
    total = PER_REPLY
    for message in messages:
        total += PER_MESSAGE
        for key, value in message.items():
            if value is None:
                continue
            total += _content(value, encode) if key == "content" else encode(_text(value))
            if key == "name":
                total += 1
    return total


def estimate_request_tokens(
    messages: Iterable[Mapping[str, Any]] | str,
    *,
    model: str | None = None,
    max_tokens: int | None = None,
    completion_tokens: int = 256,
) -> int:
    """
    Estimate a request's whole token cost: its prompt plus its completion.

    Args:
        messages: The chat messages (or a prompt string).
        model: The model name.
        max_tokens: The request's ``max_tokens`` / ``max_completion_tokens``;
            the completion can use no more.
        completion_tokens: The completion allowance when *max_tokens* is None.

    Returns:
        Prompt tokens plus *max_tokens* (or the allowance).

    .. versionadded:: 0.1.0
    """
    completion = completion_tokens if max_tokens is None else max_tokens
    return estimate_tokens(messages, model) + max(0, completion)
