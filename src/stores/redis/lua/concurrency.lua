-- concurrency.lua: the concurrency gate (code KIND_CONCURRENCY): at most L
-- holders at once, each counted in the lease epoch (floor(t / E)) of its
-- acquisition or last renewal and through the next, so that a holder never
-- released stops counting between E and 2E after it was last renewed.
-- Functions as algorithms.lua says, plus hold (release and renew).
--
-- Parameters: p0 the lease epoch E (ms, the policy's leaseMs), p1 the limit L.
-- State: a the latest epoch with holders (later than now: a clock that went
-- back, read as current), b the holders counted in it, c those of the one
-- before. A refund and a charge are the sliding window's (the same two counts).

--#include sliding-window.lua

local CONCURRENCY = { refund = SLIDING.refund, charge = SLIDING.charge }

-- The holders as of t: epoch index, current count, previous count.
local function rollHolders(p0, live, sa, sb, sc, t)
  local idx = floor(t / p0)
  if live and sa >= idx then return sa, sb, sc end
  if live and sa == idx - 1 then return idx, 0, sb end
  return idx, 0, 0
end

-- The state and the numbers of a decision: a, b, c, exp, remaining, reset.
local function holders(p0, p1, idx, cur, prev, t)
  local exp = -INF
  if cur > 0 then exp = (idx + 2) * p0 elseif prev > 0 then exp = (idx + 1) * p0 end
  local rem = p1 - cur - prev
  if rem < 0 then rem = 0 end
  local reset = 0
  if exp > t then reset = exp - t end
  return idx, cur, prev, exp, rem, reset
end

function CONCURRENCY.evaluate(p0, p1, p2, live, sa, sb, sc, cost, t)
  local idx, cur, prev = rollHolders(p0, live, sa, sb, sc, t)
  local allowed, retry = false, 0
  if cur + prev + cost <= p1 then
    allowed = true
    cur = cur + cost
  elseif prev > 0 and cur + cost <= p1 then
    -- The previous epoch's holders stop counting when it ends (sooner if released).
    retry = denyAfter((idx + 1) * p0 - t)
  else
    retry = denyAfter((idx + 2) * p0 - t)
  end
  local a, b, c, exp, rem, reset = holders(p0, p1, idx, cur, prev, t)
  return allowed, a, b, c, exp, rem, retry, reset
end

-- Releases (renew false) or renews a permit of cost holders taken or last
-- renewed at `at`: a release takes them from the epoch they count in (none
-- once it has passed); a renewal moves them into the current epoch, or
-- takes them again when they no longer count and there is room. Returns
-- held (a release: true), a, b, c, exp.
function CONCURRENCY.hold(p0, p1, live, sa, sb, sc, cost, at, t, renew)
  local idx, cur, prev = rollHolders(p0, live, sa, sb, sc, t)
  local epochOf = floor(at / p0)
  local held = true
  if epochOf == idx and cur >= cost then
    if not renew then cur = cur - cost end
  elseif epochOf == idx - 1 and prev >= cost then
    prev = prev - cost
    if renew then cur = cur + cost end
  elseif renew then
    if cur + prev + cost <= p1 then cur = cur + cost else held = false end
  end
  local a, b, c, exp = holders(p0, p1, idx, cur, prev, t)
  return held, a, b, c, exp
end
