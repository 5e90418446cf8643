-- pace.lua: what an upstream said about one key, shared by every process
-- of the fleet: a hold (no call starts before a moment the upstream named:
-- Retry-After, a quota spent until its reset) and an AIMD spacing between
-- the starts of the fleet's calls (src/http/adaptive.ts has the same rule
-- for one process). Every time is Redis's clock, the one clock the fleet
-- shares; a process is told how long to wait, never a moment.
--
-- KEYS[1]  the key's pace "<prefix>{<shard>}:<key>|^", a hash (its hash tag
--          routes it on a Cluster; no state id ends in "|^": gate ids and
--          plan records never contain '^'):
--            u   the hold: no call starts before this (epoch ms)
--            s   the spacing between call starts, ms (0: none)
--            st  what each counted success takes off s (its peak over the
--                recovery count)
--            g   the generation, raised at each reduction: a call's ticket
--                is g when it was booked, and only calls booked since the
--                last reduction move the pace (the rest of the burst that
--                caused it does not halve it again)
--            n   the next free start (epoch ms): starts are s apart
--          A key the upstream never pushed back on has no hash: a booking
--          then reads one field and writes nothing.
-- ARGV[1]  the op, then its arguments:
--   'book'      ARGV[2] '1' when the call already waited for an earlier
--               booking (it keeps its start unless a hold set since covers
--               it), '' for a first booking
--               -> { wait ms (ceil), ticket, spacing ms (ceil) }
--   'pushback'  ARGV[2] the call's ticket ('' unknown: counted as current),
--               ARGV[3] the upstream's delay in ms ('' none: one spacing),
--               ARGV[4] initial spacing, ARGV[5] most spacing,
--               ARGV[6] successes that bring the spacing back to 0
--               -> { hold ms from now (ceil), spacing ms (ceil) }
--   'pause'     ARGV[2] delay ms (a hold without a slowdown: a quota spent
--               until its reset)            -> same as pushback
--   'success'   ARGV[2] the call's ticket   -> same as pushback
--   'peek'      (nothing)                   -> same as pushback
-- Delays arrive clamped by the client (its maxRetryAfterMs); this script
-- clamps again to MAX_HOLD_MS, so that no value can hold a key forever.
local MAX_HOLD_MS = 86400000000 -- 1000 days, the library's longest duration
-- How long a pace outlives its last hold or booked start without traffic:
-- past it the upstream is asked at full pace again.
local IDLE_MS = 3600000

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local key = KEYS[1]
local op = ARGV[1]

local function clampDelay(s)
  local d = tonumber(s)
  -- NaN fails both comparisons: it is no delay.
  if d == nil or not (d >= 0) then return nil end
  if d > MAX_HOLD_MS then d = MAX_HOLD_MS end
  return d
end

local function load()
  local f = redis.call('HMGET', key, 'u', 's', 'st', 'g', 'n')
  if f[1] == false then return nil end
  return { u = tonumber(f[1]), s = tonumber(f[2]), st = tonumber(f[3]), g = tonumber(f[4]), n = tonumber(f[5]) }
end

local function save(p)
  if p.s == 0 and p.u <= now and p.n <= now then
    -- Back to full pace and nothing held: forgotten, as a key that never was.
    redis.call('DEL', key)
    return
  end
  redis.call('HSET', key, 'u', tostring(p.u), 's', tostring(p.s), 'st', tostring(p.st), 'g', tostring(p.g), 'n', tostring(p.n))
  redis.call('PEXPIRE', key, math.ceil(math.max(p.u, p.n) - now) + IDLE_MS)
end

local function fresh()
  return { u = -1, s = 0, st = 0, g = 0, n = -1 }
end

local function standing(p)
  if p == nil then return { 0, 0 } end
  return { math.ceil(math.max(0, p.u - now)), math.ceil(p.s) }
end

if op == 'book' then
  local p = load()
  if p == nil then return { 0, 0, 0 } end
  if ARGV[2] == '1' and p.u <= now then
    -- Its booked start has come and no hold covers it: it goes.
    return { 0, p.g, math.ceil(p.s) }
  end
  local slot = math.max(now, p.u, p.n)
  if p.s > 0 or slot > p.n then
    p.n = slot + p.s
    save(p)
  end
  return { math.ceil(slot - now), p.g, math.ceil(p.s) }
elseif op == 'pushback' then
  local p = load() or fresh()
  local ticket = tonumber(ARGV[2])
  if ticket == nil or ticket >= p.g then
    local initial, most, recovery = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
    if p.s == 0 then p.s = initial else p.s = math.min(most, p.s * 2) end
    p.st = p.s / recovery
    p.g = p.g + 1
  end
  local d = clampDelay(ARGV[3])
  if d == nil then d = p.s end
  p.u = math.max(p.u, now + d)
  save(p)
  return standing(p)
elseif op == 'pause' then
  local d = clampDelay(ARGV[2])
  if d == nil then return redis.error_reply('cellgate: pause needs a delay') end
  local p = load() or fresh()
  p.u = math.max(p.u, now + d)
  save(p)
  return standing(p)
elseif op == 'success' then
  local p = load()
  if p == nil then return { 0, 0 } end
  local ticket = tonumber(ARGV[2])
  if p.s > 0 and ticket ~= nil and ticket >= p.g then
    p.s = p.s - p.st
    -- Floating-point steps rarely land on 0 exactly.
    if p.s < p.st / 2 then p.s = 0 end
  end
  -- (Saved even unchanged: a pace back at 0 whose holds have passed goes.)
  save(p)
  return standing(p)
elseif op == 'peek' then
  return standing(load())
end
return redis.error_reply('cellgate: unknown pace op ' .. tostring(op))
