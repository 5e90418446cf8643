-- reset.lua: OP_RESET. Forgets the key in every gate, as never seen.
-- Emits 0, 0, 0, 0.

--#include state.lua

local function reset()
  for g = 1, G do
    dirty[g] = true
    live[g], sexp[g] = false, -INF
  end
  emit(0, 0, 0, 0)
end
