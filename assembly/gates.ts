// Gate orchestration: one request against every gate of a limiter, all or
// nothing. Each gate (a policy id) keeps its own record per key in the table;
// a request passes only if every gate admits it, and a denial by one gate
// charges none of them. decideAt is the one path every deciding export of
// index.ts takes; refundGates, resetGates and putGateState are the others'.
//
// A limiter that blocks keys (Limiter.block, blockAfter) has one more gate,
// its last: a KIND_BLOCK policy the host passes in `gates` only once it may
// hold something (the hot path of a limiter that never blocks is
// unchanged). It is decided like the others, so a blocked key is denied and
// charged nothing; it is never the gate reported (dGate), but sets dBlocked.

import {
  evaluate,
  hold,
  charge as chargeState,
  countDenial,
  refund as refundState,
  sLive, sA, sB, sC,
  oAllowed, oA, oB, oC, oExp, oRemaining, oRetry, oReset,
} from "./algorithms";
import { find, claim, makeRoom, countRefusal, candidate, epoch, fullWait, foundLive } from "./table";
import { KIND_SLIDING, KIND_CONCURRENCY, KIND_BLOCK, MIN_RETRY_MS, MAX_GATES } from "../build/abi-as";

// Policy record (32 bytes): kind u32 @0, p0 f64 @8, p1 f64 @16, p2 f64 @24.
const POLICY_BYTES: usize = 32;
// Per-gate scratch of a multi-gate decision (64 bytes each):
// slot addr @0, table epoch of that addr @4, key lo @8, allowed @12, a @16, b @24, c @32, exp @40, remaining @48, reset @56.
const GATE_BYTES: usize = 64;

let policies: usize = 0;
let policyCapacity: u32 = 0;
let gateScratch: usize = 0;

/** Allocates the policy records and the gates' scratch, once (index.ts init). */
export function gatesInit(maxPolicies: u32): void {
  policyCapacity = maxPolicies;
  policies = heap.alloc(<usize>maxPolicies * POLICY_BYTES);
  // One more than MAX_GATES: a limiter's hidden block gate.
  gateScratch = heap.alloc(<usize>(MAX_GATES + 1) * GATE_BYTES);
}

/** Registers policy `id`: its algorithm and three parameters (algorithms.ts documents each). */
export function setPolicyRecord(id: u32, kind: u32, p0: f64, p1: f64, p2: f64): void {
  if (id >= policyCapacity) unreachable();
  let p = policies + <usize>id * POLICY_BYTES;
  store<u32>(p, kind);
  store<f64>(p, p0, 8);
  store<f64>(p, p1, 16);
  store<f64>(p, p2, 24);
}

/** Each gate keys its records by the key's hash mixed with the policy id. */
@inline export function gateLo(lo: u32, id: u32): u32 {
  return lo ^ (id * 0x9e3779b1);
}

/** (0, 0) is what a never-used slot holds; keep real keys off it. */
@inline export function fixKey(lo: u32, hi: u32): u32 {
  return lo == 0 && hi == 0 ? 1 : lo;
}

/** Whether the algorithm's b and c are two counts, kept as u32s in the slot's b (table.ts). */
@inline function twoCounts(kind: u32): bool {
  return kind == KIND_SLIDING || kind == KIND_CONCURRENCY;
}

@inline function loadState(kind: u32, addr: usize): void {
  sA = load<f64>(addr, 8);
  if (twoCounts(kind)) {
    sB = <f64>load<u32>(addr, 16);
    sC = <f64>load<u32>(addr, 20);
  } else {
    sB = load<f64>(addr, 16);
    sC = 0;
  }
}

/** The most a u32 count holds: larger counts (a mirrored state, a debt) saturate instead of wrapping round. */
@inline function count32(x: f64): u32 {
  return x >= 4294967295 ? 0xffffffff : x > 0 ? <u32>x : 0;
}

@inline function storeState(kind: u32, addr: usize, a: f64, b: f64, c: f64, exp: f64): void {
  store<f64>(addr, a, 8);
  if (twoCounts(kind)) {
    store<u32>(addr, count32(b), 16);
    store<u32>(addr, count32(c), 20);
  } else {
    store<f64>(addr, b, 16);
  }
  store<f64>(addr, exp, 24);
}

/**
 * Looks up gate `id`'s record for the key and evaluates `cost` at `t`;
 * returns the slot or 0. With `commit`, an admission of a key that has no
 * record makes room for one first (which may move records or grow the
 * table), and is turned into a denial when the table is full at its cap in
 * deny mode: a key that cannot be recorded cannot be charged, so it does not
 * pass. It may retry when a record in its buckets expires.
 */
@inline function evaluateGate(id: u32, lo: u32, hi: u32, cost: f64, t: f64, now: f64, commit: bool): usize {
  let p = policies + <usize>id * POLICY_BYTES;
  let kind = load<u32>(p);
  let addr = find(lo, hi, now);
  sLive = foundLive;
  if (foundLive) loadState(kind, addr);
  evaluate(kind, load<f64>(p, 8), load<f64>(p, 16), load<f64>(p, 24), cost, t);
  if (commit && addr == 0 && candidate == 0 && oAllowed && oExp > now) {
    let room = makeRoom(lo, hi, now);
    if (room == 0) {
      countRefusal();
      oAllowed = false;
      oRetry = fullWait < MIN_RETRY_MS ? MIN_RETRY_MS : fullWait;
      oRemaining = 0;
    }
    find(lo, hi, now); // the candidate again, where the room was made
  }
  return addr;
}

/**
 * Writes gate `id`'s new state for the key. `addr` is what `find` returned at
 * table epoch `at`: after records moved (another gate made room), or with
 * `refind` (another gate may have taken the candidate), the key is looked up
 * again.
 */
@inline function commitGate(id: u32, addr: usize, at: u32, lo: u32, hi: u32, now: f64, a: f64, b: f64, c: f64, exp: f64, refind: bool): void {
  if (at != epoch || (addr == 0 && refind)) addr = find(lo, hi, now);
  if (exp <= now) {
    // Decayed to "never seen": keep no record.
    if (addr != 0) store<f64>(addr, -Infinity, 24);
    return;
  }
  let kind = load<u32>(policies + <usize>id * POLICY_BYTES);
  storeState(kind, claim(addr, lo, hi, now), a, b, c, exp);
}

/** The `allowed` word of a gate's scratch when its slot was claimed by reserveSlots. */
const PROVISIONAL: u32 = 2;

/**
 * Before any gate of an admitted request commits, gives every gate that will
 * keep a record a slot of its own: its live record, or a slot claimed now
 * (the key written, `exp` +Infinity until the commit, so that no other gate's
 * lookup takes it). When one cannot get room (the table is full at its cap,
 * deny mode), the claims are undone and the request is denied, charging
 * nothing: no gate commits and no record still owing is evicted for it.
 * Records may move meanwhile (room made for a later gate), so the commit
 * looks each key up again.
 */
function reserveSlots(gates: u32, hi: u32, now: f64): bool {
  for (let g: u32 = 0; g < gates; g++) {
    let s = gateScratch + <usize>g * GATE_BYTES;
    if (load<f64>(s, 40) <= now) continue; // decays at once: keeps no record
    let lo = load<u32>(s, 8);
    let addr = find(lo, hi, now);
    if (addr != 0 && foundLive) continue;
    if (addr == 0) addr = candidate != 0 ? candidate : makeRoom(lo, hi, now);
    if (addr == 0) {
      for (let u: u32 = 0; u < g; u++) {
        let su = gateScratch + <usize>u * GATE_BYTES;
        if (load<u32>(su, 12) != PROVISIONAL) continue;
        let claimed = find(load<u32>(su, 8), hi, now);
        if (claimed != 0) {
          store<u64>(claimed, 0);
          store<f64>(claimed, -Infinity, 24);
        }
      }
      countRefusal();
      dRemaining = 0;
      dRetry = fullWait < MIN_RETRY_MS ? MIN_RETRY_MS : fullWait;
      dReset = 0;
      dGate = g;
      dRefused = true;
      return false;
    }
    store<u32>(addr, lo);
    store<u32>(addr, hi, 4);
    store<f64>(addr, Infinity, 24);
    store<u32>(s, PROVISIONAL, 12);
  }
  return true;
}

// Aggregated outcome of a decision at time t over all gates.
export let dRemaining: f64 = 0;
export let dRetry: f64 = 0;
export let dReset: f64 = 0;
export let dGate: u32 = 0;
/** Whether the key's block denied it (its block gate: see the top of this file). */
export let dBlocked: bool = false;
/** Whether the table, full at its cap, refused the request: no denial of the key's own (blockAfter does not count it). */
export let dRefused: bool = false;

/**
 * Evaluates every gate at time t (reading state as of `now`), and commits all
 * of them when all admit and `commit` is set. Returns whether all admitted.
 */
export function decideAt(lo0: u32, hi: u32, gate0: u32, gates: u32, cost: f64, t: f64, now: f64, commit: bool): bool {
  dBlocked = false;
  dRefused = false;
  if (gates == 1) {
    // The common case, without the scratch round trip.
    let lo = fixKey(gateLo(lo0, gate0), hi);
    let at = epoch;
    let addr = evaluateGate(gate0, lo, hi, cost, t, now, commit);
    dRemaining = oRemaining;
    dRetry = oRetry;
    dReset = oReset;
    dGate = 0;
    if (oAllowed && commit) commitGate(gate0, addr, at, lo, hi, now, oA, oB, oC, oExp, false);
    return oAllowed;
  }
  let all = true;
  // The block gate, last when present, is never the one reported: the rate
  // gate with the longest wait stands for the key's limits (gate 0 when they
  // all admit), and the block's wait counts when it is longer.
  let blockGate: u32 = load<u32>(policies + <usize>(gate0 + gates - 1) * POLICY_BYTES) == KIND_BLOCK ? gates - 1 : 0xffffffff;
  let rateDenied = false;
  let blockRetry: f64 = 0;
  for (let g: u32 = 0; g < gates; g++) {
    let id = gate0 + g;
    let lo = fixKey(gateLo(lo0, id), hi);
    let s = gateScratch + <usize>g * GATE_BYTES;
    let at = epoch;
    // Room for new records is made for all gates at once, before any commits (reserveSlots).
    let addr = evaluateGate(id, lo, hi, cost, t, now, false);
    // A dead record's slot is free to the other gates' candidates, so only a
    // live one is kept: the commit looks the others up again.
    store<usize>(s, foundLive ? addr : 0);
    store<u32>(s, at, 4);
    store<u32>(s, lo, 8);
    store<u32>(s, oAllowed ? 1 : 0, 12);
    store<f64>(s, oA, 16);
    store<f64>(s, oB, 24);
    store<f64>(s, oC, 32);
    store<f64>(s, oExp, 40);
    store<f64>(s, oRemaining, 48);
    store<f64>(s, oReset, 56);
    if (!oAllowed) {
      if (g == blockGate) {
        dBlocked = true;
        blockRetry = oRetry;
      } else if (!rateDenied || oRetry > dRetry) {
        dRetry = oRetry;
        dGate = g;
        rateDenied = true;
      }
      all = false;
    }
  }
  if (dBlocked) {
    if (!rateDenied) {
      dRetry = blockRetry;
      dGate = 0;
    } else if (blockRetry > dRetry) {
      dRetry = blockRetry;
    }
  }
  if (all) {
    if (commit && !reserveSlots(gates, hi, now)) return false;
    dRetry = 0;
    dGate = 0;
    dRemaining = Infinity;
    dReset = 0;
    for (let g: u32 = 0; g < gates; g++) {
      let s = gateScratch + <usize>g * GATE_BYTES;
      let rem = load<f64>(s, 48);
      if (rem < dRemaining) {
        dRemaining = rem;
        dGate = g;
      }
      let reset = load<f64>(s, 56);
      if (reset > dReset) dReset = reset;
      if (commit) {
        commitGate(gate0 + g, load<usize>(s), load<u32>(s, 4), load<u32>(s, 8), hi, now,
          load<f64>(s, 16), load<f64>(s, 24), load<f64>(s, 32), load<f64>(s, 40), true);
      }
    }
    return true;
  }
  // Denied: nothing is charged, so report every gate as it stands, which for
  // the gates that would have admitted means re-evaluating at cost 0.
  dRemaining = Infinity;
  dReset = 0;
  for (let g: u32 = 0; g < gates; g++) {
    let s = gateScratch + <usize>g * GATE_BYTES;
    let rem = load<f64>(s, 48);
    let reset = load<f64>(s, 56);
    if (load<u32>(s, 12) != 0) {
      evaluateGate(gate0 + g, load<u32>(s, 8), hi, 0, t, now, false);
      rem = oRemaining;
      reset = oReset;
    }
    if (rem < dRemaining) dRemaining = rem;
    if (reset > dReset) dReset = reset;
  }
  // A blocked key has nothing left, whatever its gates owe (gates.lua's 0).
  if (dBlocked) dRemaining = 0;
  return false;
}

/** Gives `cost` back to every gate's record of the key (lo0, hi), but a concurrency gate's. */
export function refundGates(lo0: u32, hi: u32, gate0: u32, gates: u32, cost: f64, now: f64): void {
  for (let g: u32 = 0; g < gates; g++) {
    let id = gate0 + g;
    // A slot comes back by its permit's release, never by a refund: holders
    // are counted, not named, and a refund would free another's. A block
    // took nothing.
    let k = load<u32>(policies + <usize>id * POLICY_BYTES);
    if (k == KIND_CONCURRENCY || k == KIND_BLOCK) continue;
    let lo = fixKey(gateLo(lo0, id), hi);
    let addr = find(lo, hi, now);
    if (!foundLive) continue;
    let p = policies + <usize>id * POLICY_BYTES;
    let kind = load<u32>(p);
    loadState(kind, addr);
    refundState(kind, load<f64>(p, 8), load<f64>(p, 16), load<f64>(p, 24), cost, now);
    commitGate(id, addr, epoch, lo, hi, now, oA, oB, oC, oExp, false);
  }
}

/**
 * Spends `cost` in every rate gate of the key (lo0, hi) without asking, past
 * the limit if need be (a penalty: the key owes it). Concurrency and block
 * gates are untouched. A gate with no record needs one: when the table is
 * full at its cap in deny mode the charge is not kept there (the key has no
 * state, so it is new, and new keys are refused while the table is full).
 */
export function chargeGates(lo0: u32, hi: u32, gate0: u32, gates: u32, cost: f64, now: f64): void {
  for (let g: u32 = 0; g < gates; g++) {
    let id = gate0 + g;
    let p = policies + <usize>id * POLICY_BYTES;
    let kind = load<u32>(p);
    if (kind == KIND_CONCURRENCY || kind == KIND_BLOCK) continue;
    let lo = fixKey(gateLo(lo0, id), hi);
    let addr = find(lo, hi, now);
    sLive = foundLive;
    if (foundLive) loadState(kind, addr);
    chargeState(kind, load<f64>(p, 8), load<f64>(p, 16), load<f64>(p, 24), cost, now);
    if (addr == 0 && candidate == 0 && oExp > now) {
      if (makeRoom(lo, hi, now) == 0) {
        countRefusal();
        continue;
      }
      addr = find(lo, hi, now);
    }
    commitGate(id, addr, epoch, lo, hi, now, oA, oB, oC, oExp, false);
  }
}

/**
 * After decideAt denied the key (lo0, hi) at `now` by a gate of its own (not
 * its block, not a full table): counts the denial in its block gate, the
 * last of `gates`, when that gate escalates (p0 > 0, blockAfter), which
 * blocks it once p0 denials fell within p1 ms. A new record needs room:
 * with the table full at its cap, the denial is not counted (the request is
 * denied all the same; no other key's record is evicted for an escalation a
 * client can provoke).
 */
export function countDenialGate(lo0: u32, hi: u32, gate0: u32, gates: u32, now: f64): void {
  let id = gate0 + gates - 1;
  let p = policies + <usize>id * POLICY_BYTES;
  if (load<u32>(p) != KIND_BLOCK || load<f64>(p, 8) <= 0) return;
  let lo = fixKey(gateLo(lo0, id), hi);
  let addr = find(lo, hi, now);
  sLive = foundLive;
  if (foundLive) loadState(KIND_BLOCK, addr);
  countDenial(load<f64>(p, 8), load<f64>(p, 16), load<f64>(p, 24), now);
  if (addr == 0 && candidate == 0) {
    if (makeRoom(lo, hi, now) == 0) {
      countRefusal();
      return;
    }
    addr = find(lo, hi, now);
  }
  commitGate(id, addr, epoch, lo, hi, now, oA, oB, oC, oExp, false);
}

/** Forgets the key (lo0, hi) in every gate. */
export function resetGates(lo0: u32, hi: u32, gate0: u32, gates: u32, now: f64): void {
  for (let g: u32 = 0; g < gates; g++) {
    let lo = fixKey(gateLo(lo0, gate0 + g), hi);
    let addr = find(lo, hi, now);
    if (addr != 0) store<f64>(addr, -Infinity, 24);
  }
}

/**
 * Writes gate `gate`'s state for the key (lo0, hi) as another store reported
 * it (see index.ts putState); when the table is full at its cap in deny
 * mode, the state is not kept rather than evicting another.
 */
export function putGateState(lo0: u32, hi: u32, gate: u32, a: f64, b: f64, c: f64, exp: f64, now: f64): bool {
  let lo = fixKey(gateLo(lo0, gate), hi);
  let addr = find(lo, hi, now);
  if (addr == 0 && candidate == 0 && exp > now) {
    if (makeRoom(lo, hi, now) == 0) return false;
    addr = find(lo, hi, now);
  }
  commitGate(gate, addr, epoch, lo, hi, now, a, b, c, exp, false);
  return true;
}

/**
 * Releases (`renew` false) or renews a permit of `cost` holders of the key
 * (lo0, hi) taken or last renewed at `at`, in every concurrency gate; the
 * other gates are untouched. A renewal that takes holders again when their
 * lease ran out needs a record, and is refused when the table is full at its
 * cap in deny mode. Returns whether every concurrency gate holds the permit
 * (a release: true).
 */
export function holdGates(lo0: u32, hi: u32, gate0: u32, gates: u32, cost: f64, at: f64, now: f64, renew: bool): bool {
  let all = true;
  for (let g: u32 = 0; g < gates; g++) {
    let id = gate0 + g;
    let p = policies + <usize>id * POLICY_BYTES;
    if (load<u32>(p) != KIND_CONCURRENCY) continue;
    let lo = fixKey(gateLo(lo0, id), hi);
    let addr = find(lo, hi, now);
    sLive = foundLive;
    if (!foundLive && !renew) continue; // nothing counted: nothing to return
    if (foundLive) loadState(KIND_CONCURRENCY, addr);
    hold(load<f64>(p, 8), load<f64>(p, 16), cost, at, now, renew);
    if (!oAllowed) {
      all = false;
      continue;
    }
    if (addr == 0 && candidate == 0 && oExp > now) {
      if (makeRoom(lo, hi, now) == 0) {
        countRefusal();
        all = false;
        continue;
      }
      addr = find(lo, hi, now);
    }
    commitGate(id, addr, epoch, lo, hi, now, oA, oB, oC, oExp, false);
  }
  return all;
}

/**
 * Reads gate `gate`'s state of the key into sA, sB, sC (the algorithm's
 * fields) and returns its exp, or -Infinity when it has none at `now`: what
 * a plan change carries into the key's new gates (the host converts it).
 */
export function getGateState(lo0: u32, hi: u32, gate: u32, now: f64): f64 {
  let lo = fixKey(gateLo(lo0, gate), hi);
  let addr = find(lo, hi, now);
  if (addr == 0 || !foundLive) return -Infinity;
  loadState(load<u32>(policies + <usize>gate * POLICY_BYTES), addr);
  return load<f64>(addr, 24);
}
