-- state.lua: one entry's states, a state per gate, read once from Redis and
-- written once, after all the entry's hits.
--
-- State of gate g of key k lives at "<anchor>:<k>|<gate id>" as 32 bytes
-- (the anchor is the entry's: KEYS[1], or another shard's; see wire.lua),
-- the little-endian doubles a, b, c, exp (binary, so times survive exactly and
-- nothing is formatted or parsed), with a PX expiry at the time the state
-- decays to "never seen" (plus a day with a client clock). No key = never
-- seen; a key whose exp has passed counts as none.
--
-- load(key, base) reads the entry's states (base: its anchor and ':'); the
-- ops read and change them through live, sa, sb, sc, sexp and commit(); store() writes what changed and
-- mirrors every state into the reply. gevaluate[g], grefund[g] and
-- gcharge[g] are gate g's algorithm's functions (algorithms.lua).
--
-- A key's block (block-gate.lua) is its limiter's last gate, BG (nil when
-- the client sent none); RG gates come before it. Its state lives like the
-- others', but is read only where a block may be: each anchor has a marker,
-- "<anchor>:!<block gate id>" (no '|', so never a state key), which lives at
-- least as long as any block or count of its shard, and a missing marker
-- (the common case: no key of the shard ever blocked) means no block state,
-- at one GET a batch instead of one a key.

--#include wire.lua
--#include algorithms.lua

local unpackState = struct.unpack

local gsuffix, gevaluate, grefund, gcharge = {}, {}, {}, {}
for g = 1, G do
  gsuffix[g] = '|' .. gid[g]
  local algorithm = ALGORITHMS[gcode[g]]
  if algorithm == nil then return redis.error_reply('cellgate: unknown algorithm code ' .. tostring(gcode[g])) end
  gevaluate[g], grefund[g], gcharge[g] = algorithm.evaluate, algorithm.refund, algorithm.charge
end

local live, sa, sb, sc, sexp, dirty, gkey = {}, {}, {}, {}, {}, {}, {}

local RG, BG = G, nil
if G > 0 and gcode[G] == KIND_BLOCK then RG, BG = G - 1, G end
-- Per anchor base, whether its marker exists (read once a call).
local marked = {}
local function markedAt(base)
  local m = marked[base]
  if m == nil then
    m = redis.call('EXISTS', base .. '!' .. gid[BG]) == 1
    marked[base] = m
  end
  return m
end

-- Whether the entry's keys hold something other than our state (a key of
-- another type, or a string of another length): its hits are refused, the
-- foreign value is left alone, and the rest of the batch goes on.
local foreign = false

-- A limiter with plans: plan.lua, included at the end, sets these.
local planEntry, carryEntry, planStore
-- The recorded plan's gates to carry the entry's use from; whether its recorded plan decides it.
local carryList, swapped = nil, false
-- The batch's number of gates (G stands for the recorded plan's while it decides).
local bG = G

local ebaseNow
local function load(key, base)
  foreign = false
  ebaseNow = base
  key = base .. key
  if PNAME ~= nil and planEntry(key) then foreign = true end
  local unmarked = BG ~= nil and not markedAt(base)
  for g = 1, G do
    gkey[g] = key .. gsuffix[g]
    local v = nil
    if g ~= BG or not unmarked then v = redis.pcall('GET', gkey[g]) end
    dirty[g] = false
    if type(v) == 'table' or (v and #v ~= 32) then
      foreign = true
      v = nil
    end
    if v then
      sa[g], sb[g], sc[g], sexp[g] = unpackState('<dddd', v)
      live[g] = sexp[g] > now
    else
      live[g], sa[g], sb[g], sc[g], sexp[g] = false, 0, 0, 0, -INF
    end
  end
  if carryList ~= nil and not foreign then carryEntry(key) end
end

-- The entry's hits were refused: nothing is written, no state mirrored.
local function leaveForeign()
  for g = 1, G do dirty[g], live[g] = false, false end
end

local function store()
  -- The longest ttl of the entry's states, and whether one was written (plan.lua).
  local longest, changed = 0, false
  for g = 1, G do
    if dirty[g] then
      changed = true
      if live[g] and sexp[g] > now then
        local ttl = ceil(sexp[g] - now) + slack
        if ttl < 1 then ttl = 1 end
        redis.call('SET', gkey[g], pack('<dddd', sa[g], sb[g], sc[g], sexp[g]), 'PX', ttl)
        if g == BG then
          -- The shard's marker outlives every block state of it.
          local marker = ebaseNow .. '!' .. gid[BG]
          if redis.call('PTTL', marker) < ttl then redis.call('SET', marker, '', 'PX', ttl) end
          marked[ebaseNow] = true
        end
      else
        redis.call('DEL', gkey[g])
      end
    end
    if PNAME ~= nil and live[g] then
      local ttl = ceil(sexp[g] - now) + slack
      if ttl > longest then longest = ttl end
    end
    -- Into the reply (wire.lua), inline: this runs for every gate of every entry.
    if not swapped then
      local m = nmirror
      mirror[m + 1], mirror[m + 2], mirror[m + 3] = sa[g], sb[g], sc[g]
      if live[g] then mirror[m + 4] = sexp[g] else mirror[m + 4] = -INF end
      nmirror = m + 4
    end
  end
  if PNAME ~= nil then
    planStore(longest, changed)
    -- Decided by its recorded plan: no state of the batch's gates to mirror.
    if swapped then
      for _ = 1, bG do
        local m = nmirror
        mirror[m + 1], mirror[m + 2], mirror[m + 3], mirror[m + 4] = 0, 0, 0, -INF
        nmirror = m + 4
      end
    end
  end
end

-- Gate g's new state (a state that has decayed by now is none).
local function commit(g, a, b, c, exp)
  dirty[g] = true
  if exp <= now then
    live[g], sexp[g] = false, -INF
  else
    live[g], sa[g], sb[g], sc[g], sexp[g] = true, a, b, c, exp
  end
end

--#include plan.lua
