// Pure arithmetic of every algorithm over one key's state.
//
// A state is three numbers (sA, sB, sC) plus `sLive` (false = "as if never
// seen"). `evaluate` reads them and the policy, and writes the outcome to the
// `o*` globals without touching memory, so a caller can evaluate several gates
// first and commit only when every gate admits. Globals instead of return
// structs: no allocation on the hot path, and the values stay in wasm globals.
//
// Times are epoch milliseconds as f64. Every formula here is mirrored,
// operation for operation, by support/reference-model.ts: the property tests
// require bit-identical results, so change both together.

// Policy kinds (what each one's p0, p1, p2 and state mean: abi/abi.mjs). A
// continuous token bucket is the same arithmetic as GCRA (emission interval =
// period / refill, burst = capacity), so it shares KIND_GCRA.
import {
  KIND_GCRA, KIND_TOKEN_INTERVAL, KIND_FIXED, KIND_LINEAR, KIND_SLIDING, KIND_CONCURRENCY, KIND_BLOCK,
  MIN_RETRY_MS, REMAINING_EPSILON,
} from "../build/abi-as";

// Input state.
export let sLive: bool = false;
export let sA: f64 = 0;
export let sB: f64 = 0;
export let sC: f64 = 0;

// Outcome of `evaluate`.
export let oAllowed: bool = false;
export let oA: f64 = 0;
export let oB: f64 = 0;
export let oC: f64 = 0;
/** Time at which the new state decays to "as if never seen"; -Infinity = already. */
export let oExp: f64 = 0;
export let oRemaining: f64 = 0;
export let oRetry: f64 = 0;
export let oReset: f64 = 0;

@inline function denyAfter(wait: f64): void {
  oAllowed = false;
  oRetry = wait < MIN_RETRY_MS ? MIN_RETRY_MS : wait;
}

/**
 * Decides a request of `cost` at time `t` against the state in `s*`.
 * p0, p1, p2 are the policy's parameters (see policy.ts for each kind).
 */
export function evaluate(kind: u32, p0: f64, p1: f64, p2: f64, cost: f64, t: f64): void {
  oRetry = 0;
  if (kind == KIND_GCRA) {
    // p0 = emission interval T, p1 = burst B, p2 = B * T.
    // State: sA = TAT, the theoretical arrival time of the next request.
    let tat = sLive && sA > t ? sA : t;
    let newTat = tat + cost * p0;
    let allowAt = newTat - p2;
    if (allowAt <= t) {
      oAllowed = true;
      oA = newTat;
    } else {
      denyAfter(allowAt - t);
      oA = tat;
    }
    oB = 0;
    oC = 0;
    oExp = oA;
    let rem = Math.floor((t + p2 - oA) / p0 + REMAINING_EPSILON);
    oRemaining = rem < 0 ? 0 : rem > p1 ? p1 : rem;
    oReset = oA - t;
    if (oReset < 0) oReset = 0;
  } else if (kind == KIND_TOKEN_INTERVAL) {
    // p0 = capacity C, p1 = refill R, p2 = period P.
    // State: sA = anchor (the latest refill boundary), sB = tokens at the anchor.
    let anchor = t;
    let tokens = p0;
    if (sLive) {
      anchor = sA;
      tokens = sB;
      if (t < anchor) {
        // A reservation booked the bucket from a future boundary on.
        denyAfter(anchor - t);
        oA = anchor;
        oB = tokens;
        oC = 0;
        oExp = anchor + Math.ceil((p0 - tokens) / p1) * p2;
        oRemaining = 0;
        oReset = oExp - t;
        return;
      }
      let k = Math.floor((t - anchor) / p2);
      if (k > 0) {
        tokens = tokens + k * p1;
        if (tokens > p0) tokens = p0;
        anchor = anchor + k * p2;
      }
    }
    if (tokens >= cost) {
      oAllowed = true;
      tokens = tokens - cost;
    } else {
      denyAfter(anchor + Math.ceil((cost - tokens) / p1) * p2 - t);
    }
    oA = anchor;
    oB = tokens;
    oC = 0;
    oExp = tokens >= p0 ? -Infinity : anchor + Math.ceil((p0 - tokens) / p1) * p2;
    oRemaining = Math.floor(tokens);
    oReset = tokens >= p0 ? 0 : oExp - t;
  } else if (kind == KIND_FIXED) {
    // p0 = window W, p1 = limit L. State: sA = window index, sB = count.
    let idx = Math.floor(t / p0);
    let count: f64 = 0;
    if (sLive) {
      if (sA > idx) {
        denyAfter(sA * p0 - t);
        oA = sA;
        oB = sB;
        oC = 0;
        oExp = (sA + 1) * p0;
        oRemaining = 0;
        oReset = oExp - t;
        return;
      }
      if (sA == idx) count = sB;
    }
    if (count + cost <= p1) {
      oAllowed = true;
      count = count + cost;
    } else {
      denyAfter((idx + 1) * p0 - t);
    }
    oA = idx;
    oB = count;
    oC = 0;
    oExp = count > 0 ? (idx + 1) * p0 : -Infinity;
    oRemaining = p1 - count;
    oReset = count > 0 ? oExp - t : 0;
  } else if (kind == KIND_LINEAR) {
    // p0 = within W, p1 = limit L. State: sA = window start (the first
    // admission after the previous window expired), sB = count.
    let start = t;
    let count: f64 = 0;
    if (sLive) {
      if (t < sA) {
        denyAfter(sA - t);
        oA = sA;
        oB = sB;
        oC = 0;
        oExp = sA + p0;
        oRemaining = 0;
        oReset = oExp - t;
        return;
      }
      if (t < sA + p0) {
        start = sA;
        count = sB;
      }
    }
    if (count + cost <= p1) {
      oAllowed = true;
      count = count + cost;
    } else {
      denyAfter(start + p0 - t);
    }
    oA = start;
    oB = count;
    oC = 0;
    oExp = count > 0 ? start + p0 : -Infinity;
    oRemaining = p1 - count;
    oReset = count > 0 ? oExp - t : 0;
  } else if (kind == KIND_BLOCK) {
    // A limiter's hidden last gate (gates.ts): denies while the key is
    // blocked (sB < 0, until sA), admits otherwise, taking nothing. Its
    // admission reports no limit of its own (remaining Infinity), so a
    // rate gate is the one reported.
    oA = sA;
    oB = sB;
    oC = 0;
    if (sLive && sB < 0 && t < sA) {
      denyAfter(sA - t);
      oExp = sA;
      oRemaining = 0;
      oReset = sA - t;
    } else {
      oAllowed = true;
      oExp = !sLive ? -Infinity : sB < 0 ? sA : sA + p1;
      oRemaining = Infinity;
      oReset = 0;
    }
  } else if (kind == KIND_CONCURRENCY) {
    // p0 = lease epoch E, p1 = limit L. State: sA = epoch index, sB = holders
    // counted in it, sC = holders of the previous epoch (holders.ts's box).
    rollHolders(p0, t);
    let held = hCur + hPrev;
    if (held + cost <= p1) {
      oAllowed = true;
      hCur = hCur + cost;
    } else if (hPrev > 0 && hCur + cost <= p1) {
      // The previous epoch's holders stop counting when it ends (sooner if released).
      denyAfter((hIdx + 1) * p0 - t);
    } else {
      denyAfter((hIdx + 2) * p0 - t);
    }
    writeHolders(p0, p1, t);
  } else {
    // KIND_SLIDING. p0 = window W, p1 = limit L.
    // State: sA = current window index, sB = its count, sC = previous window's count.
    // Estimate = prev * (1 - elapsed fraction of current window) + cur.
    let idx = Math.floor(t / p0);
    let cur: f64 = 0;
    let prev: f64 = 0;
    if (sLive) {
      if (sA > idx) {
        denyAfter(sA * p0 - t);
        oA = sA;
        oB = sB;
        oC = sC;
        oExp = (sA + 2) * p0;
        oRemaining = 0;
        oReset = oExp - t;
        return;
      }
      if (sA == idx) {
        cur = sB;
        prev = sC;
      } else if (sA == idx - 1) {
        prev = sB;
      }
    }
    let start = idx * p0;
    let frac = (t - start) / p0;
    let estimate = prev * (1 - frac) + cur;
    if (estimate + cost <= p1) {
      oAllowed = true;
      cur = cur + cost;
      estimate = estimate + cost;
    } else if (cur + cost <= p1) {
      // Wait inside this window until the previous window's weight has decayed enough.
      denyAfter(start + (1 - (p1 - cost - cur) / prev) * p0 - t);
    } else {
      // Wait for the next window, where this window's count becomes the decaying one.
      let f = 1 - (p1 - cost) / cur;
      if (f < 0) f = 0;
      denyAfter(start + p0 + f * p0 - t);
    }
    oA = idx;
    oB = cur;
    oC = prev;
    oExp = cur > 0 ? (idx + 2) * p0 : prev > 0 ? (idx + 1) * p0 : -Infinity;
    let rem = Math.floor(p1 - estimate + REMAINING_EPSILON);
    oRemaining = rem < 0 ? 0 : rem;
    oReset = oExp > t ? oExp - t : 0;
  }
}

/** The most a count kept as a u32 (a sliding window's, a concurrency gate's: gates.ts) can hold. */
const MAX_COUNT: f64 = 4294967295;

/**
 * Spends `cost` at `t` without asking (a penalty: `Limiter.penalize`),
 * counted where a request at `t` would count, writing the new state to
 * o{A,B,C,Exp}: the state may go past the limit, and the key then owes it,
 * waiting it off. The same arithmetic as the Redis script's charge of one
 * state (algorithms.lua) and support/reference-model.ts's chargeState. Not
 * for a concurrency or block gate (a caller skips them).
 */
export function charge(kind: u32, p0: f64, p1: f64, p2: f64, cost: f64, t: f64): void {
  oC = 0;
  if (kind == KIND_GCRA) {
    // From the TAT, or from t when the TAT is past.
    oA = (sLive && sA > t ? sA : t) + cost * p0;
    oB = 0;
    oExp = oA;
  } else if (kind == KIND_TOKEN_INTERVAL) {
    // The bucket brought up to date at t (a request of 0 refills it, or
    // leaves a booked later interval as it is), then the cost taken.
    evaluate(kind, p0, p1, p2, 0, t);
    let anchor = oA;
    let tokens = oB - cost;
    oC = 0;
    oA = anchor;
    oB = tokens;
    oExp = anchor + Math.ceil((p0 - tokens) / p1) * p2;
  } else if (kind == KIND_FIXED) {
    // Into the window of t, or into a later one the state has booked.
    let idx = Math.floor(t / p0);
    let count = cost;
    if (sLive && sA >= idx) {
      idx = sA;
      count = sB + cost;
    }
    oA = idx;
    oB = count;
    oExp = (idx + 1) * p0;
  } else if (kind == KIND_LINEAR) {
    // Into the state's window while it has not closed by t, else into one opening at t.
    if (sLive && t < sA + p0) {
      oA = sA;
      oB = sB + cost;
    } else {
      oA = t;
      oB = cost;
    }
    oExp = oA + p0;
  } else {
    // KIND_SLIDING: into the current window (or a booked later one); the
    // state's, if it was the one before, becomes the previous.
    let idx = Math.floor(t / p0);
    let cur: f64 = 0;
    let prev: f64 = 0;
    if (sLive && sA >= idx) {
      idx = sA;
      cur = sB;
      prev = sC;
    } else if (sLive && sA == idx - 1) {
      prev = sB;
    }
    cur = cur + cost;
    // Kept as a u32: a debt saturates rather than wrapping round to nothing.
    oA = idx;
    oB = cur > MAX_COUNT ? MAX_COUNT : cur;
    oC = prev;
    oExp = (idx + 2) * p0;
  }
}

/**
 * A denial by a rate or concurrency gate, counted in the key's KIND_BLOCK
 * state (in s*) at `t`: p0 denials within p1 ms (a linear window from the
 * first) block the key for p2 ms from `t`. Writes the new state to
 * o{A,B,C,Exp}. Never called while the key is blocked (its requests are
 * denied by the block, not counted), so a block ends when it says.
 */
export function countDenial(p0: f64, p1: f64, p2: f64, t: f64): void {
  let start = t;
  let count: f64 = 1;
  if (sLive && sB >= 1 && t < sA + p1) {
    start = sA;
    count = sB + 1;
  }
  oC = 0;
  if (count >= p0) {
    oA = t + p2;
    oB = -1;
    oExp = oA;
  } else {
    oA = start;
    oB = count;
    oExp = start + p1;
  }
}

/**
 * Gives `cost` back to the state in `s*` at time `t`, writing the new state to
 * o{A,B,C,Exp}. Refunding more than was consumed saturates at "full".
 */
export function refund(kind: u32, p0: f64, p1: f64, p2: f64, cost: f64, t: f64): void {
  oA = sA;
  oB = sB;
  oC = sC;
  if (kind == KIND_GCRA) {
    oA = sA - cost * p0;
    oExp = oA > t ? oA : -Infinity;
  } else if (kind == KIND_TOKEN_INTERVAL) {
    // Bring the bucket up to date first, so the refund lands on today's tokens.
    let anchor = sA;
    let tokens = sB;
    if (t > anchor) {
      let k = Math.floor((t - anchor) / p2);
      if (k > 0) {
        tokens = tokens + k * p1;
        anchor = anchor + k * p2;
      }
    }
    tokens = tokens + cost;
    // A booked interval not yet started, given back whole (its bookings
    // aborted): what is left goes back to the interval before it, spent for
    // it to be booked. Without this the booked interval stayed, however many
    // came back, and each burst of callers that booked ahead and gave up
    // pushed the key's next admission further out (a key lockable by aborts).
    let unbooked = p1 < p0 ? p1 : p0;
    while (tokens > unbooked && anchor > t) {
      tokens = tokens - unbooked;
      anchor = anchor - p2;
    }
    if (tokens > p0) tokens = p0;
    oA = anchor;
    oB = tokens;
    oExp = tokens >= p0 ? -Infinity : anchor + Math.ceil((p0 - tokens) / p1) * p2;
    // A booking's interval (anchor in the future) replaced the current one,
    // which was empty: keep denying until the booked interval starts.
    if (anchor > t && oExp < anchor) oExp = anchor;
  } else if (kind == KIND_FIXED || kind == KIND_LINEAR) {
    let count = sB - cost;
    // Likewise a booked window not yet open, given back whole: the rest goes
    // to the window before it, full for it to be booked.
    let win = sA;
    while (count < 0 && (kind == KIND_FIXED ? win * p0 : win) > t) {
      count = count + p1;
      win = kind == KIND_FIXED ? win - 1 : win - p0;
    }
    if (count < 0) count = 0;
    oA = win;
    oB = count;
    oExp = count > 0 ? (kind == KIND_FIXED ? (win + 1) * p0 : win + p0) : -Infinity;
    // Likewise for a booked window that has not started: the window it
    // replaced was full, so nothing passes before the booked one starts.
    let start = kind == KIND_FIXED ? win * p0 : win;
    if (count <= 0 && start > t) oExp = start;
  } else {
    // Sliding, and concurrency (a refund there is a release of the latest
    // holders): take from the current window's count first, then the previous one's.
    let idx = Math.floor(t / p0);
    let cur = sB;
    let prev = sC;
    if (sA < idx) {
      prev = sA == idx - 1 ? cur : 0;
      cur = 0;
    }
    let left = cost;
    let take = cur < left ? cur : left;
    cur = cur - take;
    left = left - take;
    prev = prev - left;
    if (prev < 0) prev = 0;
    let base = sA > idx ? sA : idx;
    oA = base;
    oB = cur;
    oC = prev;
    oExp = cur > 0 ? (base + 2) * p0 : prev > 0 ? (base + 1) * p0 : -Infinity;
  }
}

// Concurrency (KIND_CONCURRENCY): holders counted per lease epoch. A permit
// taken or renewed at time `at` is counted in epoch floor(at / E) and the
// next one, and stops counting when that next one ends: between E and 2E
// after `at`. Renewing moves it into the current epoch. The state is the
// latest epoch with holders and two counts:
//
//   a: epoch index i      b: holders counted in i     c: holders of i - 1
//
// A state whose epoch is later than t (a clock that went back) is read as
// current: its holders keep counting, never less.

let hIdx: f64 = 0;
let hCur: f64 = 0;
let hPrev: f64 = 0;

/** The holders as of t (from s*): hIdx, hCur, hPrev. */
@inline function rollHolders(p0: f64, t: f64): void {
  let idx = Math.floor(t / p0);
  hCur = 0;
  hPrev = 0;
  if (sLive) {
    if (sA >= idx) {
      idx = sA;
      hCur = sB;
      hPrev = sC;
    } else if (sA == idx - 1) {
      hPrev = sB;
    }
  }
  hIdx = idx;
}

/**
 * The time a permit's holders count from, when they were counted at t in
 * epoch hIdx: t itself, or the start of hIdx when the state's epoch is later
 * than t's (a clock that went back). Its epoch is the one they count in, so
 * that a release or renewal given it finds them.
 */
export let oHeldAt: f64 = 0;

/** The state and numbers of hIdx, hCur, hPrev into the o* outcome (all but oAllowed and oRetry). */
@inline function writeHolders(p0: f64, p1: f64, t: f64): void {
  let start = hIdx * p0;
  oHeldAt = start > t ? start : t;
  oA = hIdx;
  oB = hCur;
  oC = hPrev;
  oExp = hCur > 0 ? (hIdx + 2) * p0 : hPrev > 0 ? (hIdx + 1) * p0 : -Infinity;
  let rem = p1 - hCur - hPrev;
  oRemaining = rem < 0 ? 0 : rem;
  oReset = oExp > t ? oExp - t : 0;
}

/**
 * Releases (`renew` false) or renews a permit of `cost` holders taken or
 * last renewed at `at`, in the concurrency state in s*, at t. A release
 * takes the holders from the epoch they are counted in (none once it has
 * passed: they no longer count). A renewal moves them into the current
 * epoch, or takes them again when they no longer count and there is room;
 * oAllowed says whether they are held. Writes the new state to o*.
 */
export function hold(p0: f64, p1: f64, cost: f64, at: f64, t: f64, renew: bool): void {
  rollHolders(p0, t);
  let epochOf = Math.floor(at / p0);
  oRetry = 0;
  oAllowed = true;
  if (epochOf == hIdx && hCur >= cost) {
    if (!renew) hCur = hCur - cost;
  } else if (epochOf == hIdx - 1 && hPrev >= cost) {
    hPrev = hPrev - cost;
    if (renew) hCur = hCur + cost;
  } else if (renew) {
    if (hCur + hPrev + cost <= p1) hCur = hCur + cost;
    else denyAfter(hPrev > 0 ? (hIdx + 1) * p0 - t : (hIdx + 2) * p0 - t);
  }
  writeHolders(p0, p1, t);
}
