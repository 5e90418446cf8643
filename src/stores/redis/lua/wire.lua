-- wire.lua: the call's arguments read, and its reply packed. Every argument
-- is documented here, once; redis-binding.ts writes and reads them.
--
-- KEYS[1]  the shard's anchor key "<prefix>{<shard>}": on a Cluster every
--          key of one call shares its hash tag (the virtual shard), so the
--          call lives in one cluster slot; state keys are built from an
--          entry's anchor (state.lua: this one unless `anchors` says
--          otherwise), and nothing is stored under it but a probe's 1 ms
--          write
-- ARGV[1]  now override in epoch ms ("" = use Redis TIME, the only clock in
--          production; the override exists for tests and time: 'client')
-- ARGV[2]  G, the number of gates (0: a probe of the circuit breaker, with no
--          further arguments); then per gate 5 values:
--            id (a string naming the policy: limiters with the same policy
--            share state), code (KIND_* in constants.lua), p0, p1, p2 (the
--            algorithm's file says what they mean); the last may be the
--            limiter's block gate (KIND_BLOCK: block-gate.lua, state.lua)
-- then the plan (plan.lua), 1 value, or 3 for a limiter with plans:
--          name      "" for a limiter without plans; otherwise its name: each
--                    key keeps a record of the plan its state is under
--          version   the version of the batch's plan (an integer from 0)
--          carry     how a key moves from its recorded plan to this one:
--                    CARRY_PROPORTIONAL, CARRY_AS_IS or CARRY_RESET (0, 1, 2)
-- then the batch's entries in 3 values (3 strings for the whole batch, not
-- per entry: argument encoding dominates the client's cost), and one more:
--          lengths   "n1,n2,...," the byte length of each entry's key
--          keys      the entries' keys (the user's keys), concatenated
--          hits      "h1,h2,...," each entry's hits, decided in order: empty
--                    for the common single limit of cost 1, otherwise
--                    "op cost arg" triples separated by spaces, op an OP_*
--                    code, cost in whole units, arg a number ("inf" and
--                    "-inf" too) whose meaning depends on op:
--                      OP_LIMIT, OP_PEEK, OP_REFUND, OP_RESET  unused (0)
--                      OP_RESERVE  maxWait, the longest wait to book (ms)
--                      OP_CHARGE   the epoch ms on the script's clock as of
--                                  which the units were spent (an outage's
--                                  start)
--                      OP_LEASE    the horizon (ms) of GCRA's future slots
--                      OP_RELEASE, OP_RENEW  the permit's time: the epoch
--                                  ms on the script's clock at which it was
--                                  taken or last renewed
--                      OP_BLOCK    the block's duration (ms); 0 unblocks
--                      OP_LOWER    the remaining to lower the key to (a
--                                  count from 0, what an upstream reported;
--                                  cost is 0): lower.lua
--          deadline  (optional) epoch ms on the script's clock after which
--                    the batch is refused unrun (TOOLATE): its client has
--                    stopped waiting and decided it by its fallback
--          anchors   (optional; only to a single server, never a Cluster)
--                    "" when every entry belongs to KEYS[1]; otherwise
--                    "<shard>=<count>," per run of entries, in order: the
--                    next count entries' states live under that virtual
--                    shard's anchor "<prefix>{<shard>}" (the prefix is
--                    KEYS[1]'s), so one call decides the batch of every
--                    shard of a server
--
-- Returns one bulk string of little-endian doubles (Redis would truncate Lua
-- numbers to integers, and formatting fractions costs more than the
-- arithmetic): now; then per hit 4 values (each op's file says which;
-- flags is ALLOWED + the 0-based gate * 2^GATE_SHIFT (+ BLOCKED when the
-- key's block denied it, + STALE when its recorded plan decided it instead
-- of the batch's: plan.lua), as the core's decisions, or -1 for a hit refused
-- on a foreign value); then per entry
-- per gate 4 values: a, b, c, exp, the state after the entry's hits for
-- the caller's local mirror (exp -inf = no state).

--#include prelude.lua

local pack = struct.pack

local function num(s)
  if s == 'inf' then return INF end
  if s == '-inf' then return -INF end
  return tonumber(s)
end

-- Clock. With a client clock, keys get a day of slack on their expiry: Redis
-- expires them by its own clock, which need not run with the client's.
local now
local slack = 0
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
  slack = 86400000
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
end

-- Gates.
local G = tonumber(ARGV[2])
local gid, gcode, gp0, gp1, gp2 = {}, {}, {}, {}, {}
local i = 3
for g = 1, G do
  gid[g] = ARGV[i]
  gcode[g] = tonumber(ARGV[i + 1])
  gp0[g] = tonumber(ARGV[i + 2])
  gp1[g] = tonumber(ARGV[i + 3])
  gp2[g] = tonumber(ARGV[i + 4])
  i = i + 5
end

-- Plan.
local PNAME, PVERSION, PVERSION_TEXT, PCARRY = ARGV[i], nil, nil, nil
if PNAME == nil or PNAME == '' then
  PNAME, i = nil, i + 1
else
  PVERSION_TEXT = ARGV[i + 1]
  PVERSION, PCARRY, i = tonumber(PVERSION_TEXT), tonumber(ARGV[i + 2]), i + 3
end

local deadline = tonumber(ARGV[i + 3])

-- The entries in order, read here at once (not by an iterator: a Lua call
-- per entry costs a few per cent of a batch): E of them, entry e's key
-- ekey[e] and its hits string ehits[e].
local ekey, ehits, ebase, E = {}, {}, {}, 0
do
  -- (A probe may send none of the three.)
  local keys, pos = ARGV[i + 1], 1
  local specs = string.gmatch(ARGV[i + 2] or '', '([^,]*),')
  for len in string.gmatch(ARGV[i] or '', '(%d+),') do
    local n = tonumber(len)
    E = E + 1
    ekey[E], ehits[E] = string.sub(keys, pos, pos + n - 1), specs()
    pos = pos + n
  end
  -- Each entry's state keys start with its anchor and ':' (state.lua).
  local e = 0
  -- (A prefix holds no braces: the store refuses them.)
  local prefix = string.match(KEYS[1], '^([^{}]*){%d+}$')
  for shard, count in string.gmatch(ARGV[i + 4] or '', '(%d+)=(%d+),') do
    if prefix == nil then return redis.error_reply('cellgate: anchors sent with a key that names no shard: ' .. KEYS[1]) end
    local base = prefix .. '{' .. shard .. '}:'
    for _ = 1, tonumber(count) do
      e = e + 1
      ebase[e] = base
    end
  end
  if e ~= 0 and e ~= E then return redis.error_reply('cellgate: anchors name ' .. e .. ' entries of ' .. E) end
  local base = KEYS[1] .. ':'
  for f = e + 1, E do ebase[f] = base end
end

-- The hits of a non-empty hits string: an iterator of op, cost, arg.
local function eachHit(spec)
  local triples = string.gmatch(spec, '(%d+) (%d+) (%S+)')
  return function()
    local op, cost, arg = triples()
    if op == nil then return nil end
    return tonumber(op), tonumber(cost), num(arg)
  end
end

-- The reply: out holds now and the hits' values, mirror the states (written
-- by state.lua's store()).
local out, nout = { now }, 1
local mirror, nmirror = {}, 0

-- STALE while the entry is decided by its recorded plan, not the batch's (plan.lua).
local entryStale = 0

local function flags(ok, gate, blocked)
  local f = gate * 2 ^ GATE_SHIFT + entryStale
  if ok then return f + ALLOWED end
  if blocked then return f + BLOCKED end
  return f
end

-- A hit's 4 values.
local function emit(f, rem, retry, reset)
  out[nout + 1], out[nout + 2], out[nout + 3], out[nout + 4] = f, rem, retry, reset
  nout = nout + 4
end

-- The reply's bulk string.
local function reply()
  for m = 1, nmirror do out[nout + m] = mirror[m] end
  nout = nout + nmirror
  -- Packed 100 at a time: unpack() of a long table would overflow the Lua stack.
  local chunks = {}
  local full = '<' .. string.rep('d', 100)
  for first = 1, nout, 100 do
    local last = first + 99
    if last > nout then
      chunks[#chunks + 1] = pack('<' .. string.rep('d', nout - first + 1), unpack(out, first, nout))
    else
      chunks[#chunks + 1] = pack(full, unpack(out, first, last))
    end
  end
  return table.concat(chunks)
end
