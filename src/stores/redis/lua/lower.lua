-- lower.lua: OP_LOWER. Brings the key's remaining down to `target` (what an
-- upstream's own counter reported: "40 remain"), never up, in one step of
-- the script, so that stores applying the same report at once lower the
-- key once (the second finds it already there) and never below it.
--
-- Each rate gate's remaining is what a peek of cost 1 finds admissible now:
-- 0 when it would deny, else its remaining after that request + 1. When the
-- fewest of them (r) is above target, the gate with the fewest (the first
-- on ties) is charged r - target units now, as a penalty is (charge.lua):
-- the least change that makes the key admit no more than the upstream said
-- (looked at again, and charged what is still above target, while a
-- rounding of GCRA's remaining leaves it there: LOWER_PASSES).
-- The other gates keep their counts (a day quota is not drained to a
-- minute's); concurrency gates and the key's block are not rate gates and
-- are untouched. The same as the embedded binding's lower, bit for bit.
-- Emits 0, the remaining before (r; inf without a rate gate), 0, 0.

--#include state.lua

-- The key's rate gate with the fewest remaining (what a peek of cost 1
-- finds admissible now) and how many: nil, INF without a rate gate.
local function fewestRemaining()
  local fewest, gate = INF, nil
  for g = 1, RG do
    if gcode[g] ~= KIND_CONCURRENCY then
      local ok, _, _, _, _, rem = gevaluate[g](gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], 1, now)
      local r = 0
      if ok then r = rem + 1 end
      if r < fewest then fewest, gate = r, g end
    end
  end
  return gate, fewest
end

local function lower(_, target)
  local gate, fewest = fewestRemaining()
  local before = fewest
  -- Charged again only when rounding left it above target (LOWER_PASSES).
  for _ = 1, LOWER_PASSES do
    if gate == nil or fewest <= target then break end
    commit(gate, gcharge[gate](gp0[gate], gp1[gate], gp2[gate], live[gate], sa[gate], sb[gate], sc[gate], fewest - target, now))
    gate, fewest = fewestRemaining()
  end
  emit(0, before, 0, 0)
end
