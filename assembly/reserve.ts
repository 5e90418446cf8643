// The reserve search: the earliest moment at which every gate of a limiter
// admits a request, found by stepping to the time the denying gate names.

import { decideAt, dRetry } from "./gates";
import { MIN_RETRY_MS } from "../build/abi-as";

/** bookEarliest's outcomes. */
export const BOOKED: i32 = 1;
export const TOO_FAR: i32 = 0;
export const NO_ROOM: i32 = -1;

/** How far from `now` the last search went: the booking's wait, or the wait that would have been needed. */
export let searchedWait: f64 = 0;

/**
 * Books the earliest moment at or after `now` at which every gate admits
 * `cost`, provided it is at most `maxWait` ms away, and charges the gates as
 * of that moment (BOOKED). TOO_FAR: nothing charged; NO_ROOM: admissible
 * but the table, full at its cap, has no room to record the booking.
 * decideAt's outcome (dRemaining, dRetry, dReset, dGate) is left as of the
 * last moment tried.
 */
export function bookEarliest(lo: u32, hi: u32, gate0: u32, gates: u32, cost: f64, now: f64, maxWait: f64): i32 {
  let t = now;
  // Each round moves t to a time at which the gate that denied admits; with
  // several gates this converges in a few rounds. The bound is a safety net.
  for (let round = 0; round < 1000; round++) {
    if (decideAt(lo, hi, gate0, gates, cost, t, now, false)) {
      if (t - now > maxWait) break;
      searchedWait = t - now;
      return decideAt(lo, hi, gate0, gates, cost, t, now, true) ? BOOKED : NO_ROOM;
    }
    t = t + (dRetry < MIN_RETRY_MS ? MIN_RETRY_MS : dRetry);
    if (t - now > maxWait) break;
  }
  searchedWait = t - now;
  return TOO_FAR;
}
