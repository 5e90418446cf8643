-- token-bucket.lua: the token bucket refilled in whole periods (code
-- KIND_TOKEN_INTERVAL). Functions as algorithms.lua says.
--
-- Parameters: p0 the capacity C, p1 the refill R, p2 the period P (ms).
-- State: a the anchor, the latest refill boundary (later than now: an
-- interval booked by a reservation); b the tokens at the anchor (below 0
-- after a charge past the limit).

--#include prelude.lua

local BUCKET = {}

-- The anchor and tokens at t: refilled by R for each whole period since the
-- anchor, up to C (nothing when t is not past the anchor).
local function refill(p0, p1, p2, anchor, tokens, t)
  local k = floor((t - anchor) / p2)
  if k > 0 then
    tokens = tokens + k * p1
    if tokens > p0 then tokens = p0 end
    anchor = anchor + k * p2
  end
  return anchor, tokens
end

-- When a bucket of tokens at anchor is full again.
local function fullAt(p0, p1, p2, anchor, tokens)
  return anchor + ceil((p0 - tokens) / p1) * p2
end

function BUCKET.evaluate(p0, p1, p2, live, sa, sb, sc, cost, t)
  local anchor, tokens = t, p0
  if live then
    anchor, tokens = sa, sb
    if t < anchor then
      local exp = fullAt(p0, p1, p2, anchor, tokens)
      return false, anchor, tokens, 0, exp, 0, denyAfter(anchor - t), exp - t
    end
    anchor, tokens = refill(p0, p1, p2, anchor, tokens, t)
  end
  local allowed, retry = false, 0
  if tokens >= cost then
    allowed = true
    tokens = tokens - cost
  else
    retry = denyAfter(anchor + ceil((cost - tokens) / p1) * p2 - t)
  end
  local exp, reset = -INF, 0
  if tokens < p0 then
    exp = fullAt(p0, p1, p2, anchor, tokens)
    reset = exp - t
  end
  return allowed, anchor, tokens, 0, exp, floor(tokens), retry, reset
end

function BUCKET.refund(p0, p1, p2, sa, sb, sc, cost, t)
  local anchor, tokens = refill(p0, p1, p2, sa, sb, t)
  tokens = tokens + cost
  -- A booked interval not yet started, given back whole: the rest goes back
  -- to the interval before it (spent for it to be booked), as the core does.
  local unbooked = p0
  if p1 < p0 then unbooked = p1 end
  while tokens > unbooked and anchor > t do
    tokens = tokens - unbooked
    anchor = anchor - p2
  end
  if tokens > p0 then tokens = p0 end
  -- A booked interval not yet started replaced an empty one: deny until it starts.
  if tokens >= p0 then
    if anchor > t then return anchor, tokens, 0, anchor end
    return anchor, tokens, 0, -INF
  end
  return anchor, tokens, 0, fullAt(p0, p1, p2, anchor, tokens)
end

function BUCKET.charge(p0, p1, p2, live, sa, sb, sc, cost, t)
  local anchor, tokens = t, p0
  if live then anchor, tokens = refill(p0, p1, p2, sa, sb, t) end
  tokens = tokens - cost
  return anchor, tokens, 0, fullAt(p0, p1, p2, anchor, tokens)
end
