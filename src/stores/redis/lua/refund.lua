-- refund.lua: OP_REFUND. Gives cost units back to every gate that holds a
-- state (a gate with none has nothing to give back to), but a concurrency
-- gate: holders are counted, not named, and a refund would free another's.
-- Emits 0, 0, 0, 0.

--#include state.lua

local function refund(cost)
  for g = 1, RG do
    -- A slot comes back by its permit's release (release.lua), never by a refund.
    if live[g] and gcode[g] ~= KIND_CONCURRENCY then
      commit(g, grefund[g](gp0[g], gp1[g], gp2[g], sa[g], sb[g], sc[g], cost, now))
    end
  end
  emit(0, 0, 0, 0)
end
