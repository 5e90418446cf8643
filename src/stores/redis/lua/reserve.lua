-- reserve.lua: OP_RESERVE. Books the earliest moment, no later than maxWait
-- ms from now, at which every gate admits cost units, and takes them as of
-- then: it steps through each denial's retryAfterMs (at most 1000 steps).
-- Emits flags (allowed: booked), remaining, waitMs (until the booked moment;
-- denied: how far it looked), resetAfterMs (booked: from now).

--#include gates.lua

local function reserve(cost, maxWait)
  local t = now
  local ok, gate, rem, retry, reset = false, 0, 0, 0, 0
  local booked = false
  for round = 1, 1000 do
    ok, gate, rem, retry, reset = decideAt(cost, t, false)
    if ok then
      if t - now <= maxWait then
        ok, gate, rem, retry, reset = decideAt(cost, t, true)
        booked = true
      end
      break
    end
    if retry < MIN_RETRY_MS then retry = MIN_RETRY_MS end
    t = t + retry
    if t - now > maxWait then break end
  end
  if booked then
    emit(flags(true, gate), rem, t - now, reset + (t - now))
  else
    emit(flags(false, gate), rem, t - now, reset)
  end
end
