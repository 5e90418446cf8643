-- decide.lua: decides a batch of requests for one limiter's gates, atomically.
--
-- The entry of the script Redis runs (scripts/build-lua.mjs composes it from
-- the files it includes, each included once, its own includes first; the
-- composed text is build/lua/decide.lua). The files, one concept each:
--   constants.lua  the numbers shared with TypeScript and the core (op and
--                  algorithm codes, MIN_RETRY_MS, ...): build/abi.lua,
--                  generated from abi/abi.mjs
--   prelude.lua    math shortcuts, a denial's minimum wait
--   gcra.lua, token-bucket.lua, windows.lua, sliding-window.lua,
--   concurrency.lua, block-gate.lua (a key's block: a hidden last gate),
--   algorithms.lua the algorithms: evaluate, refund, charge of one state
--   wire.lua       the arguments (all of them documented there) and the reply
--   state.lua      an entry's states: load, commit, store
--   gates.lua      every gate decided together
--   limit.lua, reserve.lua, refund.lua, reset.lua, charge.lua, lease.lua,
--   release.lua (with incarnation.lua), block.lua, lower.lua
--                  the operations, one a file, dispatched below
--
-- One script for every operation, dispatching each hit by its op, rather
-- than a script per operation: a batch mixes operations, per entry and
-- across entries, and must be decided in order and atomically (an outage's
-- charge queued in front of a limit on the same key must be paid first, in
-- the same call, or Redis would grant the key its whole limit again); an
-- entry's states are read once and written once whatever its hits; and one
-- EVALSHA per shard per batch is the throughput path. A script per
-- operation would need a call per run of one op (or MULTI around several)
-- and a read and write of the states for each.

--#include limit.lua
--#include reserve.lua
--#include refund.lua
--#include reset.lua
--#include charge.lua
--#include lease.lua
--#include release.lua
--#include block.lua
--#include lower.lua

-- Each op takes (cost, arg) as wire.lua describes and emits 4 values.
local OPS = {
  [OP_LIMIT] = limit,
  [OP_PEEK] = peek,
  [OP_RESERVE] = reserve,
  [OP_REFUND] = refund,
  [OP_RESET] = reset,
  [OP_CHARGE] = charge,
  [OP_LEASE] = lease,
  [OP_RELEASE] = release,
  [OP_RENEW] = renew,
  [OP_BLOCK] = block,
  [OP_LOWER] = lower,
}

if G == 0 then
  -- A probe of the circuit breaker (no gates, no entries): it must prove
  -- what a decision needs, that this node runs the script and accepts a
  -- write (an out-of-memory node answers a read-only call), so it writes the
  -- anchor for a millisecond.
  redis.call('SET', KEYS[1], '', 'PX', 1)
  return pack('<d', now)
end

-- A batch that runs after its deadline is one its client has given up on
-- and decided by its fallback (a frozen server resuming, a client resending
-- what was in flight when the connection dropped): running it now would
-- charge those calls twice. It is refused, changing nothing.
if deadline ~= nil and now > deadline then
  return redis.error_reply('TOOLATE ' .. string.format('%.3f', now) .. ' (the script clock): the batch ran after its deadline; nothing was changed')
end

for e = 1, E do
  local spec = ehits[e]
  load(ekey[e], ebase[e])
  if HOLDS then entryIncarnation = incarnation(ebase[e]) end
  if foreign then
    -- flags -1: the caller raises a typed error for each of these hits.
    if spec == '' then
      emit(-1, 0, 0, 0)
    else
      for _ in eachHit(spec) do emit(-1, 0, 0, 0) end
    end
    leaveForeign()
  elseif spec == '' then
    limit(1)
  else
    for op, cost, arg in eachHit(spec) do
      local run = OPS[op]
      if run == nil then return redis.error_reply('cellgate: unknown op ' .. op) end
      -- (An op answers only to refuse the call: block.lua without a block gate.)
      local refused = run(cost, arg)
      if refused ~= nil then return refused end
    end
  end
  store()
end

return reply()
