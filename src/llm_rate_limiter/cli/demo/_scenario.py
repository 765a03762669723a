# SPDX-License-Identifier: MIT
"""
The demo's script: its settings, the phases of its timeline, and the providers it runs.

Embedded mode starts two fault servers (primary and fallback). The client is
configured as it should be: its limit for each provider is what that server
enforces (the primary's exactly, the fallback's with 10% of headroom), so
the analysis at the end is about what the script did to the primary (the
pressure, the outage) and not about the demo's own settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._validate import check_int, check_number
from ...breaker import BreakerPolicy
from ...client import ProviderConfig
from ...exceptions import ConfigurationError
from ...limiter import RateLimits
from ...retry import RetryPolicy

if TYPE_CHECKING:
    from ...testing import FaultConfig

__all__ = [
    "MAX_DURATION",
    "MIN_DURATION",
    "DemoSettings",
    "Phase",
    "build_phases",
    "fault_configs",
    "provider_configs",
]

MIN_DURATION = 4.0
MAX_DURATION = 600.0
#: Requests per second the embedded primary server admits.
PRIMARY_LIMIT_RPS = 10.0
#: Requests per second the embedded fallback server admits.
FALLBACK_LIMIT_RPS = 20.0
#: Offered load against a real provider, in requests per second (kept small: it costs money).
REAL_RATE = 2.0
MESSAGES: tuple[dict[str, str], ...] = ({"role": "user", "content": "Say hello in five words."},)
MAX_TOKENS = 16

# (name, share of the duration, offered load as a multiple of the primary limit, text)
_SCRIPT: tuple[tuple[str, float, float, str], ...] = (
    ("calm", 0.2, 0.5, "load at half the primary's limit"),
    ("pressure", 0.3, 2.0, "load at twice the primary's limit: the limiter queues the excess"),
    ("outage", 0.2, 0.8, "the primary answers 503: the breaker opens, the fallback serves"),
    ("recovery", 0.3, 0.8, "the primary is back: half-open probe, breaker closes"),
)


@dataclass(frozen=True, slots=True)
class Phase:
    """
    One phase of the demo's timeline.

    Attributes:
        name: ``calm``, ``pressure``, ``outage``, ``recovery`` (or ``load`` on a real provider).
        start: Seconds after the start of the load.
        end: Seconds after the start of the load.
        rate: Offered load, in requests per second.
        description: What happens in this phase.
    """

    name: str
    start: float
    end: float
    rate: float
    description: str

    def as_dict(self) -> dict[str, Any]:
        """The phase as a JSON-ready dict."""
        return {
            "name": self.name,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "offered_rate": self.rate,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """
    What ``llm-rate-limiter demo`` was asked to do.

    Attributes:
        duration: Seconds of load.
        concurrency: Concurrent workers sending chat calls.
        output: The folder for the PNG and the JSON report.
        seed: Seed of the fault servers' random draws.
        base_url: A real provider's API root; None runs the embedded servers.
        api_key: The real provider's key (never printed).
        model: The real provider's model.
    """

    duration: float = 30.0
    concurrency: int = 20
    output: Path = Path("demo-output")
    seed: int = 0
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        duration = check_number("duration", self.duration, minimum=MIN_DURATION)
        assert duration is not None
        if duration > MAX_DURATION:
            msg = f"must be at most {MAX_DURATION:g} seconds, got {duration:g}"
            raise ConfigurationError("duration", msg)
        object.__setattr__(self, "duration", duration)
        check_int("concurrency", self.concurrency, minimum=1)
        if self.concurrency > 500:
            msg = f"must be at most 500, got {self.concurrency}"
            raise ConfigurationError("concurrency", msg)
        if self.base_url is not None and not self.api_key:
            msg = "a real provider (--base-url) needs --api-key or OPENAI_API_KEY"
            raise ConfigurationError("api_key", msg)

    @property
    def embedded(self) -> bool:
        """True when the demo runs against its own fault servers."""
        return self.base_url is None

    @property
    def reset_timeout(self) -> float:
        """The breaker's reset timeout: 2 s, shorter for short demos."""
        return min(2.0, self.duration / 10.0)

    def max_calls(self, phases: list[Phase]) -> int:
        """The most chat calls the load may start: what the phases offer, plus slack."""
        offered = sum(p.rate * (p.end - p.start) for p in phases)
        return math.ceil(offered) + self.concurrency


def build_phases(settings: DemoSettings) -> list[Phase]:
    """The timeline: four scripted phases, or one steady phase on a real provider."""
    if not settings.embedded:
        text = f"steady load of {REAL_RATE:g} requests/s through the client"
        return [Phase("load", 0.0, settings.duration, REAL_RATE, text)]
    phases, start = [], 0.0
    for name, share, multiple, text in _SCRIPT:
        end = start + share * settings.duration
        phases.append(Phase(name, start, end, multiple * PRIMARY_LIMIT_RPS, text))
        start = end
    return phases


def fault_configs(settings: DemoSettings) -> dict[str, FaultConfig]:
    """The embedded servers: a primary at 10 requests/s, a slower fallback at 20."""
    from ...testing import FaultConfig

    return {
        "primary": FaultConfig(
            rps=PRIMARY_LIMIT_RPS, latency=0.05, latency_jitter=0.05, seed=settings.seed
        ),
        "fallback": FaultConfig(
            rps=FALLBACK_LIMIT_RPS, latency=0.1, latency_jitter=0.05, seed=settings.seed + 1
        ),
    }


def provider_configs(settings: DemoSettings, urls: dict[str, str]) -> list[ProviderConfig]:
    """
    The client's providers: *urls* maps a provider name to its embedded server's base URL.

    On a real provider there is one provider, ``primary``, at ``settings.base_url``.
    """
    retry = RetryPolicy(max_retries=3, base_delay=0.05, max_delay=0.5, attempt_timeout=10.0)
    breaker = BreakerPolicy(fail_max=3, reset_timeout=settings.reset_timeout, half_open_max_calls=1)
    if not settings.embedded:
        return [
            ProviderConfig(
                name="primary",
                base_url=settings.base_url,
                api_key=settings.api_key,
                model=settings.model or "gpt-4o-mini",
                limits=RateLimits(requests_per_minute=REAL_RATE * 60, max_concurrency=8),
                retry=retry,
                breaker=breaker,
                timeout=30.0,
            )
        ]
    return [
        ProviderConfig(
            name="primary",
            base_url=urls["primary"],
            api_key="demo-primary-key",
            model="mock-gpt",
            limits=RateLimits(requests_per_minute=PRIMARY_LIMIT_RPS * 60),
            retry=retry,
            breaker=breaker,
            timeout=10.0,
        ),
        ProviderConfig(
            name="fallback",
            base_url=urls["fallback"],
            api_key="demo-fallback-key",
            model="mock-gpt-backup",
            limits=RateLimits(requests_per_minute=FALLBACK_LIMIT_RPS * 60 * 0.9),
            retry=retry,
            breaker=breaker,
            timeout=10.0,
        ),
    ]
