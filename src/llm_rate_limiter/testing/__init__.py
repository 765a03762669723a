# SPDX-License-Identifier: MIT
"""
Test helpers for users of llm_rate_limiter (and for its own tests).

- `FakeClock`: inject into any policy part so time advances without sleeping.
- `FaultServer`, `FaultConfig`, `FaultServerStatistics`: an OpenAI-compatible
  server on 127.0.0.1 that rate-limits and fails on command (needs the
  ``server`` extra: starlette and uvicorn). The pytest plugin gives a
  ``fault_server`` fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._clock import FakeClock

if TYPE_CHECKING:
    from ._server import FaultServer
    from ._server_bodies import format_duration
    from ._server_config import FaultConfig
    from ._server_stats import FaultServerStatistics

__all__ = ["FakeClock", "FaultConfig", "FaultServer", "FaultServerStatistics", "format_duration"]

_LAZY = {
    "FaultConfig": "._server_config",
    "FaultServer": "._server",
    "FaultServerStatistics": "._server_stats",
    "format_duration": "._server_bodies",
}


def __getattr__(name: str) -> Any:
    # The server needs starlette and uvicorn: import them only when asked for.
    module = _LAZY.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    from importlib import import_module

    return getattr(import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
