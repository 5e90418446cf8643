-- block-gate.lua: a key's block (code KIND_BLOCK), a limiter's hidden last
-- gate: it denies while the key is blocked and admits otherwise, taking
-- nothing; and it counts the key's denials toward a block (blockAfter).
-- Functions as algorithms.lua says, plus blockedAt and countDenial (gates.lua
-- and limit.lua use those; evaluate serves a lease's bisection).
--
-- Parameters: p0 the denials that block (0: no escalation), p1 within W (ms:
-- the count's linear window, from its first denial), p2 the block's duration
-- D (ms).
-- State: blocked: a = until, b = -1; counting: a = the first denial's time,
-- b = denials counted (at least 1). c is 0.

--#include prelude.lua

local BLOCK = {}

-- When the state decays to "never seen": the block's end, or the count's.
local function blockExp(p1, live, sa, sb)
  if not live then return -INF end
  if sb < 0 then return sa end
  return sa + p1
end

-- The wait and the reset of a request at t while the key is blocked, or nil.
function BLOCK.blockedAt(live, sa, sb, t)
  if live and sb < 0 and t < sa then return denyAfter(sa - t), sa - t end
  return nil
end

function BLOCK.evaluate(p0, p1, p2, live, sa, sb, sc, cost, t)
  local retry, reset = BLOCK.blockedAt(live, sa, sb, t)
  if retry ~= nil then return false, sa, sb, 0, sa, 0, retry, reset end
  return true, sa, sb, 0, blockExp(p1, live, sa, sb), INF, 0, 0
end

-- A block took nothing: a refund and a charge leave the state as it is.
function BLOCK.refund(p0, p1, p2, sa, sb, sc, cost, t)
  return sa, sb, 0, blockExp(p1, true, sa, sb)
end

function BLOCK.charge(p0, p1, p2, live, sa, sb, sc, cost, t)
  return sa, sb, 0, blockExp(p1, live, sa, sb)
end

-- A denial at t by the key's own gates (never while it is blocked): p0
-- denials within p1 ms block it for p2 ms from t.
function BLOCK.countDenial(p0, p1, p2, live, sa, sb, t)
  local start, count = t, 1
  if live and sb >= 1 and t < sa + p1 then start, count = sa, sb + 1 end
  if count >= p0 then return t + p2, -1, 0, t + p2 end
  return start, count, 0, start + p1
end
