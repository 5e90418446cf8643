-- constants.lua: the numbers this script shares with the TypeScript side, one
-- `local NAME = value` a line: the form of the generated ABI fragment
-- (build/abi.lua), which is to replace this file's lines by one line
-- `--#include abi.lua` (scripts/build-lua.mjs resolves it from build/).
--
-- Op codes of a hit (redis-binding.ts's OP_*; wire.lua says what each takes).
local OP_LIMIT = 0
local OP_PEEK = 1
local OP_RESERVE = 2
local OP_REFUND = 3
local OP_RESET = 4
local OP_CHARGE = 5
local OP_LEASE = 6
-- Algorithm codes of a gate (assembly/algorithms.ts's KIND_*, policy.ts's CODE).
local KIND_GCRA = 0
local KIND_TOKEN_INTERVAL = 1
local KIND_FIXED = 2
local KIND_LINEAR = 3
local KIND_SLIDING = 4
-- The shortest wait a denial asks for (ms), so that no retry loop spins on 0.
local MIN_RETRY_MS = 0.001
-- Added before flooring a remaining count, so that 0.9999999999 reads as 1.
local REMAINING_EPSILON = 1e-9
-- How long a key's state is kept after an outage charge (ms; see charge.lua).
local CHARGE_MEMORY_MS = 60000
