# SPDX-License-Identifier: MIT
"""
The Lua script behind `SharedCircuitBreaker`: one atomic exchange per sync.

Three keys per service, all under one ``{hash tag}`` (Redis Cluster):

- ``breaker:open``: exists while the service is open; its value names the
  opening (``host:pid:random``), its expiry (PX) is the opening's end.
- ``breaker:epoch``: changes at each recovery. It is set to
  ``max(epoch + 1, Redis time in ms)``, so it keeps growing even across a
  Redis restart that lost it (a reader that saw an older value never takes
  a lost key for a recovery).
- ``breaker:trial``: the half-open trial slots taken since the opening
  ended, a sorted set of ``token -> expiry`` (Redis time, ms). At most
  *max_trials* unexpired members: that is ``half_open_max_calls`` across
  every process. A slot is freed by its holder (its trial's outcome), by
  the next opening or recovery (which delete the set) or, if its holder
  died, by its expiry.

Every time is read from the server (``redis.call('TIME')``), so hosts with
skewed clocks agree.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._breaker_trials import TRIAL_LEASE

__all__ = ["BREAKER_SYNC", "EPOCH_TTL_MS", "SyncReply", "parse_reply", "sync_args"]

#: How long the recovery epoch lives after its last change, in ms.
EPOCH_TTL_MS = 86_400_000

#: Publish, free, renew, take and read, in that order, atomically.
#:
#: KEYS: open, epoch, trial.
#: ARGV: op (``-``, ``open``, ``close``), open ms, opening id (``open``),
#: expected opening id (``close``; ``*``: any), epoch ttl ms, max trials,
#: trial lease ms, number of tokens to free, number of tokens to renew, then
#: the tokens to free, the tokens to renew and the tokens wanted.
#:
#: ``open`` sets the opening unless a longer one is in force, and ends the
#: trials. ``close`` deletes the opening, ends the trials and bumps the
#: epoch, unless a different opening than the one expected is in force (an
#: opening made meanwhile elsewhere survives a stale recovery).
#:
#: Returns ``{open ms remaining (<= 0: not open), epoch, opening id ('' if
#: none), slots granted (the first n tokens wanted), ms until asking again
#: may succeed (0: no wait known)}``. Slots are granted only while no opening
#: is in force.
BREAKER_SYNC = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
if op == 'open' then
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
  end
  redis.call('DEL', KEYS[3])
elseif op == 'close' then
  local current = redis.call('GET', KEYS[1])
  if (not current) or ARGV[4] == '*' or current == ARGV[4] then
    redis.call('DEL', KEYS[1], KEYS[3])
    local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
    redis.call('SET', KEYS[2], string.format('%d', math.max(epoch + 1, now)), 'PX', ARGV[5])
  end
end
local lease = tonumber(ARGV[7])
local n_free, n_renew = tonumber(ARGV[8]), tonumber(ARGV[9])
local first = 10
for i = first, first + n_free - 1 do
  redis.call('ZREM', KEYS[3], ARGV[i])
end
first = first + n_free
for i = first, first + n_renew - 1 do
  redis.call('ZADD', KEYS[3], 'XX', now + lease, ARGV[i])
end
if n_renew > 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('PEXPIRE', KEYS[3], lease)
end
first = first + n_renew
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -1 then pttl = 86400000 end
local opening = redis.call('GET', KEYS[1]) or ''
local epoch = redis.call('GET', KEYS[2]) or '0'
local granted, wait = 0, 0
if pttl > 0 then
  wait = pttl
elseif first <= #ARGV then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  local free = tonumber(ARGV[6]) - redis.call('ZCARD', KEYS[3])
  for i = first, #ARGV do
    if granted >= free then break end
    redis.call('ZADD', KEYS[3], now + lease, ARGV[i])
    granted = granted + 1
  end
  if granted > 0 then redis.call('PEXPIRE', KEYS[3], lease) end
  if first + granted <= #ARGV then
    local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    if oldest[2] then wait = math.max(1, tonumber(oldest[2]) - now) end
  end
end
return {pttl, epoch, opening, granted, wait}
"""


class SyncReply(NamedTuple):
    """What `BREAKER_SYNC` answered."""

    #: Milliseconds the shared opening has left (<= 0: not open).
    open_ms: int
    #: The recovery epoch.
    epoch: int
    #: The id of the opening in force ("" if none).
    opening: str
    #: How many of the wanted slots were granted (the first ones).
    granted: int
    #: Milliseconds until asking again for a slot may succeed (0: unknown).
    wait_ms: int


def sync_args(
    outbox: tuple[str, str] | None,
    open_ms: int,
    max_trials: int,
    freeing: list[str],
    held: list[str],
    wanted: list[str],
) -> list[Any]:
    """
    ARGV of `BREAKER_SYNC`.

    Args:
        outbox: What to publish: ``("open", opening id)``, ``("close", expected
            opening id or "*")`` or None.
        open_ms: Milliseconds the opening to publish has left (<= 0: over, not published).
        max_trials: ``half_open_max_calls``.
        freeing: Slots to free.
        held: Slots to renew.
        wanted: Slots to ask for.
    """
    op, ident = outbox or ("-", "")
    if op == "open" and open_ms <= 0:
        op = "-"
    head = [op, open_ms, ident if op == "open" else "", ident if op == "close" else "*"]
    head += [EPOCH_TTL_MS, max_trials, int(TRIAL_LEASE * 1000), len(freeing), len(held)]
    return [*head, *freeing, *held, *wanted]


def parse_reply(reply: Any) -> SyncReply:
    """The script's raw reply (bytes or str), typed."""
    open_ms, epoch, opening, granted, wait_ms = reply
    if isinstance(opening, bytes):
        opening = opening.decode()
    return SyncReply(int(open_ms), int(epoch), str(opening), int(granted), int(wait_ms))
