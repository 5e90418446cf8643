-- cas.lua: reads, or compares and sets, the JSON state of one key under a
-- custom RateLimiter. Its arithmetic is the user's JavaScript function, which
-- Lua cannot run: the client reads the state and Redis's clock, decides, and
-- writes the new state only if nobody wrote in between (else it reads and
-- decides again, a bounded number of times).
--
-- KEYS[1]  the state key "<prefix>{<shard>}:<key>|custom:<name>"
-- ARGV[1]  "get" or "set"
-- get      returns { now, value, foreign }: now, Redis TIME in epoch ms as a
--          string (fractions kept: Redis would truncate a Lua number), the
--          only clock the client's decision uses; value, the stored JSON, or
--          "" for none; foreign 1 when the key holds another type (the client
--          refuses the call and leaves it alone), else 0
-- set      ARGV[2] the value the client read ("" = none), ARGV[3] the new
--          value ("" = delete the key), ARGV[4] its expiry in ms (PX, >= 1)
--          returns 1 when the key still held ARGV[2] and now holds ARGV[3],
--          0 when another client changed it since
local key = KEYS[1]
local v = redis.pcall('GET', key)
local foreign = type(v) == 'table'
if type(v) ~= 'string' then v = '' end

if ARGV[1] == 'get' then
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
  return { string.format('%.3f', now), v, foreign and 1 or 0 }
end

if foreign or v ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
  redis.call('DEL', key)
else
  redis.call('SET', key, ARGV[3], 'PX', ARGV[4])
end
return 1
