# SPDX-License-Identifier: MIT
"""
Redis key names: one hash slot per provider and API key.

Every key of one provider (and one API key) carries the same hash tag,
``{service}`` or ``{service:fingerprint}``, so every script's keys live in
one Redis Cluster hash slot (one shard). The fingerprint is a short hash of
the API key, never the key: two keys of one provider get two budgets, one
key used from many processes gets one.
"""

from __future__ import annotations

import hashlib

from ..exceptions import ConfigurationError

__all__ = ["key_fingerprint", "service_key"]


def key_fingerprint(api_key: str | None) -> str | None:
    """
    A short, stable fingerprint of *api_key* for key names (12 hex digits of SHA-256).

    Returns:
        None for no key (the keys then carry the service name only).
    """
    if not api_key:
        return None
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:12]


def service_key(prefix: str, service: str, name: str, fingerprint: str | None = None) -> str:
    """
    The key *name* of *service*, e.g. ``llmrl:{openai}:tok`` or ``llmrl:{openai:3f2a9c0d1b7e}:tok``.

    Raises:
        ConfigurationError: *service* is empty (its keys would not share one hash slot).
    """
    if not service:
        msg = "must be a non-empty name: it is the hash tag of the shared keys"
        raise ConfigurationError("service", msg)
    tag = service if fingerprint is None else f"{service}:{fingerprint}"
    return f"{prefix}:{{{tag}}}:{name}"
