-- windows.lua: the counting windows, fixed (code KIND_FIXED) and linear
-- (code KIND_LINEAR). Functions as algorithms.lua says.
--
-- Parameters: p0 the window's length W (ms), p1 the limit L.
-- Fixed: windows are the multiples of W since the epoch; state a is the
-- window's index (floor(t / W)), b its count.
-- Linear: a window opens at a key's first admission and lasts W; state a is
-- when it opened, b its count.
-- A window later than now is one booked by a reservation: until it opens,
-- every request is denied (the current one was full, which is why).

--#include prelude.lua

local FIXED, LINEAR = {}, {}

-- Admits cost into a window holding count that ends at finish; a names the
-- window in the state.
local function admit(p1, a, count, finish, cost, t)
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
  return allowed, a, count, 0, exp, p1 - count, retry, reset
end

-- Gives cost back to the window that opens at opens and ends at finish.
-- `back(sa)`: the window before sa, and when it opens and ends.
local function giveBack(p1, sa, sb, sc, cost, t, opens, finish, back)
  local count = sb - cost
  -- A booked window not yet open, given back whole: the rest goes to the
  -- window before it, full for it to be booked (as the core does).
  while count < 0 and opens > t do
    count = count + p1
    sa, opens, finish = back(sa)
  end
  if count < 0 then count = 0 end
  if count <= 0 then
    -- A booked window not yet open stays: the one it replaced was full.
    if opens > t then return sa, count, sc, opens end
    return sa, count, sc, -INF
  end
  return sa, count, sc, finish
end

function FIXED.evaluate(p0, p1, p2, live, sa, sb, sc, cost, t)
  local idx = floor(t / p0)
  if live and sa > idx then
    local exp = (sa + 1) * p0
    return false, sa, sb, 0, exp, 0, denyAfter(sa * p0 - t), exp - t
  end
  local count = 0
  if live and sa == idx then count = sb end
  return admit(p1, idx, count, (idx + 1) * p0, cost, t)
end

function FIXED.refund(p0, p1, p2, sa, sb, sc, cost, t)
  return giveBack(p1, sa, sb, sc, cost, t, sa * p0, (sa + 1) * p0, function(i) return i - 1, (i - 1) * p0, i * p0 end)
end

-- Into the state's window when it is the current one or a booked later one.
function FIXED.charge(p0, p1, p2, live, sa, sb, sc, cost, t)
  local idx = floor(t / p0)
  local count = cost
  if live and sa >= idx then idx, count = sa, sb + cost end
  return idx, count, 0, (idx + 1) * p0
end

function LINEAR.evaluate(p0, p1, p2, live, sa, sb, sc, cost, t)
  local start, count = t, 0
  if live then
    if t < sa then
      local exp = sa + p0
      return false, sa, sb, 0, exp, 0, denyAfter(sa - t), exp - t
    end
    if t < sa + p0 then start, count = sa, sb end
  end
  return admit(p1, start, count, start + p0, cost, t)
end

function LINEAR.refund(p0, p1, p2, sa, sb, sc, cost, t)
  return giveBack(p1, sa, sb, sc, cost, t, sa, sa + p0, function(start) return start - p0, start - p0, start end)
end

-- Into the state's window while it has not ended at t, else into one opened at t.
function LINEAR.charge(p0, p1, p2, live, sa, sb, sc, cost, t)
  if live and t < sa + p0 then return sa, sb + cost, 0, sa + p0 end
  return t, cost, 0, t + p0
end
