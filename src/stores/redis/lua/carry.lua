-- carry.lua: what a key's used capacity becomes when its plan changes, the
-- arithmetic of src/policies/carry.ts line for line (test/plans.test.ts
-- holds them equal): the use of a gate's state at now, in units of its
-- capacity (what is not available now, plus what is booked ahead, plus a
-- debt), and the whole units the new gate starts with used.

--#include prelude.lua

local CARRY_EPSILON = 1e-9

-- A gate's capacity from its code and parameters (CoreParams.capacity).
local function capacityOf(code, p0, p1)
  if code == KIND_TOKEN_INTERVAL then return p0 end
  return p1
end

local function usedOf(code, p0, p1, p2, live, a, b, c, t)
  if not live then return 0 end
  if code == KIND_GCRA then
    if a > t then return (a - t) / p0 end
    return 0
  elseif code == KIND_TOKEN_INTERVAL then
    if t < a then return p0 - b + p1 * ceil((a - t) / p2) end
    local tokens = b + floor((t - a) / p2) * p1
    if tokens > p0 then tokens = p0 end
    return p0 - tokens
  elseif code == KIND_FIXED then
    local idx = floor(t / p0)
    if a > idx then return p1 + b elseif a == idx then return b end
    return 0
  elseif code == KIND_LINEAR then
    if t < a then return p1 + b elseif t < a + p0 then return b end
    return 0
  elseif code == KIND_SLIDING then
    local idx = floor(t / p0)
    local inView = 1 - (t - idx * p0) / p0
    if a > idx then return p1 + b elseif a == idx then return c * inView + b elseif a == idx - 1 then return b * inView end
    return 0
  end
  return 0
end

local function carriedUse(used, fromCapacity, fromHorizon, toCode, toCapacity, toHorizon, carry)
  if carry == CARRY_RESET or used <= 0 then return 0 end
  local units
  if carry == CARRY_AS_IS then
    local available = fromCapacity - used
    if available > toCapacity then available = toCapacity end
    units = toCapacity - available
  else
    -- The share of the capacity used scales; what is owed past it is time,
    -- kept as time: scaled by the rates' ratio (carry.ts says why).
    local within, owed = used, 0
    if used > fromCapacity then within, owed = fromCapacity, used - fromCapacity end
    units = within * toCapacity / fromCapacity + owed * (toCapacity / toHorizon) / (fromCapacity / fromHorizon)
  end
  if units <= CARRY_EPSILON then return 0 end
  -- GCRA's TAT holds a fraction of a unit; the other algorithms count whole ones.
  if toCode == KIND_GCRA then return units end
  return ceil(units - CARRY_EPSILON)
end

-- The new gate's state holding units used at t, rid of them by endAt (the
-- old state's decay) or sooner: returns a, b, c, exp (carry.ts's
-- carriedState).
local function carriedState(code, p0, p1, p2, units, endAt, t)
  if code == KIND_GCRA then
    local tat = t + units * p0
    return tat, 0, 0, tat
  elseif code == KIND_TOKEN_INTERVAL then
    local tokens = p0 - units
    local steps = ceil(units / p1)
    local anchor = endAt - steps * p2
    if t < anchor then anchor = t end
    local step = p2 / 2
    if step > 1 then step = 1 end
    local earliest = t - p2 + step
    if anchor < earliest then anchor = earliest end
    return anchor, tokens, 0, anchor + steps * p2
  end
  -- A window's use past its limit fills the windows after it (full ones up
  -- to the last, which holds the rest), as its own reservations would.
  local ahead = 0
  if units > p1 then ahead = ceil(units / p1) - 1 end
  if code == KIND_FIXED then
    local idx = floor(t / p0)
    return idx + ahead, units - ahead * p1, 0, (idx + ahead + 1) * p0
  elseif code == KIND_LINEAR then
    local start = endAt - p0
    if t < start then start = t end
    start = start + ahead * p0
    return start, units - ahead * p1, 0, start + p0
  end
  -- KIND_SLIDING
  local idx = floor(t / p0)
  if ahead > 0 then return idx + ahead, units - ahead * p1, 0, (idx + ahead + 2) * p0 end
  if endAt <= (idx + 1) * p0 then return idx, 0, ceil(units / (1 - (t - idx * p0) / p0) - CARRY_EPSILON), (idx + 1) * p0 end
  return idx, units, 0, (idx + 2) * p0
end

-- A gate's time scale (carry.ts's horizonOf): how long its state lasts from
-- full use to none.
local function horizonOf(code, p0, p1, p2)
  if code == KIND_GCRA then return p2 end
  if code == KIND_TOKEN_INTERVAL then return ceil(p0 / p1) * p2 end
  if code == KIND_SLIDING then return 2 * p0 end
  return p0
end

-- The old gate (index into old, a list of {id, code, p0, p1, p2}) a new
-- gate that no old gate equals takes its use from: the nearest in time
-- scale among those not kept (kept[j]: the new plan has old gate j too),
-- the first on a tie; nil when there is none (carry.ts's carrySources).
local function carrySource(old, kept, code, p0, p1, p2)
  local h = horizonOf(code, p0, p1, p2)
  local best, distance = nil, INF
  for j = 1, #old do
    if not kept[j] then
      local q = old[j]
      local hq = horizonOf(q.code, q.p0, q.p1, q.p2)
      local d
      if h > hq then d = h / hq else d = hq / h end
      if d < distance then best, distance = j, d end
    end
  end
  return best
end
