-- fleet.lua: one store's heartbeat in the fleet's membership set; returns
-- how many stores are live, which sizes each one's fallback share (1/N).
--
-- KEYS[1]  the fleet's sorted set "<prefix>{fleet}": members are store ids,
--          scored by the Redis time (ms) each was last seen
-- ARGV[1]  this store's id (random, per process and store)
-- ARGV[2]  how long a member counts without a heartbeat, ms
-- ARGV[3]  "1": this store leaves (its close()), "" otherwise
--
-- Returns the live members' count after the update.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return redis.call('ZCARD', KEYS[1])
