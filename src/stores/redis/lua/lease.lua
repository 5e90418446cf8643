-- lease.lua: OP_LEASE. Debits at once k units for a client to spend on its
-- own: the most, up to want, that every gate grants. A count-based gate
-- grants what it admits now; a GCRA gate also its slots up to now + horizon
-- (unit j of k may be spent at last - (k - j) * interval).
-- Emits flags 1, k, last - now (ms; 0 without a GCRA gate), and how long the
-- units stay valid (ms): until the earliest window or refill boundary of a
-- count-based gate (inf without one), since spending them in the next window
-- would exceed that window's limit. With k = 0: the denial of a single unit
-- (flags, 0, retryAfterMs, resetAfterMs).

--#include gates.lua

-- Units gate g grants: the most, up to want, that it admits at once now, or
-- for GCRA by now + horizon (its burst at the TAT, and one more each interval).
local function grantable(g, want, horizon)
  if gcode[g] == KIND_GCRA then
    local tat = now
    if live[g] and sa[g] > now then tat = sa[g] end
    local k = floor((now + horizon - tat) / gp0[g] + gp1[g] + REMAINING_EPSILON)
    if k > want then k = want end
    if k < 0 then k = 0 end
    return k
  end
  -- Admission is monotone in cost: the largest admitted by bisection.
  local lo, hi = 0, want
  while lo < hi do
    local mid = ceil((lo + hi) / 2)
    if gevaluate[g](gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], mid, now) then lo = mid else hi = mid - 1 end
  end
  return lo
end

local function lease(want, horizon)
  local k = want
  -- (The block gate grants everything or, blocked, nothing.)
  for g = 1, G do
    local n = grantable(g, k, horizon)
    if n < k then k = n end
  end
  if k == 0 then
    local _, gate, _, retry, reset, blocked = decideAt(1, now, false)
    emit(flags(false, gate, blocked), 0, retry, reset)
    return
  end
  local last, valid = now, INF
  for g = 1, RG do
    local code = gcode[g]
    local a, b, c, exp = gcharge[g](gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], k, now)
    commit(g, a, b, c, exp)
    if code == KIND_GCRA then
      -- The last unit conforms at its TAT less the tolerance.
      if a - gp2[g] > last then last = a - gp2[g] end
    else
      -- The end of the window (interval) the units were counted in.
      local finish
      if code == KIND_TOKEN_INTERVAL then finish = a + gp2[g] elseif code == KIND_LINEAR then finish = a + gp0[g] else finish = (a + 1) * gp0[g] end
      if finish < valid then valid = finish end
    end
  end
  emit(1, k, last - now, valid - now)
end
