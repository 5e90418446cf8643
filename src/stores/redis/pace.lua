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
--          the upstream's quota window, as its headers said ('quota'):
--            qt  when its current window ends (epoch ms)
--            qr  the calls it will still accept before qt: what it said,
--                less every call started since (a window spent sends its
--                callers back at its end)
--            ql  its limit per window (said, or the most seen left + 1)
--            qw  its window's length, ms (said, or the longest reset seen)
--            qlast  the last remaining it said (a higher one: a new window)
--            qs  where the window the fleet rolled into began (the last end)
--            qp  1 while qt is the fleet's prediction (rolled), until an
--                answer of the window says its end
--          the shape limitedFetch's shape 'auto' spends the key's rate in
--          ('learn'; SHAPE_* and QUOTA_EVIDENCE in constants.lua):
--            sh  SHAPE_PACING or SHAPE_QUOTA (none until it learns)
--            sv  its version: a limiter's plan version (setPolicy), rising
--            ev  accepted answers seen with quota headers and a reset
--            bi  1 once a refusal came while its headers said quota remained:
--                burst-intolerant
--          A key the upstream never pushed back on, nor told its quota, has
--          no hash: a booking then reads it and writes nothing.
-- ARGV[1]  the op, then its arguments:
--   'book'      ARGV[2] the call's step: 'start' (before the limiter: past
--               the hold, one spacing after the fleet's previous start, while
--               the upstream's window has room; a start ahead is reserved),
--               'kept' (its reserved start has come: a hold set since makes
--               it start afresh), 'go' (admitted by the limiter, about to be
--               sent: a hold set since holds it, and it takes one of the
--               calls the upstream's window still accepts, or waits for the
--               window's end)
--               -> { wait ms (ceil), ticket, spacing ms (ceil), shape (sh, or
--                    -1 when none), shape version (sv, or 0), 1 when 'go'
--                    took one of the calls the upstream's window accepts (qr
--                    known) else 0, bi (0 or 1), the start reserved (for
--                    'cancel'; '' when none was), 1 when the wait is for the window's end (then
--                    'start' afresh, or 'go' again) else 0 }
--               After any other wait the caller asks again with the same
--               step ('start' after 'start' became 'kept').
--   'pushback'  ARGV[2] the call's ticket ('' unknown: counted as current),
--               ARGV[3] the upstream's delay in ms ('' none: one spacing),
--               ARGV[4] initial spacing, ARGV[5] most spacing,
--               ARGV[6] successes that bring the spacing back to 0
--               -> { hold ms from now (ceil), spacing ms (ceil) }
--   'pause'     ARGV[2] delay ms (a hold without a slowdown: a quota spent
--               until its reset)            -> same as pushback
--   'success'   ARGV[2] the call's ticket   -> same as pushback
--   'peek'      (nothing)                   -> same as pushback
--   'cancel'    ARGV[2] a booking's start (as the booking answered it): a
--               caller that stopped waiting gives its place back (see
--               below)                 -> same as pushback
--   'quota'     ARGV[2] remaining, ARGV[3] reset ms, ARGV[4] limit ('' not
--               said), ARGV[5] window ms ('' not said): what an answer's
--               quota headers said     -> { ms to the window's end, qr }
--   'learn'     ARGV[2] 'quota' or 'burst': what an answer showed of the
--               upstream (see below)   -> { sh, sv, ev }
-- Delays arrive clamped by the client (its maxRetryAfterMs); this script
-- clamps again to MAX_HOLD_MS, so that no value can hold a key forever.
--#include constants.lua
local MAX_HOLD_MS = 86400000000 -- 1000 days, the library's longest duration
-- How long a pace outlives its last hold or booked start without traffic:
-- past it the upstream is asked at full pace again.
local IDLE_MS = 3600000
-- The end of a window no call is started in (at most a twentieth of it).
local WINDOW_MARGIN_MS = 50

-- A value of another type at the key (not ours: left alone) answers {-1}:
-- the caller paces that key by what its process knows, and no error reaches
-- the store's breaker, which would send every key of the store to its
-- fallback.
local held = redis.pcall('HLEN', KEYS[1])
if type(held) == 'table' and held.err ~= nil then return { -1 } end

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

-- Every field, numeric. The quota mirror (q*) and the shape (sh, sv, ev, bi)
-- are described in the header.
local FIELDS = { 'u', 's', 'st', 'g', 'n', 'qr', 'qt', 'ql', 'qw', 'qlast', 'qs', 'qp', 'sh', 'sv', 'ev', 'bi' }

local function load()
  local f = redis.call('HMGET', key, unpack(FIELDS))
  if f[1] == false then return nil end
  local p = {}
  for i, name in ipairs(FIELDS) do
    if f[i] ~= false then p[name] = tonumber(f[i]) end
  end
  return p
end

local function save(p)
  redis.call('DEL', key)
  if p.s == 0 and p.u <= now and p.n <= now and p.qt == nil and p.sh == nil then
    -- Back to full pace, nothing held, no quota or shape known: forgotten,
    -- as a key that never was.
    return
  end
  local args = {}
  for _, name in ipairs(FIELDS) do
    if p[name] ~= nil then
      args[#args + 1] = name
      args[#args + 1] = tostring(p[name])
    end
  end
  redis.call('HSET', key, unpack(args))
  redis.call('PEXPIRE', key, math.ceil(math.max(p.u, p.n, p.qt or 0) - now) + IDLE_MS)
end

local function fresh()
  return { u = -1, s = 0, st = 0, g = 0, n = -1 }
end

local function standing(p)
  if p == nil then return { 0, 0 } end
  return { math.ceil(math.max(0, p.u - now)), math.ceil(p.s) }
end

-- The provider's window moved on to the one holding `at`: a known window
-- length and limit start the next one full; without them nothing is known
-- of it until an answer says.
local function roll(p, at)
  if p.qt == nil or at < p.qt then return end
  if p.qw ~= nil and p.qw > 0 and p.ql ~= nil then
    local steps = math.floor((at - p.qt) / p.qw) + 1
    -- Where the window the fleet rolled into began, and that its end is a
    -- prediction, until an answer of it says.
    p.qs = p.qt + (steps - 1) * p.qw
    p.qt = p.qs + p.qw
    p.qp = 1
    p.qr = p.ql
  else
    p.qt, p.qr, p.qs, p.qp = nil, nil, nil, nil
  end
  -- The last count said was the old window's: the next answer is this one's.
  p.qlast = nil
end

-- A call about to start now takes one of the calls the upstream's window
-- still accepts: 1 when it did (or no window is known: 0 and it goes), or
-- the window's end when it is spent, for the caller to book again then
-- (nothing reserved: a caller that stops waiting takes nothing from the
-- others, and a reset lets through no more than it accepts, in the order
-- callers come back).
-- Whether the window (rolled to now) has no call left to start: spent, or
-- in its last moments, which are left alone: a call started there and
-- delayed on its way (a busy process, the network) would reach the upstream
-- in the next window, on top of that window's whole quota.
local function spentNow(p)
  roll(p, now)
  if p.qr == nil then return false end
  local margin = 0
  if p.qw ~= nil then margin = math.min(WINDOW_MARGIN_MS, p.qw / 20) end
  return p.qr < 1 or now >= p.qt - margin
end

local function takeQuota(p)
  if spentNow(p) then return 0, p.qt end
  if p.qr == nil then return 0, nil end
  p.qr = p.qr - 1
  return 1, nil
end

-- The shape's version: Redis's clock in seconds since 2025 (so that a
-- pace forgotten and learned again never goes back), and always above the
-- last one.
local EPOCH_S = 1735689600
local function nextVersion(p)
  return math.max((p.sv or 0) + 1, math.floor(now / 1000) - EPOCH_S)
end

local function shapeOf(p)
  if p == nil or p.sh == nil then return -1, 0 end
  return p.sh, p.sv
end

if op == 'book' then
  local p = load()
  if p == nil then return { 0, 0, 0, -1, 0, 0, 0, '', 0 } end
  local sh, sv = shapeOf(p)
  local mode = ARGV[2]
  local function answer(wait, budgeted, kept, forWindow)
    save(p)
    return { math.ceil(wait), p.g, math.ceil(p.s), sh, sv, budgeted, p.bi or 0, kept, forWindow }
  end
  if mode == 'go' then
    -- Admitted by the limiter, about to be sent: a hold set since holds it
    -- (the caller asks again at its end), and it takes its place in the
    -- upstream's window, or waits for the window's end.
    if p.u > now then return answer(p.u - now, 0, '', 0) end
    local budgeted, reset = takeQuota(p)
    if reset ~= nil then return answer(reset - now, 0, '', 1) end
    return answer(0, budgeted, '', 0)
  end
  -- 'start' (before the limiter) or 'kept' (its reserved start has come):
  -- past the hold and one spacing after the fleet's previous start, and only
  -- while the upstream's window has room, so that the limiter spaces what a
  -- hold held back instead of releasing it at once.
  if mode == 'kept' and p.u <= now then
    if spentNow(p) then return answer(p.qt - now, 0, '', 1) end
    return answer(0, 0, '', 0)
  end
  local slot = math.max(now, p.u, p.n)
  if slot <= now and spentNow(p) then
    -- Spent: wait for the window's end, reserving nothing, then start afresh.
    return answer(p.qt - now, 0, '', 1)
  end
  p.n = math.max(p.n, slot + p.s)
  return answer(slot - now, 0, tostring(slot), 0)
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
elseif op == 'quota' then
  -- ARGV[2] remaining, ARGV[3] reset ms, ARGV[4] limit ('' unknown),
  -- ARGV[5] window ms ('' unknown)
  local remaining, reset = tonumber(ARGV[2]), clampDelay(ARGV[3])
  if remaining == nil or not (remaining >= 0) or reset == nil then return redis.error_reply('cellgate: quota needs remaining and reset') end
  local limit, window = tonumber(ARGV[4]), clampDelay(ARGV[5])
  local p = load() or fresh()
  local ends = now + reset
  -- A new window (one the fleet did not see coming) starts from what the
  -- answer says. In the same one (a window the fleet rolled into by itself
  -- included), the provider's count (the calls it has seen) lowers ours
  -- (the calls we started) when others spend the quota too; its end is the
  -- earliest said (a reset in whole seconds is rounded up, and the end of an
  -- upstream that refills continuously would creep on with every answer).
  -- Which window the answer is of: with a known window length, by its end
  -- (answers come back out of order across processes, so a count above the
  -- last one may be an older answer of this window); without, by its count.
  local newWindow = p.qt == nil or now >= p.qt
  -- In a window the fleet predicted, an answer ending by the window's start
  -- is of the one before; otherwise, one ending half a window early.
  local staleBy = p.qw ~= nil and p.qt ~= nil and p.qt - p.qw / 2 or nil
  if p.qp ~= nil and p.qs ~= nil then staleBy = p.qs + math.min(WINDOW_MARGIN_MS, (p.qw or 0) / 20) end
  if not newWindow and p.qw ~= nil then
    if ends <= staleBy then
      -- An answer from the window before this one, come late (the fleet has
      -- rolled into this window): it says nothing of this one.
      return { math.ceil(math.max(0, p.qt - now)), math.ceil(p.qr or 0) }
    end
    newWindow = ends >= p.qt + p.qw / 2
  elseif not newWindow then
    newWindow = p.qlast ~= nil and remaining > p.qlast
  end
  if newWindow then
    p.qt, p.qr, p.qs, p.qp = ends, remaining, nil, nil
    -- Without a stated window, the longest reset a window's first answer gave.
    if window == nil and (p.qw == nil or reset > p.qw) then p.qw = reset end
  elseif p.qp ~= nil then
    -- The first answer of a window the fleet rolled into by itself: its end
    -- is the upstream's (a window length taken from the longest reset seen
    -- is short of the real one: answers come after their window began), and
    -- so is the window's length, from where the window began.
    if p.qs ~= nil and ends > p.qs then p.qw = ends - p.qs end
    p.qt, p.qp = ends, nil
    p.qr = math.min(p.qr or remaining, remaining)
  else
    p.qr = math.min(p.qr or remaining, remaining)
    if ends < p.qt then p.qt = ends end
  end
  p.qlast = remaining
  if window ~= nil and window > 0 then p.qw = window end
  -- Without a stated limit, the most a window was seen to have left, and
  -- one. A stated limit below 1 is no limit (it would start every window
  -- spent, and no answer would ever come to say otherwise).
  if limit ~= nil and limit >= 1 then p.ql = limit elseif p.ql == nil or remaining + 1 > p.ql then p.ql = remaining + 1 end
  save(p)
  return { math.ceil(math.max(0, p.qt - now)), math.ceil(p.qr) }
elseif op == 'learn' then
  -- ARGV[2] what an answer showed: 'quota' (accepted, with quota headers
  -- and a reset), 'burst' (refused while its quota headers said some
  -- remained)
  local p = load() or fresh()
  if ARGV[2] == 'burst' then
    -- Burst-intolerant: paced from now on, for as long as the pace lives.
    p.bi = 1
    if p.sh ~= SHAPE_PACING then p.sh, p.sv = SHAPE_PACING, nextVersion(p) end
  elseif ARGV[2] == 'quota' then
    p.ev = (p.ev or 0) + 1
    if p.sh == nil then p.sh, p.sv = SHAPE_PACING, nextVersion(p) end
    if p.bi == nil and p.ev >= QUOTA_EVIDENCE and p.sh ~= SHAPE_QUOTA then p.sh, p.sv = SHAPE_QUOTA, nextVersion(p) end
  else
    return redis.error_reply('cellgate: unknown evidence ' .. tostring(ARGV[2]))
  end
  save(p)
  return { p.sh, p.sv, p.ev or 0 }
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
elseif op == 'cancel' then
  -- ARGV[2] the booked start, as the booking answered it: a caller that
  -- stopped waiting, or was never sent (it gave up waiting for the limiter,
  -- or a hold sent it back), gives back its place. The starts booked after it stay
  -- where they are, so the next booking takes the last one's time (two
  -- starts together, once) and the count of starts over the span is kept:
  -- if they stayed taken, callers that book and give up (a burst with
  -- deadlines) would push the fleet's next start out without end.
  local p = load()
  if p == nil or tonumber(ARGV[2]) == nil or p.n <= now then return standing(p) end
  p.n = math.max(now, p.n - p.s)
  save(p)
  return standing(p)
elseif op == 'peek' then
  return standing(load())
end
return redis.error_reply('cellgate: unknown pace op ' .. tostring(op))
