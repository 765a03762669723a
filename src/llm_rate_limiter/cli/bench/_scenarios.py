# SPDX-License-Identifier: MIT
"""
The load scenarios of ``llm-rate-limiter bench`` and the request set they share.

Every client of a scenario sends the same requests (a seeded list), against a
fault server reset and configured the same way. A scenario is either a closed
loop (``concurrency`` workers send as fast as they are answered) or an open
loop (calls arrive at ``arrival_rate`` per second, ``concurrency`` at most in
flight), which is how the outage scenario keeps traffic coming after the
outage so recovery can be seen.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "ALL_CLIENTS",
    "CLIENT_NAMES",
    "MAX_TOKENS",
    "SCENARIOS",
    "WARM_UP_SETTINGS",
    "BenchRequest",
    "Scenario",
    "build_requests",
    "quick_scenario",
    "server_settings",
]

#: The clients compared by default, in report order (built in `_clients`).
CLIENT_NAMES: tuple[str, ...] = ("ours", "sdk_default", "sdk_retries8", "tenacity_aiolimiter")
#: Every client ``--clients`` accepts: the default ones, then experiments.
ALL_CLIENTS: tuple[str, ...] = (*CLIENT_NAMES, "ours_wait_open")

#: ``max_tokens`` of every benchmark request (the server charges it up front).
MAX_TOKENS = 64

#: Fault server settings every scenario starts from (so nothing leaks between runs).
_BASE_SETTINGS: dict[str, Any] = {
    "rpm": None,
    "rps": None,
    "request_burst": None,
    "tpm": None,
    "tps": None,
    "token_burst": None,
    "max_concurrency": None,
    "completion_tokens": MAX_TOKENS,
    "latency": 0.02,
    "latency_jitter": 0.03,
    "error_500_rate": 0.0,
    "error_502_rate": 0.0,
    "error_503_rate": 0.0,
    "hang_rate": 0.0,
    "drop_rate": 0.0,
    "stream_failure_rate": 0.0,
    "malformed_rate": 0.0,
    "insufficient_quota": False,
    "unauthorized": False,
    "outages": [],
    "seed": 0,
}

#: The settings of the warm-up call each client makes before its run: no limits, no faults.
WARM_UP_SETTINGS: dict[str, Any] = dict(_BASE_SETTINGS)


@dataclass(frozen=True, slots=True)
class BenchRequest:
    """
    One chat request of the shared request set.

    Attributes:
        messages: The chat messages.
        max_tokens: The completion cap sent with the request.
        tokens: The request's token cost as the fault server charges it.
    """

    messages: list[dict[str, str]]
    max_tokens: int
    tokens: int


@dataclass(frozen=True, slots=True)
class Scenario:
    """
    One load scenario: the server's limits and faults, and the load sent.

    Attributes:
        name: The scenario's name (``--scenarios``).
        calls: Calls per client.
        concurrency: Calls in flight at most.
        rps: The server's request limit per second, or None.
        tps: The server's token limit per second, or None.
        faults: Other fault server settings (`FaultConfig` field names).
        arrival_rate: Calls started per second (open loop), or None (closed loop).
        outage: ``(start, duration)`` seconds after the start of the run, or None.
        call_deadline: Seconds one call may take, retries included.
        max_seconds: Wall-clock cap of one client's run: no call starts after it.
    """

    name: str
    calls: int
    concurrency: int
    rps: float | None = None
    tps: float | None = None
    faults: dict[str, Any] = field(default_factory=dict)
    arrival_rate: float | None = None
    outage: tuple[float, float] | None = None
    call_deadline: float = 20.0
    max_seconds: float = 60.0

    def describe(self) -> str:
        """One line for the report: the server's state and the load."""
        parts = []
        if self.rps is not None:
            parts.append(f"server limit {self.rps:g} requests/s")
        if self.tps is not None:
            parts.append(f"{self.tps:g} tokens/s")
        for key, text in (("error_503_rate", "503s"), ("drop_rate", "dropped connections")):
            if self.faults.get(key):
                parts.append(f"{self.faults[key]:.0%} {text}")
        if self.faults.get("insufficient_quota"):
            parts.append("every request answered 429 insufficient_quota")
        if self.outage is not None:
            parts.append(f"a {self.outage[1]:g} s outage from {self.outage[0]:g} s")
        if self.arrival_rate is not None:
            parts.append(f"calls arrive at {self.arrival_rate:g}/s")
        else:
            parts.append("closed loop")
        parts.append(f"{self.calls} calls, concurrency {self.concurrency}")
        return "; ".join(parts)

    @property
    def rate_limited(self) -> bool:
        """True when goodput against the server's limit is meaningful (closed loop, limited)."""
        return self.arrival_rate is None and (self.rps is not None or self.tps is not None)

    @property
    def fails_by_design(self) -> bool:
        """True when the server refuses every request for a reason retrying cannot fix."""
        return bool(self.faults.get("insufficient_quota") or self.faults.get("unauthorized"))

    @property
    def request_burst(self) -> float | None:
        """The capacity of the server's request bucket (its default: one second's worth)."""
        if self.rps is None:
            return None
        return float(self.faults.get("request_burst") or max(1.0, self.rps))

    @property
    def token_burst(self) -> float | None:
        """The capacity of the server's token bucket (its default: one second's worth)."""
        if self.tps is None:
            return None
        return float(self.faults.get("token_burst") or max(1.0, self.tps))

    @property
    def last_arrival(self) -> float | None:
        """When the last call of an open-loop scenario starts (capped), or None (closed loop)."""
        if self.arrival_rate is None:
            return None
        return min((self.calls - 1) / self.arrival_rate, self.max_seconds)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "rate_limited",
            calls=400,
            concurrency=40,
            rps=50.0,
        ),
        Scenario(
            "flaky",
            calls=400,
            concurrency=40,
            faults={"error_503_rate": 0.10, "drop_rate": 0.05},
        ),
        Scenario(
            "outage",
            calls=400,
            concurrency=40,
            rps=50.0,
            arrival_rate=30.0,
            outage=(3.0, 5.0),
        ),
        Scenario(
            "insufficient_quota",
            calls=40,
            concurrency=40,
            faults={"insufficient_quota": True},
        ),
        Scenario(
            "token_limited",
            calls=200,
            concurrency=40,
            rps=50.0,
            tps=3000.0,
        ),
    )
}

#: Quick sizes: scenario name -> replaced fields. Each still measures its targets:
#: the outage lasts 3 whole seconds (at 8 arrivals a second the breaker's 5 failures
#: take 0.5 s, so it opens by 1.5 s and trials twice, 1 s apart, before the end at 4 s),
#: its deadline outlasts it as in the full run, and calls keep arriving until 7.4 s
#: (the 2 s recovery target after the end, plus a 1 s window starting by then).
_QUICK: dict[str, dict[str, Any]] = {
    "rate_limited": {"calls": 40, "concurrency": 8, "rps": 20.0},
    "flaky": {"calls": 40, "concurrency": 8},
    "outage": {
        "calls": 60,
        "concurrency": 8,
        "rps": 40.0,
        "arrival_rate": 8.0,
        "outage": (1.0, 3.0),
        "call_deadline": 5.0,
    },
    "insufficient_quota": {"calls": 6, "concurrency": 6},
    "token_limited": {"calls": 30, "concurrency": 8, "rps": 40.0, "tps": 1500.0},
}


def quick_scenario(scenario: Scenario) -> Scenario:
    """Return *scenario* with small sizes, a 2.5 s call deadline (unless sized) and a 10 s cap."""
    changes: dict[str, Any] = {"call_deadline": 2.5, "max_seconds": 10.0}
    changes.update(_QUICK.get(scenario.name, {}))
    return replace(scenario, **changes)


def server_settings(scenario: Scenario) -> dict[str, Any]:
    """The ``/_control`` body that puts the fault server in *scenario*'s state."""
    settings = dict(_BASE_SETTINGS)
    settings["rps"] = scenario.rps
    settings["tps"] = scenario.tps
    settings.update(scenario.faults)
    if scenario.outage is not None:
        settings["outages"] = [list(scenario.outage)]
    return settings


def _server_tokens(messages: list[dict[str, str]], max_tokens: int) -> int:
    """The fault server's charge: ceil(chars / 4) + 4 per message + 3, plus max_tokens."""
    total = 3
    for message in messages:
        total += -(-len(message["content"]) // 4) + 4
    return total + max_tokens


def build_requests(count: int, *, seed: int = 7) -> list[BenchRequest]:
    """
    Build the shared request set: *count* requests with seeded prompt lengths.

    Args:
        count: How many requests.
        seed: Seed of the prompt lengths (the same set for every client).

    Returns:
        The requests, in sending order.
    """
    rng = random.Random(seed)
    words = ("rate", "limit", "token", "bucket", "retry", "breaker", "quota", "latency")
    requests = []
    for index in range(count):
        length = rng.randint(8, 80)
        text = " ".join(rng.choice(words) for _ in range(length))
        messages = [{"role": "user", "content": f"#{index}: {text}"}]
        requests.append(BenchRequest(messages, MAX_TOKENS, _server_tokens(messages, MAX_TOKENS)))
    return requests
