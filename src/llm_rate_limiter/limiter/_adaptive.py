# SPDX-License-Identifier: MIT
"""
The working rate of one kind of limit (requests or tokens per second) that learns.

Rates are per second. The *ceiling* is the configured rate (``inf`` when none
is configured) and is never exceeded; the *target* is the lower of the
ceiling and what the provider last announced. A working rate is in one of
three phases:

- ``fixed``: it is the target (``inf``, no limit at all, while nothing is
  configured or known). An announcement moves it to the new target at once,
  down or up.
- ``slow_start``: nothing configured (no rate, no concurrency limit) and
  nothing known yet. It starts at `START_RATE` (1 per second) and doubles
  each second it is in demand (calls queue for it); the first announcement
  ends it (the rate becomes the announced one) and so does the first 429.
- ``probe``: after a cut. A 429 that local limiting did not prevent cuts the
  rate to ``BETA`` (0.7) times the rate in use (the working rate, or the rate
  actually admitted when that was lower), remembers that rate as ``w_max``,
  and once the pause the 429 asked for is over the rate climbs along CUBIC's
  curve ``w_max * (1 + C * (t - K) ** 3)``, ``K = RECOVERY`` seconds: concave
  back to ``w_max``, then convex beyond it, until it reaches the target
  (``fixed`` again), never above it. (The curve waits for the pause to end
  so that the waiters it held are released at the cut rate.)

A cut needs a reason: none within `GUARD` seconds of the last lowering (cut or
announcement), since the 429s of requests sent before it are still coming
back. The rates move only when told: `announce` and `decrease` on responses,
`grow` when the limiter looks (at slow-path events, every `STEP` seconds at
most while calls wait), so admission itself does no extra work.

Everything a working rate knows is the flat `RateState`, a handful of floats
and a word (`RateState.to_fields` / `from_fields`), so that a shared limiter
can keep it in one Redis hash and apply the same functions in a script.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal

__all__ = [
    "BETA",
    "GUARD",
    "RECOVERY",
    "START_RATE",
    "STEP",
    "AdaptiveRate",
    "Phase",
    "RateState",
]

#: Multiplicative decrease: a cut leaves this share of the rate in use.
BETA = 0.7
#: Seconds the cubic curve takes to climb back to the rate before a cut (CUBIC's K).
RECOVERY = 3.0
#: CUBIC's C, scaled to the rate before the cut: C * K**3 == 1 - BETA.
CUBIC_C = (1.0 - BETA) / RECOVERY**3
#: No second cut this many seconds after the rate was lowered (cut or announcement).
GUARD = 1.0
#: Where slow start begins, per second.
START_RATE = 1.0
#: Seconds per doubling of slow start while the rate is in demand.
DOUBLING = 1.0
#: How often a growing rate is looked at again while calls wait, seconds.
STEP = 0.1
#: Slow start grows only over gaps between looks up to this long: while calls
#: wait the looks come every `STEP`; a longer gap was idle time.
MAX_CREDIT = 5 * STEP
#: Growth stops here (per second): a float that stays finite.
MAX_RATE = 1e9

Phase = Literal["fixed", "slow_start", "probe"]


@dataclass(slots=True)
class RateState:
    """
    What one working rate knows; every field is a plain number (or a phase word).

    Attributes:
        rate: The working rate, per second (``inf``: no limit).
        announced: The provider's last announced rate, per second (``inf``: none).
        w_max: The rate in use at the last cut (CUBIC's W_max), per second.
        cut_at: When the cubic curve of the last cut starts: the end of the
            pause that came with it (``-inf``: never cut).
        lowered_at: When the rate last went down, by a cut or an announcement.
        grown_at: When slow start last grew (``-inf``: not yet).
        phase: ``"fixed"``, ``"slow_start"`` or ``"probe"``.
    """

    rate: float = math.inf
    announced: float = math.inf
    w_max: float = 0.0
    cut_at: float = -math.inf
    lowered_at: float = -math.inf
    grown_at: float = -math.inf
    phase: Phase = "fixed"

    def to_fields(self) -> dict[str, str]:
        """The state as string fields (a Redis hash): floats as ``repr``, ``inf`` included."""
        return {
            f.name: value if isinstance(value := getattr(self, f.name), str) else repr(value)
            for f in fields(self)
        }

    @classmethod
    def from_fields(cls, values: Mapping[str, str]) -> RateState:
        """The state `to_fields` wrote; missing fields keep their defaults."""
        state = cls()
        for f in fields(cls):
            raw = values.get(f.name)
            if raw is None:
                continue
            if f.name == "phase":
                if raw in ("fixed", "slow_start", "probe"):
                    state.phase = raw  # type: ignore[assignment]
            else:
                setattr(state, f.name, float(raw))
        return state


class AdaptiveRate:
    """
    The working rate of one kind of limit (internal): see the module docstring.

    Args:
        ceiling: The configured rate per second, or None.
        floor: Cuts never go below this rate per second.
        slow_start: Start at `START_RATE` when nothing is configured.
    """

    __slots__ = ("ceiling", "floor", "state")

    def __init__(self, ceiling: float | None, floor: float, *, slow_start: bool = False) -> None:
        self.ceiling = math.inf if ceiling is None else ceiling
        self.floor = floor
        self.state = RateState(rate=self.ceiling)
        if slow_start and ceiling is None:
            self.state.rate = START_RATE
            self.state.phase = "slow_start"

    @property
    def rate(self) -> float:
        """The working rate per second (``inf``: no limit)."""
        return self.state.rate

    @property
    def target(self) -> float:
        """The lower of the ceiling and the announced rate."""
        return min(self.ceiling, self.state.announced)

    @property
    def known(self) -> bool:
        """Whether a rate is configured or announced (not only guessed)."""
        return math.isfinite(self.target)

    @property
    def growing(self) -> bool:
        """Whether the rate moves with time (slow start or probing after a cut)."""
        return self.state.phase != "fixed"

    def announce(self, rate: float, now: float) -> bool:
        """
        The provider announced *rate* per second; return whether the working rate moved.

        Fixed or slow-starting rates take the new target at once; a probing
        rate is only capped by it (it keeps climbing toward it).
        """
        if not (rate > 0.0 and math.isfinite(rate)):
            return False
        state = self.state
        old = state.rate
        state.announced = rate
        target = self.target
        if state.phase == "probe":
            state.rate = min(old, target)
        else:
            state.rate = target
            state.phase = "fixed"
        if state.rate < old:
            state.lowered_at = now
        return state.rate != old

    def decrease(self, now: float, used: float | None, resume_at: float | None = None) -> bool:
        """
        Cut after a 429; return whether the rate moved.

        Args:
            now: The time of the 429.
            used: The rate actually admitted lately, per second (None: unknown,
                the working rate is taken).
            resume_at: When the pause that comes with the 429 ends: the rate
                starts climbing then (None: at once).
        """
        state = self.state
        if now - state.lowered_at < GUARD:
            return False
        base = state.rate if used is None else min(state.rate, used)
        if not (base > 0.0 and math.isfinite(base)):
            return False
        state.w_max = base
        state.rate = min(max(self.floor, BETA * base), self.target)
        state.lowered_at = now
        state.cut_at = now if resume_at is None else max(now, resume_at)
        state.phase = "probe"
        return True

    def grow(self, now: float, demand: bool) -> bool:
        """
        Move a growing rate to *now*; return whether it moved.

        Args:
            now: The time.
            demand: Calls are waiting (slow start grows only then).
        """
        state = self.state
        old = state.rate
        if state.phase == "slow_start":
            elapsed = now - state.grown_at
            if demand and elapsed <= MAX_CREDIT:
                state.rate = min(MAX_RATE, old * 2.0 ** (elapsed / DOUBLING))
            state.grown_at = now
        elif state.phase == "probe":
            rate = cubic(state.w_max, max(0.0, now - state.cut_at))
            target = self.target
            if rate >= target:
                state.rate = target
                state.phase = "fixed"
            else:
                state.rate = min(MAX_RATE, max(self.floor, rate))
        return state.rate != old


def cubic(w_max: float, elapsed: float) -> float:
    """CUBIC's rate *elapsed* seconds after a cut from *w_max*."""
    return w_max * (1.0 + CUBIC_C * (elapsed - RECOVERY) ** 3)
