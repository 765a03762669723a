# SPDX-License-Identifier: MIT
"""
The Lua scripts behind `RedisRateLimiter` (the breaker's are in ``_breaker_scripts``).

Every script reads the server's clock (``redis.call('TIME')``), so hosts with
skewed clocks agree. A bucket is a hash ``{l: level, t: last update}`` that
drains at its rate per second, exactly like the in-process buckets: it
admits *n* while ``level + min(n, capacity) <= capacity``, and its level may
pass the capacity (debt from reconciliation, or capacity reserved for a
caller that sleeps until its turn). Each write sets the key to expire once
the bucket would have drained, so idle keys vanish. All keys a script
touches share one ``{hash tag}`` (see ``_keys.service_key``), so the scripts
also run on Redis Cluster.

**Minimum Redis version: 6.0.** The scripts call ``TIME`` before writing,
which needs effects replication (the default since Redis 5), and the
concurrency wait uses ``BLPOP`` with a fractional timeout (Redis 6.0). Key
expiries that may only grow are raised with a Lua max rather than
``PEXPIRE ... GT`` (which would need 7.0). Tested on Redis 7.0.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "ADJUST", "KEEPALIVE", "RELEASE"]

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local EPS = 1e-9

local function expire_at_least(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
"""

# Shared helpers, prepended to the bucket scripts.
_BUCKETS = (
    _NOW
    + """
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
)

#: Check and charge one request: generation, cooldown, requests, tokens,
#: tokens per day, concurrency. KEYS: req, tok, day, cool, conc, slots, gen.
#: ARGV: tokens, req_rate, req_cap, tok_rate, tok_cap, day_rate, day_cap
#: (rates per second, 0 for no bucket), max_concurrency (0: none), lease
#: seconds, holder, budget seconds (the longest wait accepted, -1: any), the
#: generation the caller knows ('' for none: it has nothing to re-seed, and
#: adopts the generation in force, or creates it as the next argument).
#: Returns ``{status, wait_ms, req_permille,
#: tok_permille, cooldown_ms, generation}``:
#:
#: - 0 admitted: charged (and lease taken) now for a request that may go
#:   *wait_ms* from now: the capacity is reserved, the caller sleeps and goes;
#: - 1 a cooldown: nothing charged, ask again after *wait_ms*;
#: - 2 no concurrency slot: nothing charged; *wait_ms* until the oldest lease expires;
#: - 3 the generation is not the caller's (Redis lost its data since the
#:   caller's last look): nothing charged; re-seed with `ADJUST`, then ask again;
#: - 4 refused: the wait *wait_ms* is above the budget; nothing charged.
ACQUIRE = (
    _BUCKETS
    + """
local gen = redis.call('GET', KEYS[7])
if ARGV[12] == '' then
  if not gen then
    gen = ARGV[13]
    redis.call('SET', KEYS[7], gen, 'PX', 86400000)
  end
elseif gen ~= ARGV[12] then
  return {3, 0, -1, -1, 0, gen or ''}
end
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
local function reply(status, seconds)
  local p = {-1, -1}
  for i = 1, 2 do
    if spec[i][2] > 0 then p[i] = math.floor(math.min(levels[i] / spec[i][3], 1) * 1000) end
  end
  return {status, math.ceil(seconds * 1000), p[1], p[2], cool, gen}
end
local budget = tonumber(ARGV[11])
if budget >= 0 and wait > budget + EPS then return reply(4, wait) end
if cool > 0 then return reply(1, wait) end
local max_conc = tonumber(ARGV[8])
if max_conc > 0 then
  local lease = tonumber(ARGV[9])
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  local held = redis.call('ZCARD', KEYS[5])
  if held >= max_conc then
    local oldest = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
    return reply(2, tonumber(oldest[2]) - now)
  end
  redis.call('ZADD', KEYS[5], now + wait + lease, ARGV[10])
  expire_at_least(KEYS[5], math.ceil((wait + lease) * 1000) + 1000)
  -- No more slot notifications waiting than free slots.
  local free = max_conc - held - 1
  if free <= 0 then
    redis.call('DEL', KEYS[6])
  elseif redis.call('LLEN', KEYS[6]) > free then
    redis.call('LTRIM', KEYS[6], 0, free - 1)
  end
end
for i, b in ipairs(spec) do
  if b[2] > 0 and b[4] > 0 then
    levels[i] = levels[i] + b[4]
    store(b[1], levels[i], b[2])
  end
end
return reply(0, wait)
"""
)

#: Correct buckets, optionally under a new cooldown, optionally seeding the
#: generation. KEYS: cool, gen, then one key per bucket. ARGV: cooldown_ms
#: (0: no cooldown), a new generation ('' : leave it), then per bucket
#: ``rate, capacity, mode, value``: ``add`` adds *value* to the level
#: (floored at 0), ``floor`` raises the level to *value*, ``fill`` adds
#: *value* but not past the capacity (never lowering the level). A cooldown
#: shorter than the one in force changes nothing at all. Returns the
#: generation in force ('' when none was asked for), or 0 when a cooldown
#: was refused.
ADJUST = (
    _BUCKETS
    + """
local cool_ms = tonumber(ARGV[1])
if cool_ms > 0 then
  if redis.call('PTTL', KEYS[1]) >= cool_ms then return 0 end
  redis.call('SET', KEYS[1], '1', 'PX', cool_ms)
end
for i = 3, #KEYS do
  local j = (i - 3) * 4 + 3
  local rate, cap, mode = tonumber(ARGV[j]), tonumber(ARGV[j + 1]), ARGV[j + 2]
  local value = tonumber(ARGV[j + 3])
  local l = level(KEYS[i], rate)
  if mode == 'add' then
    store(KEYS[i], math.max(0, l + value), rate)
  elseif mode == 'fill' then
    if value > 0 and l < cap then store(KEYS[i], math.min(cap, l + value), rate) end
  elseif l < value then
    store(KEYS[i], value, rate)
  end
end
if ARGV[2] == '' then return '' end
redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', 86400000)
return redis.call('GET', KEYS[2])
"""
)

#: Give concurrency slots back and tell one waiter per slot. KEYS: conc,
#: slots. ARGV: max_concurrency, lease seconds, holders. Returns how many
#: holders were removed.
RELEASE = (
    _NOW
    + """
local removed = 0
for i = 3, #ARGV do
  removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
end
if removed > 0 then
  for i = 1, removed do redis.call('LPUSH', KEYS[2], '1') end
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[1]) - 1)
  redis.call('PEXPIRE', KEYS[2], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
end
return removed
"""
)

#: Say this limiter is alive, count the live ones, renew (or re-add) its
#: leases and keep the generation. KEYS: live, conc, gen. ARGV: limiter id,
#: seconds it counts as alive, lease seconds, holders. Returns ``{live
#: limiters, generation}``. A lease only ever moves later, and the lease
#: key's expiry only ever grows (another limiter may hold longer leases).
KEEPALIVE = (
    _NOW
    + """
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
expire_at_least(KEYS[1], math.ceil(ttl * 1000) + 1000)
local live = redis.call('ZCARD', KEYS[1])
local lease = tonumber(ARGV[3])
if #ARGV > 3 then
  for i = 4, #ARGV do
    local score = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[i]))
    if not score or score < now + lease then redis.call('ZADD', KEYS[2], now + lease, ARGV[i]) end
  end
  expire_at_least(KEYS[2], math.ceil(lease * 1000) + 1000)
end
local gen = redis.call('GET', KEYS[3])
if gen then redis.call('PEXPIRE', KEYS[3], 86400000) end
return {live, gen or ''}
"""
)
