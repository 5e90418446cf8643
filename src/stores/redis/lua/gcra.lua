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
-- charges of several nodes for one outage must add up in the past: b is the
-- TAT of the outage's charges alone, remembered until c, CHARGE_MEMORY_MS
-- after r, when Redis began admitting again: a node's present admissions in
-- between (which move the TAT to now) do not make the next node's past
-- charge count from now. But only what was spent while Redis admitted
-- nothing counts in the past. From r on, Redis decides for the nodes that
-- are back while the others may still admit by their fallbacks: the part of
-- the charges past r (units admitted after r, or beyond the rate in the
-- outage) was spent beside what Redis granted, and goes on top of the TAT.
-- r is now when Redis has admitted nothing for a while (the TAT a burst
-- behind now, or no state: an outage ends), the chain's r while it admits;
-- with no chain while it admits (a node fell back while the others kept
-- deciding in Redis), the whole charge goes on top.
function GCRA.chargePast(p0, p2, live, sa, sb, sc, cost, t, clock)
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
