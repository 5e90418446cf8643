-- sliding-window.lua: the sliding window (code KIND_SLIDING), estimated from
-- two fixed windows: the previous one's count weighted by how much of it the
-- sliding window still covers, plus the current one's. Functions as
-- algorithms.lua says.
--
-- Parameters: p0 the window's length W (ms), p1 the limit L.
-- State: a the current window's index (floor(t / W); later than now: booked
-- by a reservation), b its count, c the previous window's count.

--#include prelude.lua

local SLIDING = {}

function SLIDING.evaluate(p0, p1, p2, live, sa, sb, sc, cost, t)
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
    -- Admitted once the previous window's weight has shrunk enough.
    retry = denyAfter(start + (1 - (p1 - cost - cur) / prev) * p0 - t)
  else
    -- Only once this window is the previous one, weighted down enough.
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

-- Takes from the current window first, then from the previous one.
function SLIDING.refund(p0, p1, p2, sa, sb, sc, cost, t)
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

-- Into the state's window when it is the current one or a booked later one.
function SLIDING.charge(p0, p1, p2, live, sa, sb, sc, cost, t)
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
