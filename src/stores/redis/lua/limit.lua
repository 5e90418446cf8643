-- limit.lua: OP_LIMIT and OP_PEEK. A request of cost units now, against
-- every gate (gates.lua); limit takes the units when all admit, peek only
-- tells whether it would.
-- Emits flags, remaining, retryAfterMs (0 when allowed), resetAfterMs.

--#include gates.lua

local function limit(cost)
  local ok, gate, rem, retry, reset = decideAt(cost, now, true)
  emit(flags(ok, gate), rem, retry, reset)
end

local function peek(cost)
  local ok, gate, rem, retry, reset = decideAt(cost, now, false)
  emit(flags(ok, gate), rem, retry, reset)
end
