-- limit.lua: OP_LIMIT and OP_PEEK. A request of cost units now, against
-- every gate (gates.lua); limit takes the units when all admit, peek only
-- tells whether it would. A denial of limit by the key's own gates (not by
-- its block) counts toward a block when its block gate escalates
-- (blockAfter: p0 > 0).
-- Emits flags, remaining, retryAfterMs (0 when allowed), resetAfterMs.

--#include gates.lua

local function limit(cost)
  local ok, gate, rem, retry, reset, blocked = decideAt(cost, now, true)
  if not ok and not blocked and BG ~= nil and gp0[BG] > 0 then
    commit(BG, BLOCK.countDenial(gp0[BG], gp1[BG], gp2[BG], live[BG], sa[BG], sb[BG], now))
  end
  emit(flags(ok, gate, blocked), rem, retry, reset)
end

local function peek(cost)
  local ok, gate, rem, retry, reset, blocked = decideAt(cost, now, false)
  emit(flags(ok, gate, blocked), rem, retry, reset)
end
