-- algorithms.lua: the six algorithms by code, and a key's block (a hidden
-- gate: block-gate.lua). The arithmetic mirrors
-- assembly/algorithms.ts and test/reference-model.ts formula by formula:
-- change all three together (the property tests compare them bit for bit).
--
-- Each algorithm is a table of functions over one key's state of one gate:
-- p0, p1, p2 are the gate's parameters (each file says what they mean), the
-- state is a, b, c (and live: whether it exists; a state that does not is as
-- never seen), t the time in epoch ms, cost in units.
--   evaluate(p0, p1, p2, live, sa, sb, sc, cost, t) a request of cost at t;
--     returns allowed, a, b, c, exp, remaining, retry, reset: the state after
--     an admission (the caller commits it only when every gate admits), and
--     the decision's remaining units, retryAfterMs (0 when allowed) and
--     resetAfterMs
--   refund(p0, p1, p2, sa, sb, sc, cost, t) gives cost back to a live state;
--     returns a, b, c, exp
--   charge(p0, p1, p2, live, sa, sb, sc, cost, t) consumes cost without
--     asking; the state may go past the limit, and the key then waits it
--     off; returns a, b, c, exp
-- exp is when the state decays to "never seen" (-inf, or any time not after
-- now: already).

--#include gcra.lua
--#include token-bucket.lua
--#include windows.lua
--#include sliding-window.lua
--#include concurrency.lua
--#include block-gate.lua

local ALGORITHMS = {
  [KIND_GCRA] = GCRA,
  [KIND_TOKEN_INTERVAL] = BUCKET,
  [KIND_FIXED] = FIXED,
  [KIND_LINEAR] = LINEAR,
  [KIND_SLIDING] = SLIDING,
  [KIND_CONCURRENCY] = CONCURRENCY,
  [KIND_BLOCK] = BLOCK,
}
