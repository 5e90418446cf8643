-- release.lua: OP_RELEASE and OP_RENEW. A permit of cost holders, taken or
-- last renewed at `at` (this script's clock, epoch ms), given back to every
-- concurrency gate of the key, or renewed there (concurrency.lua's hold).
-- The other gates are untouched: what a request consumed of a rate stays
-- consumed when it finishes.
-- Emits flags (ALLOWED when every concurrency gate holds the permit; a
-- release: always), 0, 0, 0.

--#include state.lua
--#include incarnation.lua

local function holdAll(cost, at, renew)
  local all = true
  -- Counted by a Redis that has since lost its state (incarnation.lua): a
  -- release has nothing to give back, a renewal takes the slots afresh.
  if at < entryIncarnation then
    if not renew then
      emit(flags(true, 0), 0, 0, 0)
      return
    end
    at = 0
  end
  for g = 1, G do
    if gcode[g] == KIND_CONCURRENCY and (live[g] or renew) then
      local held, a, b, c, exp = CONCURRENCY.hold(gp0[g], gp1[g], live[g], sa[g], sb[g], sc[g], cost, at, now, renew)
      if held then commit(g, a, b, c, exp) else all = false end
    end
  end
  emit(flags(all, 0), 0, 0, 0)
end

local function release(cost, at) holdAll(cost, at, false) end
local function renew(cost, at) holdAll(cost, at, true) end
