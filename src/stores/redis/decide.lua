-- decide.lua: decides a batch of requests for one limiter's gates, atomically.
--
-- Every key of one call shares one hash tag (the virtual shard), so the call
-- lives in one cluster slot. The arithmetic mirrors assembly/algorithms.ts and
-- test/reference-model.ts formula by formula: change all three together.
--
-- KEYS[1]  the shard's anchor key "<prefix>{<shard>}"; routes the call, and
--          nothing is stored under it but a probe's 1 ms write (G = 0, see
--          below). Per-gate state keys are built from it.
-- ARGV[1]  now override in epoch ms ("" = use Redis TIME, the only clock in
--          production; the override exists for deterministic tests)
-- ARGV[2]  G, the number of gates; then per gate 5 values:
--            id (string, distinguishes policies), code, p0, p1, p2
--          codes: 0 GCRA (p0 emission interval ms, p1 burst, p2 burst*interval)
--                 1 token bucket, interval refill (p0 capacity, p1 refill, p2 period ms)
--                 2 fixed window (p0 window ms, p1 limit)
--                 3 linear window (p0 within ms, p1 limit)
--                 4 sliding window (p0 window ms, p1 limit)
-- then the batch's entries in 3 values (3 strings for the whole batch, not
--          per entry: argument encoding dominates the client's cost):
--          lengths  "n1,n2,...," the byte length of each entry's key
--          keys     the keys (the user's keys), concatenated
--          (and after them, optionally) deadline, epoch ms on the script's
--          clock after which the batch is refused unrun (TOOLATE): its
--          client has stopped waiting and decided it by its fallback
--          hits     "h1,h2,...," each entry's hits, decided in order: empty
--                   for the common single limit of cost 1, otherwise
--                   "op cost maxWait" triples separated by spaces, where op
--                   is 0 limit, 1 peek, 2 reserve, 3 refund, 4 reset,
--                   5 charge (consume without asking: what a client admitted
--                   on its own while Redis was unreachable), 6 lease (take
--                   up to cost units for a client to spend on its own, see
--                   below); cost in units; maxWait in ms (reserve: "inf" for
--                   none; lease: the horizon of GCRA's future slots; charge:
--                   the epoch ms, on Redis's clock, as of which the units
--                   were spent, e.g. when an outage began)
--
-- State of gate g of key k lives at "<KEYS[1]>:<k>|<gate id>" as 32 bytes,
-- the little-endian doubles a, b, c, exp (binary, so times survive exactly and
-- nothing is formatted or parsed), with a PX expiry at the time the state
-- decays to "never seen" (plus a day with a client clock). No key = never
-- seen; a key whose exp has passed counts as none.
--
-- Returns one bulk string of little-endian doubles (Redis would truncate Lua
-- numbers to integers, and formatting fractions costs more than the
-- arithmetic): now, then per hit 4 values: flags (allowed + 2 * gate),
-- remaining, retryAfterMs (reserve: waitMs), resetAfterMs; then per entry per
-- gate 4 values: a, b, c, exp, the state after the entry's hits for the
-- caller's local mirror (exp -inf = no state).
--
-- A lease (op 6) debits k units at once, the most up to cost that every gate
-- grants: a count-based gate what it admits now, a GCRA gate also its slots
-- up to now + maxWait (unit j of k may be spent at last - (k - j) * interval).
-- Its 4 values: flags 1, k, last - now (ms; 0 without a GCRA gate), and how
-- long the units stay valid (ms): until the earliest window or refill
-- boundary of a count-based gate (inf without one), since spending them in
-- the next window would exceed that window's limit. With k = 0: the denial
-- of a single unit (flags, 0, retryAfterMs, resetAfterMs).

local MIN_RETRY_MS = 0.001
-- How long a key's state is kept after an outage charge (see op 5).
local CHARGE_MEMORY_MS = 60000
local REMAINING_EPSILON = 1e-9
local INF = math.huge
local floor, ceil = math.floor, math.ceil

local pack, unpackState = struct.pack, struct.unpack

local function num(s)
  if s == 'inf' then return INF end
  if s == '-inf' then return -INF end
  return tonumber(s)
end

local function denyAfter(wait)
  if wait < MIN_RETRY_MS then return MIN_RETRY_MS end
  return wait
end

-- One algorithm step. live: whether state (sa, sb, sc) exists. Returns
-- allowed, a, b, c, exp, remaining, retry, reset.
local function evaluate(code, p0, p1, p2, live, sa, sb, sc, cost, t)
  if code == 0 then
    local tat = t
    if live and sa > t then tat = sa end
    local newTat = tat + cost * p0
    local allowAt = newTat - p2
    local allowed, a, retry = false, tat, 0
    if allowAt <= t then
      allowed, a = true, newTat
    else
      retry = denyAfter(allowAt - t)
    end
    local rem = floor((t + p2 - a) / p0 + REMAINING_EPSILON)
    if rem < 0 then rem = 0 elseif rem > p1 then rem = p1 end
    local reset = a - t
    if reset < 0 then reset = 0 end
    -- b and c carry an outage's charges (see charge): kept while c, the
    -- time until which they are remembered, has not passed.
    local b, c, exp = 0, 0, a
    if live and sc > a then b, c, exp = sb, sc, sc end
    return allowed, a, b, c, exp, rem, retry, reset
  elseif code == 1 then
    local anchor, tokens = t, p0
    if live then
      anchor, tokens = sa, sb
      if t < anchor then
        local exp = anchor + ceil((p0 - tokens) / p1) * p2
        return false, anchor, tokens, 0, exp, 0, denyAfter(anchor - t), exp - t
      end
      local k = floor((t - anchor) / p2)
      if k > 0 then
        tokens = tokens + k * p1
        if tokens > p0 then tokens = p0 end
        anchor = anchor + k * p2
      end
    end
    local allowed, retry = false, 0
    if tokens >= cost then
      allowed = true
      tokens = tokens - cost
    else
      retry = denyAfter(anchor + ceil((cost - tokens) / p1) * p2 - t)
    end
    local exp, reset = -INF, 0
    if tokens < p0 then
      exp = anchor + ceil((p0 - tokens) / p1) * p2
      reset = exp - t
    end
    return allowed, anchor, tokens, 0, exp, floor(tokens), retry, reset
  elseif code == 2 or code == 3 then
    local start, finish, count
    count = 0
    if code == 2 then
      local idx = floor(t / p0)
      if live and sa > idx then
        local exp = (sa + 1) * p0
        return false, sa, sb, 0, exp, 0, denyAfter(sa * p0 - t), exp - t
      end
      if live and sa == idx then count = sb end
      start, finish = idx, (idx + 1) * p0
    else
      start = t
      if live then
        if t < sa then
          local exp = sa + p0
          return false, sa, sb, 0, exp, 0, denyAfter(sa - t), exp - t
        end
        if t < sa + p0 then
          start, count = sa, sb
        end
      end
      finish = start + p0
    end
    local allowed, retry = false, 0
    if count + cost <= p1 then
      allowed = true
      count = count + cost
    else
      retry = denyAfter(finish - t)
    end
    local exp, reset = -INF, 0
    if count > 0 then
      exp = finish
      reset = exp - t
    end
    return allowed, start, count, 0, exp, p1 - count, retry, reset
  else
    local idx = floor(t / p0)
    if live and sa > idx then
      local exp = (sa + 2) * p0
      return false, sa, sb, sc, exp, 0, denyAfter(sa * p0 - t), exp - t
    end
    local cur, prev = 0, 0
    if live and sa == idx then
      cur, prev = sb, sc
    elseif live and sa == idx - 1 then
      prev = sb
    end
    local start = idx * p0
    local frac = (t - start) / p0
    local estimate = prev * (1 - frac) + cur
    local allowed, retry = false, 0
    if estimate + cost <= p1 then
      allowed = true
      cur = cur + cost
      estimate = estimate + cost
    elseif cur + cost <= p1 then
      retry = denyAfter(start + (1 - (p1 - cost - cur) / prev) * p0 - t)
    else
      local f = 1 - (p1 - cost) / cur
      if f < 0 then f = 0 end
      retry = denyAfter(start + p0 + f * p0 - t)
    end
    local exp = -INF
    if cur > 0 then exp = (idx + 2) * p0 elseif prev > 0 then exp = (idx + 1) * p0 end
    local rem = floor(p1 - estimate + REMAINING_EPSILON)
    if rem < 0 then rem = 0 end
    local reset = 0
    if exp > t then reset = exp - t end
    return allowed, idx, cur, prev, exp, rem, retry, reset
  end
end

-- Gives cost back to live state; returns a, b, c, exp.
local function refund(code, p0, p1, p2, sa, sb, sc, cost, t)
  if code == 0 then
    local a = sa - cost * p0
    if a > t then return a, 0, 0, a end
    return a, 0, 0, -INF
  elseif code == 1 then
    local anchor, tokens = sa, sb
    if t > anchor then
      local k = floor((t - anchor) / p2)
      if k > 0 then
        tokens = tokens + k * p1
        anchor = anchor + k * p2
      end
    end
    tokens = tokens + cost
    if tokens > p0 then tokens = p0 end
    -- A booked interval not yet started replaced an empty one: deny until it starts.
    if tokens >= p0 then
      if anchor > t then return anchor, tokens, 0, anchor end
      return anchor, tokens, 0, -INF
    end
    return anchor, tokens, 0, anchor + ceil((p0 - tokens) / p1) * p2
  elseif code == 2 or code == 3 then
    local count = sb - cost
    if count < 0 then count = 0 end
    if count <= 0 then
      -- Likewise a booked window not yet started: the one it replaced was full.
      local start = sa
      if code == 2 then start = sa * p0 end
      if start > t then return sa, count, sc, start end
      return sa, count, sc, -INF
    end
    if code == 2 then return sa, count, sc, (sa + 1) * p0 end
    return sa, count, sc, sa + p0
  else
    local idx = floor(t / p0)
    local cur, prev = sb, sc
    if sa < idx then
      if sa == idx - 1 then prev = cur else prev = 0 end
      cur = 0
    end
    local take = cost
    if cur < take then take = cur end
    cur = cur - take
    prev = prev - (cost - take)
    if prev < 0 then prev = 0 end
    local base = idx
    if sa > idx then base = sa end
    local exp = -INF
    if cur > 0 then exp = (base + 2) * p0 elseif prev > 0 then exp = (base + 1) * p0 end
    return base, cur, prev, exp
  end
end

-- Consumes cost unconditionally (the reconciliation of an outage); returns
-- a, b, c, exp. State may go past the limit: the key then waits it off.
-- GCRA's charge of an outage's units as of a past moment t (op 5): several
-- nodes' charges for one outage must add up in the past. b is the
-- theoretical arrival time of the outage's charges alone, remembered until
-- c, CHARGE_MEMORY_MS after r, when Redis began admitting again: a node's
-- present admissions in between (TAT moved to now) do not make the next
-- node's past charge count from now. But only what was spent while Redis
-- admitted nothing counts in the past. From r on, Redis decides for the
-- nodes that are back while the others may still admit by their fallbacks:
-- the part of the charges past r (units admitted after r, or beyond the
-- rate in the outage) was spent beside what Redis granted, and goes on top
-- of TAT. r is now when Redis has admitted nothing for a while (TAT a burst
-- behind now, or no state: an outage ends), the chain's r while it admits;
-- with no chain while it admits (a node fell back while the others kept
-- deciding in Redis), the whole charge goes on top.
local function chargePastGcra(p0, p2, live, sa, sb, sc, cost, t, clock)
  local idle = not live or sa + p2 <= clock
  local chained = live and sc > clock
  if not idle and not chained then
    local a = sa + cost * p0
    local exp = a
    if sc > exp then exp = sc end
    return a, sb, sc, exp
  end
  local r, prev = clock, -INF
  if chained then
    prev = sb
    if not idle then r = sc - CHARGE_MEMORY_MS end
  end
  local past = t
  if prev > past then past = prev end
  past = past + cost * p0
  local before, after = r, r
  if prev > before then before = prev end
  if t > before then before = t end
  if past > after then after = past end
  local a = r
  if live and sa > a then a = sa end
  a = a + (after - before)
  if past > a then a = past end
  local keep = r + CHARGE_MEMORY_MS
  local exp = a
  if keep > exp then exp = keep end
  return a, past, keep, exp
end

local function charge(code, p0, p1, p2, live, sa, sb, sc, cost, t)
  if code == 0 then
    local tat = t
    if live and sa > t then tat = sa end
    local a = tat + cost * p0
    return a, 0, 0, a
  elseif code == 1 then
    local anchor, tokens = t, p0
    if live then
      anchor, tokens = sa, sb
      if t > anchor then
        local k = floor((t - anchor) / p2)
        if k > 0 then
          tokens = tokens + k * p1
          if tokens > p0 then tokens = p0 end
          anchor = anchor + k * p2
        end
      end
    end
    tokens = tokens - cost
    return anchor, tokens, 0, anchor + ceil((p0 - tokens) / p1) * p2
  elseif code == 2 then
    local idx = floor(t / p0)
    local count = cost
    if live and sa >= idx then idx, count = sa, sb + cost end
    return idx, count, 0, (idx + 1) * p0
  elseif code == 3 then
    if live and t < sa + p0 then return sa, sb + cost, 0, sa + p0 end
    return t, cost, 0, t + p0
  else
    local idx = floor(t / p0)
    local cur, prev = 0, 0
    if live and sa >= idx then
      idx, cur, prev = sa, sb, sc
    elseif live and sa == idx - 1 then
      prev = sb
    end
    cur = cur + cost
    return idx, cur, prev, (idx + 2) * p0
  end
end

-- Clock. With a client clock, keys get a day of slack on their expiry: Redis
-- expires them by its own clock, which need not run with the client's.
local now
local slack = 0
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
  slack = 86400000
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
end

-- Gates.
local G = tonumber(ARGV[2])
if G == 0 then
  -- A probe of the circuit breaker (no gates, no entries): it must prove
  -- what a decision needs, that this node runs the script and accepts a
  -- write (an out-of-memory node answers a read-only call), so it writes the
  -- anchor for a millisecond.
  redis.call('SET', KEYS[1], '', 'PX', 1)
  return pack('<d', now)
end
local gsuffix, gcode, gp0, gp1, gp2 = {}, {}, {}, {}, {}
local i = 3
for g = 1, G do
  gsuffix[g] = '|' .. ARGV[i]
  gcode[g] = tonumber(ARGV[i + 1])
  gp0[g] = tonumber(ARGV[i + 2])
  gp1[g] = tonumber(ARGV[i + 3])
  gp2[g] = tonumber(ARGV[i + 4])
  i = i + 5
end

-- A batch that runs after its deadline is one its client has given up on
-- and decided by its fallback (a frozen server resuming, a client resending
-- what was in flight when the connection dropped): running it now would
-- charge those calls twice. It is refused, changing nothing.
local deadline = tonumber(ARGV[i + 3])
if deadline ~= nil and now > deadline then
  return redis.error_reply('TOOLATE ' .. string.format('%.3f', now) .. ' (the script clock): the batch ran after its deadline; nothing was changed')
end

local out, nout = { now }, 1
local mirror, nmirror = {}, 0
local base = KEYS[1] .. ':'

-- Per entry: states of each gate, read once, written once.
local live, sa, sb, sc, sexp, dirty, gkey = {}, {}, {}, {}, {}, {}, {}

-- Whether the entry's keys hold something other than our state (a key of
-- another type, or a string of another length): its hits are refused, the
-- foreign value is left alone, and the rest of the batch goes on.
local foreign = false

local function load(key)
  foreign = false
  for g = 1, G do
    gkey[g] = key .. gsuffix[g]
    local v = redis.pcall('GET', gkey[g])
    dirty[g] = false
    if type(v) == 'table' or (v and #v ~= 32) then
      foreign = true
      v = nil
    end
    if v then
      sa[g], sb[g], sc[g], sexp[g] = unpackState('<dddd', v)
      live[g] = sexp[g] > now
    else
      live[g], sa[g], sb[g], sc[g], sexp[g] = false, 0, 0, 0, -INF
    end
  end
end

local function store()
  for g = 1, G do
    local k = gkey[g]
    if dirty[g] then
      if live[g] and sexp[g] > now then
        local ttl = ceil(sexp[g] - now) + slack
        if ttl < 1 then ttl = 1 end
        redis.call('SET', k, pack('<dddd', sa[g], sb[g], sc[g], sexp[g]), 'PX', ttl)
      else
        redis.call('DEL', k)
      end
    end
    local m = nmirror
    mirror[m + 1], mirror[m + 2], mirror[m + 3] = sa[g], sb[g], sc[g]
    if live[g] then mirror[m + 4] = sexp[g] else mirror[m + 4] = -INF end
    nmirror = m + 4
  end
end

local function commit(g, a, b, c, exp)
  dirty[g] = true
  if exp <= now then
    live[g], sexp[g] = false, -INF
  else
    live[g], sa[g], sb[g], sc[g], sexp[g] = true, a, b, c, exp
  end
end

-- All gates at time t (state as of now); commits when all admit and doCommit.
-- Returns allowed, gate (0-based), remaining, retry, reset.
local ra, rb, rc, rexp, rok, rrem, rreset = {}, {}, {}, {}, {}, {}, {}
local function decideAt(cost, t, doCommit)
  if G == 1 then
    local ok, a, b, c, exp, rem, retry, reset = evaluate(gcode[1], gp0[1], gp1[1], gp2[1], live[1], sa[1], sb[1], sc[1], cost, t)
    if ok and doCommit then commit(1, a, b, c, exp) end
    return ok, 0, rem, retry, reset
  end
  local all, dRetry, dGate, first = true, 0, 0, true
  for g = 1, G do
    local ok, a, b, c, exp, rem, retry, reset = evaluate(gcode[g], gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], cost, t)
    ra[g], rb[g], rc[g], rexp[g], rok[g], rrem[g], rreset[g] = a, b, c, exp, ok, rem, reset
    if not ok then
      if first or retry > dRetry then
        dRetry, dGate = retry, g - 1
      end
      first = false
      all = false
    end
  end
  if all then
    local dRem, dReset = INF, 0
    dGate = 0
    for g = 1, G do
      if rrem[g] < dRem then dRem, dGate = rrem[g], g - 1 end
      if rreset[g] > dReset then dReset = rreset[g] end
      if doCommit then commit(g, ra[g], rb[g], rc[g], rexp[g]) end
    end
    return true, dGate, dRem, 0, dReset
  end
  local dRem, dReset = INF, 0
  for g = 1, G do
    local rem, reset = rrem[g], rreset[g]
    if rok[g] then
      local _, _, _, _, _, zrem, _, zreset = evaluate(gcode[g], gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], 0, t)
      rem, reset = zrem, zreset
    end
    if rem < dRem then dRem = rem end
    if reset > dReset then dReset = reset end
  end
  return false, dGate, dRem, dRetry, dReset
end

local function flags(ok, gate)
  if ok then return 1 + gate * 2 end
  return gate * 2
end

local function emit(f, rem, retry, reset)
  out[nout + 1], out[nout + 2], out[nout + 3], out[nout + 4] = f, rem, retry, reset
  nout = nout + 4
end

-- Units gate g can lease: the most, up to want, that it admits at once now,
-- or for GCRA by now + horizon (its future slots).
local function grantable(g, want, horizon)
  local code = gcode[g]
  local k
  if code == 0 then
    local base = now
    if live[g] and sa[g] > now then base = sa[g] end
    k = floor((now + horizon - base) / gp0[g] + gp1[g] + REMAINING_EPSILON)
    if k > want then k = want end
    if k < 0 then k = 0 end
    return k
  end
  local lo, hi = 0, want
  while lo < hi do
    local mid = ceil((lo + hi) / 2)
    if evaluate(code, gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], mid, now) then lo = mid else hi = mid - 1 end
  end
  return lo
end

-- Debits a lease of up to want units; appends 4 values (see the header).
local function lease(want, horizon)
  local k = want
  for g = 1, G do
    local n = grantable(g, k, horizon)
    if n < k then k = n end
  end
  if k == 0 then
    local _, gate, _, retry, reset = decideAt(1, now, false)
    emit(flags(false, gate), 0, retry, reset)
    return
  end
  local last, valid = now, INF
  for g = 1, G do
    local code = gcode[g]
    local a, b, c, exp = charge(code, gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], k, now)
    commit(g, a, b, c, exp)
    if code == 0 then
      if a - gp2[g] > last then last = a - gp2[g] end
    else
      local finish
      if code == 1 then finish = a + gp2[g] elseif code == 3 then finish = a + gp0[g] else finish = (a + 1) * gp0[g] end
      if finish < valid then valid = finish end
    end
  end
  emit(1, k, last - now, valid - now)
end

-- Decides one hit against the loaded states, appending 4 values to out.
local function hit(op, cost, maxWait)
  if op == 0 or op == 1 then
    local ok, gate, rem, retry, reset = decideAt(cost, now, op == 0)
    emit(flags(ok, gate), rem, retry, reset)
  elseif op == 2 then
    local t = now
    local ok, gate, rem, retry, reset = false, 0, 0, 0, 0
    local booked = false
    for round = 1, 1000 do
      ok, gate, rem, retry, reset = decideAt(cost, t, false)
      if ok then
        if t - now <= maxWait then
          ok, gate, rem, retry, reset = decideAt(cost, t, true)
          booked = true
        end
        break
      end
      if retry < MIN_RETRY_MS then retry = MIN_RETRY_MS end
      t = t + retry
      if t - now > maxWait then break end
    end
    if booked then
      emit(flags(true, gate), rem, t - now, reset + (t - now))
    else
      emit(flags(false, gate), rem, t - now, reset)
    end
  elseif op == 6 then
    lease(cost, maxWait)
  elseif op == 5 then
    -- As of when the units were spent (maxWait), not now: GCRA's TAT and a
    -- bucket run on from then, so a fleet that kept to its fallback shares is
    -- not silenced after the outage for what it already paid in time.
    local at = now
    if maxWait < now then at = maxWait end
    for g = 1, G do
      local a, b, c, exp
      if gcode[g] == 0 then
        a, b, c, exp = chargePastGcra(gp0[g], gp2[g], live[g], sa[g], sb[g], sc[g], cost, at, now)
      else
        a, b, c, exp = charge(gcode[g], gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], cost, at)
      end
      -- Kept a while even when already decayed: the other nodes' charges for
      -- the same outage come as of the same past moment and must add up
      -- (each alone may have run out by now, all of them together not).
      -- Every algorithm reads its state by time, so a kept state that has
      -- run out still decides as "never seen". (GCRA keeps its own memory.)
      if gcode[g] ~= 0 and exp < now + CHARGE_MEMORY_MS then exp = now + CHARGE_MEMORY_MS end
      commit(g, a, b, c, exp)
    end
    emit(0, 0, 0, 0)
  elseif op == 3 then
    for g = 1, G do
      if live[g] then
        local a, b, c, exp = refund(gcode[g], gp0[g], gp1[g], gp2[g], sa[g], sb[g], sc[g], cost, now)
        commit(g, a, b, c, exp)
      end
    end
    emit(0, 0, 0, 0)
  else
    for g = 1, G do
      dirty[g] = true
      live[g], sexp[g] = false, -INF
    end
    emit(0, 0, 0, 0)
  end
end

local keys, pos = ARGV[i + 1], 1
local specs = string.gmatch(ARGV[i + 2], '([^,]*),')
for len in string.gmatch(ARGV[i], '(%d+),') do
  local n = tonumber(len)
  local spec = specs()
  load(base .. string.sub(keys, pos, pos + n - 1))
  pos = pos + n
  if foreign then
    -- flags -1: the caller raises a typed error for each of these hits.
    if spec == '' then
      emit(-1, 0, 0, 0)
    else
      for _ in string.gmatch(spec, '(%d+) (%d+) (%S+)') do emit(-1, 0, 0, 0) end
    end
    for g = 1, G do dirty[g], live[g] = false, false end
  elseif spec == '' then
    hit(0, 1, 0)
  else
    for op, cost, maxWait in string.gmatch(spec, '(%d+) (%d+) (%S+)') do
      hit(tonumber(op), tonumber(cost), num(maxWait))
    end
  end
  store()
end

for m = 1, nmirror do out[nout + m] = mirror[m] end
nout = nout + nmirror
-- Packed 100 at a time: unpack() of a long table would overflow the Lua stack.
local chunks = {}
local full = '<' .. string.rep('d', 100)
for first = 1, nout, 100 do
  local last = first + 99
  if last > nout then
    chunks[#chunks + 1] = pack('<' .. string.rep('d', nout - first + 1), unpack(out, first, nout))
  else
    chunks[#chunks + 1] = pack(full, unpack(out, first, last))
  end
end
return table.concat(chunks)
