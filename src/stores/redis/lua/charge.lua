-- charge.lua: OP_CHARGE. Consumes cost units in every gate without asking:
-- what a client admitted on its own while Redis was unreachable, charged
-- after recovery. As of spentAt (the epoch ms when the units were spent;
-- now if later), not now: GCRA's TAT and a bucket run on from then, so a fleet
-- that kept to its fallback shares is not silenced after the outage for what
-- it already paid in time.
-- spentAt inf is a penalty instead (below).
-- Emits 0, 0, 0, 0.

--#include state.lua

-- A penalty (Limiter.penalize, spentAt inf): cost charged now in every rate
-- gate, past the limit, like a request and with no outage to remember, as
-- the core charges it.
local function penalty(cost)
  for g = 1, RG do
    if gcode[g] ~= KIND_CONCURRENCY then
      commit(g, gcharge[g](gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], cost, now))
    end
  end
  emit(0, 0, 0, 0)
end

local function charge(cost, spentAt)
  local at = now
  if spentAt < now then at = spentAt end
  if spentAt == INF then return penalty(cost) end
  -- (Not the block gate: a block takes nothing.)
  for g = 1, RG do
    local a, b, c, exp
    if gcode[g] == KIND_CONCURRENCY then
      -- Nothing: an outage's holders come back to Redis by their own
      -- renewals (taken afresh there, redis-binding.ts), and those released
      -- meanwhile hold nothing; counting them all as of the outage's start
      -- would be the wrong epoch either way.
    elseif gcode[g] == KIND_GCRA then
      -- GCRA remembers the outage's own TAT (gcra.lua).
      a, b, c, exp = GCRA.chargePast(gp0[g], gp2[g], live[g], sa[g], sb[g], sc[g], cost, at, now)
    else
      a, b, c, exp = gcharge[g](gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], cost, at)
      -- Kept a while even when already decayed: the other nodes' charges
      -- for the same outage come as of the same past moment and must add
      -- up (each alone may have run out by now, all of them together not).
      -- Every algorithm reads its state by time, so a kept state that has
      -- run out still decides as "never seen".
      if exp < now + CHARGE_MEMORY_MS then exp = now + CHARGE_MEMORY_MS end
    end
    if a ~= nil then commit(g, a, b, c, exp) end
  end
  emit(0, 0, 0, 0)
end
