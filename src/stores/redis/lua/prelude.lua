-- prelude.lua: what every other file may use: the shared constants, Lua's
-- math under short names, and the minimum wait of a denial.

--#include constants.lua

local INF = math.huge
local floor, ceil = math.floor, math.ceil

-- A denial's wait, never below MIN_RETRY_MS.
local function denyAfter(wait)
  if wait < MIN_RETRY_MS then return MIN_RETRY_MS end
  return wait
end
