-- plan.lua: a limiter with plans (per-key policies, setPolicy): each key's
-- record of the plan its state is under, so that every node applies the
-- same plan to a key and a change carries the key's use instead of
-- resetting it.
--
-- The record of key k lives at "<anchor>:<k>|@<name>" (a gate id never
-- starts with '@'), "<version>;<gate id>,<gate id>,...;<until>" (the plan's
-- rate gates, and until when the record is kept, on the script's clock),
-- and outlives every state of the key: store() writes it again, for twice
-- as long, when a state would outlive it (no PTTL a call: its own value
-- says). A
-- planned limiter's gate ids are "<name>/<code>:<p0>:<p1>:<p2>", so its
-- states are its own, and the record names the parameters of each.
--
-- planEntry(key) compares the record with the batch's plan (wire.lua's
-- PNAME, PVERSION, PCARRY) before the entry's states are read:
--   no record, or the batch's gates: the batch's plan decides (a newer
--     version is recorded);
--   another plan, of a version not above the batch's: the batch's plan
--     decides, and carryEntry() moves the key's use from the recorded plan's
--     states into the batch's (carry.lua), deleting the old ones;
--   another plan, of a newer version: the batch's node is stale. The
--     recorded plan decides the entry (its gates stand in for the batch's
--     until the next entry: useRecordedPlan), its hits are flagged STALE and
--     its states are not mirrored: the node resolves the key's plan again.

--#include carry.lua

local PLAN = PNAME ~= nil
local planIds, recordKey, recordDirty = nil, nil, false
-- How the entry's move carries (PCARRY, but see planEntry).
local carryMode = PCARRY
-- The entry's record as read: its version and gates (text), and until when it is kept.
local recordVersion, recordList, recordUntil = nil, nil, -INF
-- The batch's gates, to restore after an entry its recorded plan decided.
local bRG, bBG = RG, BG
local bid, bcode, bp0, bp1, bp2 = {}, {}, {}, {}, {}
for g = 1, G do bid[g], bcode[g], bp0[g], bp1[g], bp2[g] = gid[g], gcode[g], gp0[g], gp1[g], gp2[g] end
if PLAN then
  local ids = {}
  for g = 1, RG do ids[g] = gid[g] end
  planIds = table.concat(ids, ',')
end

local function setGate(g, id, code, p0, p1, p2)
  gid[g], gcode[g], gp0[g], gp1[g], gp2[g] = id, code, p0, p1, p2
  gsuffix[g] = '|' .. id
  local algorithm = ALGORITHMS[code]
  gevaluate[g], grefund[g], gcharge[g] = algorithm.evaluate, algorithm.refund, algorithm.charge
end

-- A record's gate list as {id, code, p0, p1, p2} per gate (nil if malformed).
local function parseGates(list)
  local gates = {}
  for id in string.gmatch(list, '([^,]+)') do
    local code, p0, p1, p2 = string.match(id, '/(%d+):([^:/]+):([^:/]+):([^:/]+)$')
    code, p0, p1, p2 = tonumber(code), tonumber(p0), tonumber(p1), tonumber(p2)
    if code == nil or p0 == nil or p1 == nil or p2 == nil or ALGORITHMS[code] == nil or code == KIND_BLOCK or code == KIND_CONCURRENCY then return nil end
    gates[#gates + 1] = { id = id, code = code, p0 = p0, p1 = p1, p2 = p2 }
  end
  if #gates == 0 or #gates > MAX_GATES then return nil end
  return gates
end

local function useBatchPlan()
  if not swapped then return end
  for g = 1, bG do setGate(g, bid[g], bcode[g], bp0[g], bp1[g], bp2[g]) end
  for g = bG + 1, G do gid[g], gcode[g] = nil, nil end
  G, RG, BG = bG, bRG, bBG
  swapped, entryStale = false, 0
end

local function useRecordedPlan(gates)
  local n = #gates
  for j = 1, n do
    local q = gates[j]
    setGate(j, q.id, q.code, q.p0, q.p1, q.p2)
  end
  for g = n + 1, G do gid[g], gcode[g] = nil, nil end
  RG, G, BG = n, n, nil
  if bBG ~= nil then
    G, BG = n + 1, n + 1
    setGate(BG, bid[bBG], bcode[bBG], bp0[bBG], bp1[bBG], bp2[bBG])
  end
  swapped, entryStale = true, STALE
end

-- Returns true when the record is a foreign value (the entry's hits are refused).
planEntry = function(key)
  useBatchPlan()
  recordKey = key .. '|@' .. PNAME
  recordDirty, carryList, recordUntil = false, nil, -INF
  local rec = redis.pcall('GET', recordKey)
  if type(rec) == 'table' then return true end
  local v, list, kept = nil, nil, nil
  if rec then v, list, kept = string.match(rec, '^(%d+);([^;]+);(%S+)$') end
  if v == nil or tonumber(kept) == nil then
    -- None (or not ours to read: rewritten once a state lives).
    recordDirty = true
    return false
  end
  recordVersion, recordList, recordUntil = v, list, tonumber(kept)
  v = tonumber(v)
  if list == planIds then
    if PVERSION > v then recordDirty = true end
  elseif PVERSION >= v then
    carryList, recordDirty = list, true
    -- A reset is a newer version's: nodes that disagree at one version
    -- (moving the key at every call) carry its use instead.
    carryMode = PCARRY
    if PVERSION == v and carryMode == CARRY_RESET then carryMode = CARRY_PROPORTIONAL end
  else
    local gates = parseGates(list)
    if gates == nil then recordDirty = true else useRecordedPlan(gates) end
  end
  return false
end

-- After load(): the key's use moves from the recorded plan's states into
-- the batch's (carry.lua's carrySource: a gate of the same id is the same
-- state, kept; another takes the use of the nearest old gate in time scale
-- that the batch's plan does not keep, rid of it when the old state would
-- have been; a gate the key already uses more of keeps its own), and the
-- old states the batch's plan does not keep go.
carryEntry = function(key)
  local old = parseGates(carryList)
  carryList = nil
  if old == nil then return end
  local mine, kept = {}, {}
  for g = 1, RG do mine[gid[g]] = true end
  local ostate = {}
  for j = 1, #old do
    local q = old[j]
    kept[j] = mine[q.id] == true
    if not kept[j] then
      local okey = key .. '|' .. q.id
      local v = redis.pcall('GET', okey)
      if type(v) == 'string' and #v == 32 then
        local a, b, c, exp = struct.unpack('<dddd', v)
        if exp > now then ostate[j] = { a, b, c, exp } end
      end
      redis.call('DEL', okey)
    end
  end
  local theirs = {}
  for j = 1, #old do theirs[old[j].id] = true end
  for g = 1, RG do
    -- (A gate the old plan has too is the same state: nothing to carry.)
    local j = nil
    if not theirs[gid[g]] then j = carrySource(old, kept, gcode[g], gp0[g], gp1[g], gp2[g]) end
    local st = j and ostate[j]
    if st then
      local q = old[j]
      local used = usedOf(q.code, q.p0, q.p1, q.p2, true, st[1], st[2], st[3], now)
      local units = carriedUse(used, capacityOf(q.code, q.p0, q.p1), horizonOf(q.code, q.p0, q.p1, q.p2), gcode[g], capacityOf(gcode[g], gp0[g], gp1[g]), horizonOf(gcode[g], gp0[g], gp1[g], gp2[g]), carryMode)
      local have = usedOf(gcode[g], gp0[g], gp1[g], gp2[g], live[g], sa[g], sb[g], sc[g], now)
      if units > 0 and units > have then
        commit(g, carriedState(gcode[g], gp0[g], gp1[g], gp2[g], units, st[4], now))
      end
    end
  end
end

-- In store(): the record outlives the key's states (ttl: the longest, ms).
planStore = function(ttl, changed)
  if ttl <= 0 then return end
  local keep = 2 * ttl
  if recordDirty and not swapped then
    redis.call('SET', recordKey, PVERSION_TEXT .. ';' .. planIds .. ';' .. string.format('%.17g', now + keep), 'PX', keep)
  elseif changed and now + ttl > recordUntil then
    redis.call('SET', recordKey, recordVersion .. ';' .. recordList .. ';' .. string.format('%.17g', now + keep), 'PX', keep)
  end
end
