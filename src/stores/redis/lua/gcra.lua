-- gcra.lua: the generic cell rate algorithm (code KIND_GCRA; a continuous
-- token bucket is the same arithmetic). Functions as algorithms.lua says.
--
-- Parameters: p0 the emission interval T (ms a unit), p1 the burst B, p2 the
-- tolerance B * T.
-- State: a the TAT, the theoretical arrival time of the next unit. b and c
-- remember an outage's charges (GCRA.chargePast): b their own TAT, c until
-- when it is remembered; 0 and 0 without one.

--#include prelude.lua

local GCRA = {}

function GCRA.evaluate(p0, p1, p2, live, sa, sb, sc, cost, t)
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
  -- An outage's memory is kept while it lasts longer than the TAT does.
  local b, c, exp = 0, 0, a
  if live and sc > a then b, c, exp = sb, sc, sc end
  return allowed, a, b, c, exp, rem, retry, reset
end

-- Moves the TAT back by cost units; drops an outage's memory.
function GCRA.refund(p0, p1, p2, sa, sb, sc, cost, t)
  local a = sa - cost * p0
  if a > t then return a, 0, 0, a end
  return a, 0, 0, -INF
end

-- Moves the TAT on by cost units from t or from a later TAT; drops an
-- outage's memory.
function GCRA.charge(p0, p1, p2, live, sa, sb, sc, cost, t)
  local tat = t
  if live and sa > t then tat = sa end
  local a = tat + cost * p0
  return a, 0, 0, a
end

-- The charge of an outage's units as of a past moment t (clock: now). The
-- charges of several nodes for one outage must add up in the past: b, the
-- TAT of the outage's charges alone, is remembered until c, and the state's
-- TAT is at least b. A node's present admissions in between (which move the
-- TAT to now) then do not make the next node's past charge count from now.
function GCRA.chargePast(p0, live, sa, sb, sc, cost, t, clock)
  local past = t
  if live and sc > clock and sb > t then past = sb end
  past = past + cost * p0
  local a = past
  if live and sa > a then a = sa end
  local keep = clock + CHARGE_MEMORY_MS
  local exp = a
  if keep > exp then exp = keep end
  return a, past, keep, exp
end
