// The ABI of the cellgate core: everything TypeScript calls.
//
// A keyed call (decide, reserve, refund, reset, putState, hashToBatch,
// bucketOf) takes `key`, a descriptor of the key the host has just written
// into the key area (keyPtr(): its UTF-16 code units, or its UTF-8 bytes; see
// key-hash.ts), and the core hashes it with SipHash-1-3 under the store's
// seed. Only the 64-bit hash is kept.
//
// One instance holds one state table and the policies registered into it.
// A limiter with several policies ("gates") registers them as consecutive
// policy ids gate0 .. gate0+gates-1; each gate keeps its own record per key
// (the key's low half is mixed with the policy id), and a request passes only
// if every gate admits it. A denial by one gate charges none of them.
//
// The codes, limits, return value bits and the layouts of the result area,
// the batch entries and step()'s output that this file shares with its host
// are defined once, with their diagrams, in abi/abi.mjs (generated here as
// build/abi-as.ts). A decision (decide, reserve, a batch entry's flags byte)
// is `ALLOWED | bindingGate << GATE_SHIFT`, where bindingGate is the gate
// (0-based) whose numbers it reports; every export that may insert a record
// adds GREW (linear memory grew: the host's views are stale) and FULL (a new
// key met the table full at its cap).

import {
  evaluate,
  refund as refundState,
  sLive, sA, sB, sC,
  oAllowed, oA, oB, oC, oExp, oRemaining, oRetry, oReset,
} from "./algorithms";
import {
  tableInit, find, claim, makeRoom, countRefusal, takeFlags, candidate, epoch, fullWait, foundLive,
  evictionCount, refusalCount, growthCount, slotCount, byteCount, bucketIndex, liveCount, clearTable, checkTable,
} from "./table";
import { keyHashInit, keyAreaPtr, setSeed, sipHash13 } from "./key-hash";
import {
  KIND_SLIDING, MIN_RETRY_MS, MAX_GATES as ABI_MAX_GATES, GREW as ABI_GREW, FULL as ABI_FULL, ALLOWED, GATE_SHIFT,
  RESULT_BYTES, RESULT_REMAINING, RESULT_RETRY_AFTER_MS, RESULT_RESET_AFTER_MS,
  BATCH_BYTES, BATCH_KEY_LO, BATCH_KEY_HI, BATCH_COST, BATCH_REMAINING, BATCH_FLAGS, BATCH_RETRY_AFTER_MS, BATCH_RESET_AFTER_MS,
  STEP_BYTES, STEP_A, STEP_B, STEP_C, STEP_EXP, STEP_REMAINING, STEP_RETRY_AFTER_MS, STEP_RESET_AFTER_MS, STEP_ALLOWED,
} from "../build/abi-as";

// Exported as wasm globals too, as the host's CoreExports lists them. Declared
// here rather than re-exported so that they stay this module's globals: a
// re-export would move them, and every global's index with them, in the
// binary (the core compiles to the same bytes as before the ABI was
// generated).
export const MAX_GATES: u32 = ABI_MAX_GATES;
export const GREW: u32 = ABI_GREW;
export const FULL: u32 = ABI_FULL;

// Policy record (32 bytes): kind u32 @0, p0 f64 @8, p1 f64 @16, p2 f64 @24.
const POLICY_BYTES: usize = 32;
// Per-gate scratch of a multi-gate decision (64 bytes each):
// slot addr @0, table epoch of that addr @4, key lo @8, allowed @12, a @16, b @24, c @32, exp @40, remaining @48, reset @56.
const GATE_BYTES: usize = 64;

let policies: usize = 0;
let policyCapacity: u32 = 0;
let gateScratch: usize = 0;
let result: usize = 0;
let batch: usize = 0;
let batchCapacity: u32 = 0;
let stepOut: usize = 0;

/**
 * Allocates everything, once: room for `maxPolicies` policies, a batch area
 * of `batchEntries` entries, and last the table of 2^initialBits buckets of 8
 * slots, which may double up to 2^maxBits buckets; at that size a new key
 * with no room evicts (`evict`) or is denied. Returns the table's size in bytes.
 */
export function init(initialBits: u32, maxBits: u32, evict: bool, maxPolicies: u32, batchEntries: u32): usize {
  policyCapacity = maxPolicies;
  policies = heap.alloc(<usize>maxPolicies * POLICY_BYTES);
  gateScratch = heap.alloc(<usize>MAX_GATES * GATE_BYTES);
  result = heap.alloc(RESULT_BYTES);
  batchCapacity = batchEntries;
  batch = heap.alloc(<usize>batchEntries * BATCH_BYTES);
  stepOut = heap.alloc(STEP_BYTES);
  keyHashInit();
  return tableInit(initialBits, maxBits, evict);
}

export function stepPtr(): usize {
  return stepOut;
}

/**
 * One step of an algorithm over a state passed in, touching no table: the
 * pure form of a policy (its RateLimiter view in TS). `live` says whether the
 * state (a, b, c) exists. Writes the outcome at stepPtr() (the STEP layout).
 */
export function step(kind: u32, p0: f64, p1: f64, p2: f64, live: bool, a: f64, b: f64, c: f64, cost: f64, t: f64): void {
  sLive = live;
  sA = a;
  sB = b;
  sC = c;
  evaluate(kind, p0, p1, p2, cost, t);
  store<f64>(stepOut, oA, STEP_A);
  store<f64>(stepOut, oB, STEP_B);
  store<f64>(stepOut, oC, STEP_C);
  store<f64>(stepOut, oExp, STEP_EXP);
  store<f64>(stepOut, oRemaining, STEP_REMAINING);
  store<f64>(stepOut, oRetry, STEP_RETRY_AFTER_MS);
  store<f64>(stepOut, oReset, STEP_RESET_AFTER_MS);
  store<f64>(stepOut, oAllowed ? 1 : 0, STEP_ALLOWED);
}

/** Sets the 128-bit key of the key hash (four little-endian 32-bit words). */
export function seed(a: u32, b: u32, c: u32, d: u32): void {
  setSeed(a, b, c, d);
}

/** Where the host writes a key before a keyed call (see key-hash.ts for the two encodings). */
export function keyPtr(): usize {
  return keyAreaPtr();
}

// The key of a keyed call: the hash of the key its descriptor names.
let kLo: u32 = 0;
let kHi: u32 = 0;

@inline function hashKeyArea(key: u32): void {
  let h = sipHash13(key);
  kLo = <u32>h;
  kHi = <u32>(h >>> 32);
}

/** Hashes the key area into batch entry `entry` (its keyLo, keyHi). */
export function hashToBatch(key: u32, entry: u32): void {
  hashKeyArea(key);
  let e = batch + <usize>entry * BATCH_BYTES;
  store<u32>(e, kLo, BATCH_KEY_LO);
  store<u32>(e, kHi, BATCH_KEY_HI);
}

export function resultPtr(): usize {
  return result;
}
export function batchPtr(): usize {
  return batch;
}

export function setPolicy(id: u32, kind: u32, p0: f64, p1: f64, p2: f64): void {
  if (id >= policyCapacity) unreachable();
  let p = policies + <usize>id * POLICY_BYTES;
  store<u32>(p, kind);
  store<f64>(p, p0, 8);
  store<f64>(p, p1, 16);
  store<f64>(p, p2, 24);
}

export function evictions(): f64 {
  return <f64>evictionCount();
}
/** New keys denied because the table was full at its cap (deny mode). */
export function refusals(): f64 {
  return <f64>refusalCount();
}
export function growths(): u32 {
  return growthCount();
}
export function slots(): f64 {
  return <f64>slotCount();
}
export function tableBytes(): f64 {
  return <f64>byteCount();
}
/** First-choice bucket of a key's record in gate `gate`: for tests of the keyed layout. */
export function bucketOf(key: u32, gate: u32): u32 {
  hashKeyArea(key);
  return bucketIndex(fixKey(gateLo(kLo, gate), kHi), kHi);
}
export function live(now: f64): u32 {
  return liveCount(now);
}
export function clear(): void {
  clearTable();
}
/** -1 when the table's invariants hold at `now`, else the first bad slot (for tests). */
export function check(now: f64): i32 {
  return checkTable(now);
}

/** Each gate keys its records by the key's hash mixed with the policy id. */
@inline function gateLo(lo: u32, id: u32): u32 {
  return lo ^ (id * 0x9e3779b1);
}

/** (0, 0) is what a never-used slot holds; keep real keys off it. */
@inline function fixKey(lo: u32, hi: u32): u32 {
  return lo == 0 && hi == 0 ? 1 : lo;
}

@inline function loadState(kind: u32, addr: usize): void {
  sA = load<f64>(addr, 8);
  if (kind == KIND_SLIDING) {
    sB = <f64>load<u32>(addr, 16);
    sC = <f64>load<u32>(addr, 20);
  } else {
    sB = load<f64>(addr, 16);
    sC = 0;
  }
}

@inline function storeState(kind: u32, addr: usize, a: f64, b: f64, c: f64, exp: f64): void {
  store<f64>(addr, a, 8);
  if (kind == KIND_SLIDING) {
    store<u32>(addr, <u32>b, 16);
    store<u32>(addr, <u32>c, 20);
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
let dRemaining: f64 = 0;
let dRetry: f64 = 0;
let dReset: f64 = 0;
let dGate: u32 = 0;

/**
 * Evaluates every gate at time t (reading state as of `now`), and commits all
 * of them when all admit and `commit` is set. Returns whether all admitted.
 */
function decideAt(lo0: u32, hi: u32, gate0: u32, gates: u32, cost: f64, t: f64, now: f64, commit: bool): bool {
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
      if (all || oRetry > dRetry) {
        dRetry = oRetry;
        dGate = g;
      }
      all = false;
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
  return false;
}

@inline function writeResult(remaining: f64, retry: f64, reset: f64): void {
  store<f64>(result, remaining, RESULT_REMAINING);
  store<f64>(result, retry, RESULT_RETRY_AFTER_MS);
  store<f64>(result, reset, RESULT_RESET_AFTER_MS);
}

/**
 * Decides one request of `cost` at `now` for the key in the key area (its
 * descriptor `key`). With `dryRun` set
 * nothing is charged (peek). Returns allowed | bindingGate << 1; the numbers
 * go to the result area.
 */
export function decide(key: u32, gate0: u32, gates: u32, cost: f64, now: f64, dryRun: bool): u32 {
  hashKeyArea(key);
  let ok = decideAt(kLo, kHi, gate0, gates, cost, now, now, !dryRun);
  writeResult(dRemaining, dRetry, dReset);
  return (ok ? ALLOWED : 0) | (dGate << GATE_SHIFT) | grewBit();
}

/**
 * Books the earliest moment at or after `now` at which every gate admits
 * `cost`, provided it is at most `maxWait` ms away, and charges the gates as of
 * that moment. The wait goes to the result's retryAfterMs slot. Returns
 * allowed | bindingGate << 1; when not allowed nothing is charged and the slot
 * holds the wait that would have been needed.
 */
export function reserve(key: u32, gate0: u32, gates: u32, cost: f64, now: f64, maxWait: f64): u32 {
  hashKeyArea(key);
  let lo = kLo;
  let hi = kHi;
  let t = now;
  // Each round moves t to a time at which the gate that denied admits; with
  // several gates this converges in a few rounds. The bound is a safety net.
  for (let round = 0; round < 1000; round++) {
    if (decideAt(lo, hi, gate0, gates, cost, t, now, false)) {
      if (t - now > maxWait) break;
      if (!decideAt(lo, hi, gate0, gates, cost, t, now, true)) {
        // No room to record the booking (the table is full at its cap).
        writeResult(dRemaining, t - now + dRetry, dReset);
        return (dGate << GATE_SHIFT) | grewBit();
      }
      writeResult(dRemaining, t - now, dReset + (t - now));
      return ALLOWED | (dGate << GATE_SHIFT) | grewBit();
    }
    t = t + (dRetry < MIN_RETRY_MS ? MIN_RETRY_MS : dRetry);
    if (t - now > maxWait) break;
  }
  writeResult(dRemaining, t - now, dReset);
  return dGate << GATE_SHIFT;
}

/**
 * GREW and FULL, as they happened since the last export returned: the table
 * reports them as bits 0 and 1, which GREW (the lower of the two adjacent
 * bits, abi/abi.mjs) moves into place.
 */
@inline function grewBit(): u32 {
  return takeFlags() * GREW;
}

/** Gives `cost` back to every gate's record of the key. */
export function refund(key: u32, gate0: u32, gates: u32, cost: f64, now: f64): void {
  hashKeyArea(key);
  let lo0 = kLo;
  let hi = kHi;
  for (let g: u32 = 0; g < gates; g++) {
    let id = gate0 + g;
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

/** Forgets the key in every gate. */
export function reset(key: u32, gate0: u32, gates: u32, now: f64): void {
  hashKeyArea(key);
  let lo0 = kLo;
  let hi = kHi;
  for (let g: u32 = 0; g < gates; g++) {
    let lo = fixKey(gateLo(lo0, gate0 + g), hi);
    let addr = find(lo, hi, now);
    if (addr != 0) store<f64>(addr, -Infinity, 24);
  }
}

/**
 * Decides the first `n` batch entries at `now`, each as `decide` would, in
 * order. Returns GREW or 0.
 */
export function decideBatch(n: u32, gate0: u32, gates: u32, now: f64, dryRun: bool): u32 {
  if (n > batchCapacity) unreachable();
  for (let e = batch, end = batch + <usize>n * BATCH_BYTES; e < end; e += BATCH_BYTES) {
    let ok = decideAt(load<u32>(e, BATCH_KEY_LO), load<u32>(e, BATCH_KEY_HI), gate0, gates, <f64>load<u32>(e, BATCH_COST), now, now, !dryRun);
    store<u32>(e, <u32>dRemaining, BATCH_REMAINING);
    store<u8>(e, <u8>((ok ? ALLOWED : 0) | (dGate << GATE_SHIFT)), BATCH_FLAGS);
    store<f64>(e, dRetry, BATCH_RETRY_AFTER_MS);
    store<f64>(e, dReset, BATCH_RESET_AFTER_MS);
  }
  return grewBit();
}

/**
 * Writes gate `gate`'s state for the key in the key area as another store (Redis) last
 * reported it: the local mirror that answers denials without a round trip and
 * seeds the fallback. An `exp` at or before `now` removes the record. A
 * mirror is a cache of what Redis holds, so when the table is full at its cap
 * in deny mode the state is not mirrored rather than evicting another.
 * Returns GREW or 0.
 */
export function putState(key: u32, gate: u32, a: f64, b: f64, c: f64, exp: f64, now: f64): u32 {
  hashKeyArea(key);
  let hi = kHi;
  let lo = fixKey(gateLo(kLo, gate), hi);
  let addr = find(lo, hi, now);
  if (addr == 0 && candidate == 0 && exp > now) {
    if (makeRoom(lo, hi, now) == 0) return grewBit();
    addr = find(lo, hi, now);
  }
  commitGate(gate, addr, epoch, lo, hi, now, a, b, c, exp, false);
  return grewBit();
}
