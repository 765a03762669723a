# SPDX-License-Identifier: MIT
"""
The Lua scripts behind the Redis backends, and the names of their keys.

Every script reads the server's clock (``redis.call('TIME')``), so hosts with
skewed clocks agree. A bucket is a hash ``{l: level, t: last update}`` that
drains at its rate per second, exactly like the in-process buckets: it
admits *n* while ``level + min(n, capacity) <= capacity``, and its level may
pass the capacity (debt from reconciliation). Each write sets the key to
expire once the bucket would have drained, so idle keys vanish. All keys of
one service share a ``{hash tag}``, so the scripts also run on Redis Cluster.
"""

from __future__ import annotations

__all__ = [
    "ACQUIRE",
    "ADJUST",
    "BREAKER_CLOSE",
    "BREAKER_OPEN",
    "BREAKER_READ",
    "RENEW",
]


# Shared helpers, prepended to the bucket scripts.
_BUCKETS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local EPS = 1e-9

local function level(key, rate)
  local v = redis.call('HMGET', key, 'l', 't')
  local l = tonumber(v[1])
  if not l then return 0 end
  l = l - (now - tonumber(v[2])) * rate
  if l < 0 then return 0 end
  return l
end

local function store(key, l, rate)
  if l <= 0 then
    redis.call('DEL', key)
    return
  end
  redis.call('HSET', key, 'l', string.format('%.17g', l), 't', string.format('%.17g', now))
  redis.call('PEXPIRE', key, math.ceil(l / rate * 1000) + 1000)
end
"""

#: Check and charge one request: cooldown, requests, tokens, tokens per day,
#: concurrency. KEYS: req, tok, day, cool, conc. ARGV: tokens, req_rate,
#: req_cap, tok_rate, tok_cap, day_rate, day_cap (rates per second, 0 for no
#: bucket), max_concurrency (0: none), lease seconds, holder. Returns
#: ``{status, wait_ms, req_permille, tok_permille, cooldown_ms}``; status 0 is
#: admitted (charged, lease taken), 1 a wait for capacity or a cooldown, 2 a
#: wait for a concurrency slot (the time until the oldest lease expires).
ACQUIRE = (
    _BUCKETS
    + """
local tokens = tonumber(ARGV[1])
local spec = {
  {KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), 1},
  {KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), tokens},
  {KEYS[3], tonumber(ARGV[6]), tonumber(ARGV[7]), tokens},
}
local cool = redis.call('PTTL', KEYS[4])
if cool < 0 then cool = 0 end
local wait = cool / 1000
local levels = {0, 0, 0}
for i, b in ipairs(spec) do
  if b[2] > 0 and b[4] > 0 then
    local l = level(b[1], b[2])
    levels[i] = l
    local excess = l + math.min(b[4], b[3]) - b[3]
    if excess > EPS and excess / b[2] > wait then wait = excess / b[2] end
  end
end
local function permille(i)
  if spec[i][2] <= 0 then return -1 end
  return math.floor(math.min(levels[i] / spec[i][3], 1) * 1000)
end
if wait > 0 then
  return {1, math.ceil(wait * 1000), permille(1), permille(2), cool}
end
local max_conc = tonumber(ARGV[8])
if max_conc > 0 then
  local lease = tonumber(ARGV[9])
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) >= max_conc then
    local oldest = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
    return {2, math.ceil((tonumber(oldest[2]) - now) * 1000), permille(1), permille(2), 0}
  end
  redis.call('ZADD', KEYS[5], now + lease, ARGV[10])
  redis.call('PEXPIRE', KEYS[5], math.ceil(lease * 1000) + 1000)
end
for i, b in ipairs(spec) do
  if b[2] > 0 and b[4] > 0 then
    levels[i] = levels[i] + b[4]
    store(b[1], levels[i], b[2])
  end
end
return {0, 0, permille(1), permille(2), 0}
"""
)

#: Correct buckets, optionally under a new cooldown. KEYS: cool, then one key
#: per bucket. ARGV: cooldown_ms (0: no cooldown), then per bucket ``rate,
#: mode, value``: mode ``add`` adds *value* to the level (floored at 0), mode
#: ``floor`` raises the level to *value*. A cooldown shorter than the one in
#: force changes nothing at all. Returns 1 when it changed the buckets.
ADJUST = (
    _BUCKETS
    + """
local cool_ms = tonumber(ARGV[1])
if cool_ms > 0 then
  if redis.call('PTTL', KEYS[1]) >= cool_ms then return 0 end
  redis.call('SET', KEYS[1], '1', 'PX', cool_ms)
end
for i = 2, #KEYS do
  local j = (i - 2) * 3 + 2
  local rate, mode, value = tonumber(ARGV[j]), ARGV[j + 1], tonumber(ARGV[j + 2])
  local l = level(KEYS[i], rate)
  if mode == 'add' then
    store(KEYS[i], math.max(0, l + value), rate)
  elseif l < value then
    store(KEYS[i], value, rate)
  end
end
return 1
"""
)

#: Extend the leases of live holders. KEYS: conc. ARGV: lease seconds, holders.
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
return 1
"""

#: Publish "open for ARGV[1] ms" unless a longer opening is in force.
#: KEYS: open. ARGV: ms, origin. Returns 1 when published.
BREAKER_OPEN = """
if redis.call('PTTL', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
return 1
"""

#: Publish a recovery: delete the opening, bump the epoch. KEYS: open, epoch.
#: ARGV: epoch ttl ms. Returns the new epoch.
BREAKER_CLOSE = """
redis.call('DEL', KEYS[1])
local epoch = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return epoch
"""

#: Read the shared state: ``{open ms remaining (<= 0: not open), epoch}``.
BREAKER_READ = """
return {redis.call('PTTL', KEYS[1]), tonumber(redis.call('GET', KEYS[2]) or '0')}
"""
