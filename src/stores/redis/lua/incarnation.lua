-- incarnation.lua: since when this Redis has counted a shard's holders of
-- concurrency gates. A permit's holders were counted in the epoch its time
-- names; but a Redis restarted empty (or flushed) has forgotten them, and
-- new holders may be counted in that same epoch since: a release naming it
-- would take one of theirs (a holder more than the limit), a renewal would
-- keep one that is no longer counted. So each shard's anchor keeps, under
-- "<anchor>:|" (no state key ends so: a gate id is never empty), the time
-- on the script's clock at which its first batch with a concurrency gate
-- ran; a permit whose time is earlier was counted by a Redis that is gone,
-- and release.lua treats it as such. A key left from before a restart is
-- never wrong, only a key missing (its shard's holders are then all new).

local incarnations = {}
-- Whether the limiter has a concurrency gate: only its batches read (and write) the key.
local HOLDS = false
for g = 1, G do if gcode[g] == KIND_CONCURRENCY then HOLDS = true end end

-- The incarnation of the entry being decided (set by decide.lua), -INF: none known.
local entryIncarnation = -INF

-- The shard's incarnation under the entry's base ("<anchor>:"), made now if it has none.
local function incarnation(base)
  local inc = incarnations[base]
  if inc ~= nil then return inc end
  local key = base .. '|'
  local v = redis.pcall('GET', key)
  if type(v) == 'string' then
    inc = tonumber(v) or -INF
  elseif type(v) == 'table' then
    inc = -INF -- a foreign value of another type: left alone, and no incarnation known
  else
    inc = now
    redis.call('SET', key, string.format('%.17g', now))
  end
  incarnations[base] = inc
  return inc
end
