-- block.lua: OP_BLOCK. Blocks the key for `duration` ms from now (its block
-- gate's state becomes "blocked until now + duration", whatever it held: a
-- count of denials, an earlier block, longer or shorter), or unblocks it
-- when `duration` is 0 (the denials counted toward a block are forgotten
-- too). A batch whose gates end with no block gate refuses it.
-- Emits flags (ALLOWED), the block's end (epoch ms on the script's clock; 0
-- when unblocked), 0, 0.

--#include state.lua

local function block(cost, duration)
  if BG == nil then return redis.error_reply('cellgate: OP_BLOCK without a block gate') end
  local untilAt = 0
  if duration > 0 then
    untilAt = now + duration
    commit(BG, untilAt, -1, 0, untilAt)
  else
    dirty[BG] = true
    live[BG], sexp[BG] = false, -INF
  end
  emit(ALLOWED, untilAt, 0, 0)
end
