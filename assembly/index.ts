// The ABI of the cellgate core: everything TypeScript calls.
//
// A keyed call (decide, reserve, refund, reset, putState, hashToBatch,
// bucketOf) takes `key`, a descriptor of the key the host has just written
// into the key area (keyPtr(): its UTF-16 code units, or its UTF-8 bytes; see
// key-hash.ts), and the core hashes it with SipHash-1-3 under the store's
// seed. Only the 64-bit hash is kept.
//
// One instance holds one state table and the policies registered into it
// (gates.ts decides a request against them; reserve.ts searches a booking).
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

import { evaluate, sLive, sA, sB, sC, oAllowed, oA, oB, oC, oExp, oRemaining, oRetry, oReset, oHeldAt } from "./algorithms";
import {
  tableInit, takeFlags, evictionCount, refusalCount, growthCount, slotCount, byteCount, bucketIndex, liveCount, clearTable, checkTable,
} from "./table";
import {
  gatesInit, setPolicyRecord, gateLo, fixKey, decideAt, refundGates, resetGates, putGateState, getGateState, holdGates, chargeGates, countDenialGate,
  dRemaining, dRetry, dReset, dGate, dBlocked, dRefused,
} from "./gates";
import { bookEarliest, searchedWait, BOOKED, NO_ROOM } from "./reserve";
import { keyHashInit, keyAreaPtr, batchKeysPtr as batchKeyArea, setSeed, sipHash13, sipHashBatchKey } from "./key-hash";
import {
  MAX_GATES as ABI_MAX_GATES, GREW as ABI_GREW, FULL as ABI_FULL, ALLOWED, BLOCKED, GATE_SHIFT, KEY_SAME,
  RESULT_BYTES, RESULT_REMAINING, RESULT_RETRY_AFTER_MS, RESULT_RESET_AFTER_MS, RESULT_HELD_AT,
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
  gatesInit(maxPolicies);
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
  // The previous keyed call's key again: kLo and kHi still hold its hash.
  if (key == KEY_SAME) return;
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

/** Where the host writes a batch's keys (see hashBatch). */
export function batchKeysPtr(): usize {
  return batchKeyArea();
}

/**
 * Hashes the keys of the first `n` batch entries: each entry names its key
 * by its offset in the batch key area (keyLo) and its descriptor (keyHi),
 * and gets the key's hash in their place. One call for a batch's keys.
 */
export function hashBatch(n: u32): void {
  if (n > batchCapacity) unreachable();
  for (let e = batch, end = batch + <usize>n * BATCH_BYTES; e < end; e += BATCH_BYTES) {
    let h = sipHashBatchKey(load<u32>(e, BATCH_KEY_LO), load<u32>(e, BATCH_KEY_HI));
    store<u32>(e, <u32>h, BATCH_KEY_LO);
    store<u32>(e, <u32>(h >>> 32), BATCH_KEY_HI);
  }
}

export function resultPtr(): usize {
  return result;
}
export function batchPtr(): usize {
  return batch;
}

export function setPolicy(id: u32, kind: u32, p0: f64, p1: f64, p2: f64): void {
  setPolicyRecord(id, kind, p0, p1, p2);
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
  // A limiter has at most one concurrency gate: its evaluation set oHeldAt (unread otherwise).
  store<f64>(result, oHeldAt, RESULT_HELD_AT);
  let r = (ok ? ALLOWED : 0) | (dGate << GATE_SHIFT);
  if (!ok) r |= denied(kLo, kHi, gate0, gates, now, dryRun);
  return r | grewBit();
}

/**
 * After a denial: BLOCKED when the key's block denied it; otherwise, unless
 * a dry run or the full table's refusal, the denial counts toward a block
 * (blockAfter; gates.ts countDenialGate, which is a no-op without one).
 */
@inline function denied(lo: u32, hi: u32, gate0: u32, gates: u32, now: f64, dryRun: bool): u32 {
  if (dBlocked) return BLOCKED;
  if (!dryRun && !dRefused && gates > 1) countDenialGate(lo, hi, gate0, gates, now);
  return 0;
}

/**
 * Books the earliest moment at or after `now` at which every gate admits
 * `cost`, provided it is at most `maxWait` ms away, and charges the gates as of
 * that moment (reserve.ts). The wait goes to the result's retryAfterMs slot.
 * Returns a decision; when not allowed nothing is charged and the slot holds
 * the wait that would have been needed.
 */
export function reserve(key: u32, gate0: u32, gates: u32, cost: f64, now: f64, maxWait: f64): u32 {
  hashKeyArea(key);
  let booked = bookEarliest(kLo, kHi, gate0, gates, cost, now, maxWait);
  let wait = searchedWait;
  if (booked == BOOKED) {
    writeResult(dRemaining, wait, dReset + wait);
    return ALLOWED | (dGate << GATE_SHIFT) | grewBit();
  }
  if (booked == NO_ROOM) {
    // No room to record the booking (the table is full at its cap).
    writeResult(dRemaining, wait + dRetry, dReset);
    return (dGate << GATE_SHIFT) | grewBit();
  }
  writeResult(dRemaining, wait, dReset);
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

/**
 * Spends `cost` in every rate gate of the key without asking, past its limit
 * if need be (a penalty: gates.ts chargeGates). Returns GREW and FULL.
 */
export function charge(key: u32, gate0: u32, gates: u32, cost: f64, now: f64): u32 {
  hashKeyArea(key);
  chargeGates(kLo, kHi, gate0, gates, cost, now);
  return grewBit();
}

/** Gives `cost` back to every gate's record of the key. */
export function refund(key: u32, gate0: u32, gates: u32, cost: f64, now: f64): void {
  hashKeyArea(key);
  refundGates(kLo, kHi, gate0, gates, cost, now);
}

/**
 * Returns a permit's `cost` holders, taken or last renewed at `at`, to every
 * concurrency gate of the key (gates.ts holdGates).
 */
export function release(key: u32, gate0: u32, gates: u32, cost: f64, at: f64, now: f64): void {
  hashKeyArea(key);
  holdGates(kLo, kHi, gate0, gates, cost, at, now, false);
}

/**
 * Renews a permit of `cost` holders taken or last renewed at `at` in every
 * concurrency gate of the key. Returns ALLOWED when all still hold it, with
 * GREW and FULL.
 */
export function renew(key: u32, gate0: u32, gates: u32, cost: f64, at: f64, now: f64): u32 {
  hashKeyArea(key);
  let ok = holdGates(kLo, kHi, gate0, gates, cost, at, now, true);
  store<f64>(result, oHeldAt, RESULT_HELD_AT);
  return (ok ? ALLOWED : 0) | grewBit();
}

/** Forgets the key in every gate. */
export function reset(key: u32, gate0: u32, gates: u32, now: f64): void {
  hashKeyArea(key);
  resetGates(kLo, kHi, gate0, gates, now);
}

/**
 * Decides the first `n` batch entries at `now`, each as `decide` would, in
 * order. Returns GREW or 0.
 */
export function decideBatch(n: u32, gate0: u32, gates: u32, now: f64, dryRun: bool): u32 {
  if (n > batchCapacity) unreachable();
  for (let e = batch, end = batch + <usize>n * BATCH_BYTES; e < end; e += BATCH_BYTES) {
    let lo = load<u32>(e, BATCH_KEY_LO);
    let hi = load<u32>(e, BATCH_KEY_HI);
    let ok = decideAt(lo, hi, gate0, gates, <f64>load<u32>(e, BATCH_COST), now, now, !dryRun);
    let flags = (ok ? ALLOWED : 0) | (dGate << GATE_SHIFT);
    // (The counting may move records: the outcome is read first.)
    let remaining = dRemaining;
    let retry = dRetry;
    let reset = dReset;
    if (!ok) flags |= denied(lo, hi, gate0, gates, now, dryRun);
    store<u32>(e, <u32>remaining, BATCH_REMAINING);
    store<u8>(e, <u8>flags, BATCH_FLAGS);
    store<f64>(e, retry, BATCH_RETRY_AFTER_MS);
    store<f64>(e, reset, BATCH_RESET_AFTER_MS);
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
  let kept = putGateState(kLo, kHi, gate, a, b, c, exp, now);
  return (kept ? ALLOWED : 0) | grewBit();
}

/**
 * Reads gate `gate`'s state of the key in the key area into the result area
 * (a, b, c, exp), for a plan change to carry; returns ALLOWED when it has one.
 */
export function getState(key: u32, gate: u32, now: f64): u32 {
  hashKeyArea(key);
  let exp = getGateState(kLo, kHi, gate, now);
  if (exp == -Infinity) return 0;
  store<f64>(result, sA, 0);
  store<f64>(result, sB, 8);
  store<f64>(result, sC, 16);
  store<f64>(result, exp, 24);
  return ALLOWED;
}
