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

local function carriedUse(used, fromCapacity, toCapacity, carry)
  if carry == CARRY_RESET or used <= 0 then return 0 end
  local units
  if carry == CARRY_AS_IS then
    local available = fromCapacity - used
    if available > toCapacity then available = toCapacity end
    units = toCapacity - available
  else
    units = used * toCapacity / fromCapacity
  end
  if units <= CARRY_EPSILON then return 0 end
  return ceil(units - CARRY_EPSILON)
end
