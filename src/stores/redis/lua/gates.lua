-- gates.lua: every gate of an entry decided together: a request is admitted
-- only when every gate admits it, and a denial charges none.
--
-- decideAt(cost, t, doCommit) evaluates each gate at time t (the state as of
-- now; t > now for a reservation's later slot) and commits when all admit
-- and doCommit. Returns allowed, gate, remaining, retry, reset: on an
-- admission the gate with the fewest remaining (the one reported), the
-- fewest remaining and the longest reset; on a denial the denying gate with
-- the longest retry, and the fewest remaining and the longest reset as if
-- nothing were charged; and whether the key's block denied it.
--
-- The key's block (BG, block-gate.lua) is decided first: a blocked key is
-- denied and charged nothing, with the longest wait of all and the rate
-- gates' numbers as they stand (what the core's decideAt reports, bit for
-- bit). It is never the gate reported.

--#include state.lua

local ra, rb, rc, rexp, rok, rrem, rreset = {}, {}, {}, {}, {}, {}, {}

local rateDecideAt

local function decideAt(cost, t, doCommit)
  local bretry, breset = nil, nil
  if BG ~= nil then bretry, breset = BLOCK.blockedAt(live[BG], sa[BG], sb[BG], t) end
  if bretry == nil then
    local ok, gate, rem, retry, reset = rateDecideAt(cost, t, doCommit)
    return ok, gate, rem, retry, reset, false
  end
  local ok, gate, _, retry, reset = rateDecideAt(cost, t, false)
  if ok then
    -- Admitted by every rate gate: reported as they stand, as on a denial.
    gate, retry, reset = 0, bretry, 0
    for g = 1, RG do
      local _, _, _, _, _, _, _, zreset = gevaluate[g](gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], 0, t)
      if zreset > reset then reset = zreset end
    end
  elseif bretry > retry then
    retry = bretry
  end
  if breset > reset then reset = breset end
  return false, gate, 0, retry, reset, true
end

rateDecideAt = function(cost, t, doCommit)
  local G = RG
  if G == 1 then
    -- The common case, without the bookkeeping of several gates.
    local ok, a, b, c, exp, rem, retry, reset = gevaluate[1](gp0[1], gp1[1], gp2[1], live[1], sa[1], sb[1], sc[1], cost, t)
    if ok and doCommit then commit(1, a, b, c, exp) end
    return ok, 0, rem, retry, reset
  end
  local all, dRetry, dGate, first = true, 0, 0, true
  for g = 1, G do
    local ok, a, b, c, exp, rem, retry, reset = gevaluate[g](gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], cost, t)
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
      -- An admitting gate reports as it stands, not with the cost it would take.
      local _, _, _, _, _, zrem, _, zreset = gevaluate[g](gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], 0, t)
      rem, reset = zrem, zreset
    end
    if rem < dRem then dRem = rem end
    if reset > dReset then dReset = reset end
  end
  return false, dGate, dRem, dRetry, dReset
end
