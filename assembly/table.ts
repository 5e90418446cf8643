// The per-key state table: a two-choice, 8-way bucketed hash table in linear
// memory that grows in place and never forgets a key that still owes.
// Keys are keyed 64-bit hashes (two u32 halves, SipHash under a secret seed in
// TypeScript), so nobody outside the process can aim keys at a bucket.
//
// 2^bucketBits buckets of 8 slots. A key may live in one of two buckets: b1,
// the top bucketBits bits of keyLo, and b2, the top bits of a mix of both
// halves. A lookup scans at most 16 slots.
//
// Slot (32 bytes):
//
//   0        4        8                  16                 24                 32
//   ┌────────┬────────┬──────────────────┬──────────────────┬──────────────────┐
//   │ keyLo  │ keyHi  │ a: f64           │ b: f64           │ exp: f64         │
//   │ u32    │ u32    │                  │ (sliding: u32 cur│ state decays to  │
//   │        │        │                  │  @16, u32 prev@20)│ "never seen" at │
//   └────────┴────────┴──────────────────┴──────────────────┴──────────────────┘
//
// A slot whose exp <= now is free: the state it held is indistinguishable from
// a key never seen, so reusing it costs nothing and needs no tombstone (every
// lookup scans both buckets whole, so no probe chain can break). That is the
// only way a record leaves the table: a record still live is a debt (a key
// being denied, a window still counting), and dropping it would hand its key
// a fresh budget.
//
// When both of a new key's buckets are full of live records, room is made by
// moving residents to their other bucket (a breadth-first search two moves
// deep), which fills the table to ~97% before it has to grow; then the table
// doubles in place (below). Only at its size cap does `whenFull` decide:
// refuse the new key (deny) or evict the soonest-to-expire record (evict).
//
// Growing in place: because both choices are prefixes of a hash, the children
// of bucket i after doubling are 2i and 2i+1 (one more bit of the same hash).
// Walking the old buckets from the top down, each one's children have already
// been emptied (they are above it) or are new, so records move with one
// bucket of scratch and no second table: the table must be the last thing in
// linear memory, and nothing is allocated after `tableInit`.

// SLOTS_PER_BUCKET is shared with the host, which sizes the table in buckets.
import { SLOTS_PER_BUCKET } from "../build/abi-as";

export const SLOT_BYTES: usize = 32;
export const BUCKET_BYTES: usize = SLOT_BYTES * SLOTS_PER_BUCKET;

let tableBase: usize = 0;
let bucketBits: u32 = 0;
let maxBucketBits: u32 = 0;
let evictWhenFull: bool = false;
let scratch: usize = 0;

let evictions: u64 = 0;
let refusals: u64 = 0;
let growths: u32 = 0;

/**
 * Bumped whenever records move (displacement or growth): a slot address taken
 * before a bump may no longer hold its key.
 */
export let epoch: u32 = 0;
/** Set when linear memory grew (the host's views of it are stale); cleared by `takeFlags`. */
let grew: bool = false;
/** Set when a new key met the table full at its cap (refused or evicted for); cleared by `takeFlags`. */
let wasFull: bool = false;

/** Insertion candidate left by the last `find` that did not find its key (0: both buckets full). */
export let candidate: usize = 0;
/** Whether the last `find` found a live record. */
export let foundLive: bool = false;
/** When the last `makeRoom` found none: how long until a record in the key's buckets expires. */
export let fullWait: f64 = 0;

/**
 * Allocates the table, last: 2^initialBits buckets, growing up to
 * 2^maxBits. `evict` chooses what happens at the cap. Returns its bytes.
 */
export function tableInit(initialBits: u32, maxBits: u32, evict: bool): usize {
  scratch = heap.alloc(BUCKET_BYTES);
  bucketBits = initialBits;
  maxBucketBits = maxBits;
  evictWhenFull = evict;
  let bytes = tableBytes();
  tableBase = heap.alloc(bytes);
  clearRange(tableBase, tableBase + bytes);
  return bytes;
}

@inline function tableBytes(): usize {
  return (<usize>1 << bucketBits) * BUCKET_BYTES;
}

function clearRange(from: usize, to: usize): void {
  for (let p = from; p < to; p += SLOT_BYTES) {
    store<u64>(p, 0);
    store<f64>(p, -Infinity, 24);
  }
}

/** The top `bits` bits of h (0 when bits is 0: a wasm shift by 32 is a shift by 0). */
@inline function prefix(h: u32, bits: u32): u32 {
  return <u32>(<u64>h >> <u64>(32 - bits));
}

@inline function mix(lo: u32, hi: u32): u32 {
  return (lo ^ (lo >>> 15) ^ hi) * 0x2c1b3c6d;
}

let bucket1: usize = 0;
let bucket2: usize = 0;

@inline function locate(lo: u32, hi: u32): void {
  bucket1 = tableBase + <usize>prefix(lo, bucketBits) * BUCKET_BYTES;
  bucket2 = tableBase + <usize>prefix(mix(lo, hi), bucketBits) * BUCKET_BYTES;
}

@inline function firstFree(bucket: usize, now: f64): usize {
  for (let p = bucket, end = bucket + BUCKET_BYTES; p < end; p += SLOT_BYTES) {
    if (load<f64>(p, 24) <= now) return p;
  }
  return 0;
}

/**
 * Finds the slot holding key (lo, hi). Returns its address (foundLive tells
 * whether its state is still live at `now`) or 0 when absent, in which case
 * `candidate` is a free slot for the key, or 0 when both buckets are full of
 * live records (see `makeRoom`). Moves nothing.
 */
export function find(lo: u32, hi: u32, now: f64): usize {
  locate(lo, hi);
  // Hits first, in a tight loop comparing both halves at once: most lookups
  // end in the first slots of bucket1.
  let key = (<u64>hi << 32) | <u64>lo;
  for (let p = bucket1, end = bucket1 + BUCKET_BYTES; p < end; p += SLOT_BYTES) {
    if (load<u64>(p) == key) {
      foundLive = load<f64>(p, 24) > now;
      return p;
    }
  }
  if (bucket2 != bucket1) {
    for (let p = bucket2, end = bucket2 + BUCKET_BYTES; p < end; p += SLOT_BYTES) {
      if (load<u64>(p) == key) {
        foundLive = load<f64>(p, 24) > now;
        return p;
      }
    }
  }
  foundLive = false;
  let free = firstFree(bucket1, now);
  if (free == 0 && bucket2 != bucket1) free = firstFree(bucket2, now);
  candidate = free;
  return 0;
}

/** The bucket of the resident at `slot` (in `bucket`) other than `bucket` (0: it has one). */
@inline function otherBucket(slot: usize, bucket: usize): usize {
  locate(load<u32>(slot), load<u32>(slot, 4));
  let other = bucket1 == bucket ? bucket2 : bucket1;
  return other == bucket ? 0 : other;
}

@inline function move(to: usize, from: usize): void {
  memory.copy(to, from, SLOT_BYTES);
  // Clear the key too: a dead copy left behind in the record's other bucket
  // would be found first by a lookup, and read as "never seen".
  store<u64>(from, 0);
  store<f64>(from, -Infinity, 24);
}

/**
 * Frees a slot in `bucket` by moving one resident to its other bucket, or a
 * resident of that bucket to its own other bucket first (two moves deep).
 * Returns the freed slot or 0.
 */
function displaceFrom(bucket: usize, now: f64): usize {
  for (let p = bucket, end = bucket + BUCKET_BYTES; p < end; p += SLOT_BYTES) {
    let other = otherBucket(p, bucket);
    if (other == 0) continue;
    let free = firstFree(other, now);
    if (free != 0) {
      move(free, p);
      return p;
    }
  }
  for (let p = bucket, end = bucket + BUCKET_BYTES; p < end; p += SLOT_BYTES) {
    let other = otherBucket(p, bucket);
    if (other == 0) continue;
    for (let q = other, qEnd = other + BUCKET_BYTES; q < qEnd; q += SLOT_BYTES) {
      let third = otherBucket(q, other);
      if (third == 0 || third == bucket) continue;
      let free = firstFree(third, now);
      if (free != 0) {
        move(free, q);
        move(q, p);
        return p;
      }
    }
  }
  return 0;
}

/**
 * How long a key is told to wait when every slot in its reach holds a claim
 * of its own request (a key with more gates than its buckets have slots, in
 * a tiny capped table): nothing there will expire, and the wait must be finite.
 */
const FULL_RETRY_MS: f64 = 1000;

/**
 * The soonest-to-expire slot of the key's two buckets (located last), or 0
 * when none has a finite expiry: +Infinity marks a slot claimed by the request
 * being decided (see reserveSlots), which must not be taken from it.
 */
function soonest(): usize {
  let best: usize = 0;
  let bestExp = Infinity;
  let base = bucket1;
  for (let round = 0; round < 2; round++) {
    for (let p = base, end = base + BUCKET_BYTES; p < end; p += SLOT_BYTES) {
      let exp = load<f64>(p, 24);
      if (exp < bestExp) {
        bestExp = exp;
        best = p;
      }
    }
    if (bucket2 == bucket1) break;
    base = bucket2;
  }
  return best;
}

/**
 * Both buckets of key (lo, hi) are full of live records (`find` left no
 * candidate): displace, else grow, else at the cap evict (evict mode) or give
 * up (deny mode). Returns a free slot for the key, or 0 with `fullWait` set.
 * May move records (bumps `epoch`).
 */
export function makeRoom(lo: u32, hi: u32, now: f64): usize {
  for (let attempt = 0; attempt < 4; attempt++) {
    locate(lo, hi);
    let own1 = bucket1;
    let own2 = bucket2;
    let free = displaceFrom(own1, now);
    if (free == 0 && own2 != own1) free = displaceFrom(own2, now);
    bucket1 = own1;
    bucket2 = own2;
    if (free != 0) {
      epoch++;
      return free;
    }
    if (!grow(now)) break;
    // A new child bucket can still be full (8 records sharing the next bit): try again.
    if (find(lo, hi, now) == 0 && candidate != 0) return candidate;
  }
  locate(lo, hi);
  let victim = soonest();
  wasFull = true;
  if (victim == 0) {
    fullWait = FULL_RETRY_MS;
    return 0;
  }
  if (evictWhenFull) {
    evictions++;
    release(victim); // free now: a `find` before the claim sees it as the candidate
    return victim;
  }
  fullWait = load<f64>(victim, 24) - now;
  return 0;
}

/**
 * Drops the record at `slot` (an eviction). Bumps `epoch`: another gate of
 * the request being decided may hold that slot's address.
 */
@inline function release(slot: usize): void {
  store<u64>(slot, 0);
  store<f64>(slot, -Infinity, 24);
  epoch++;
}

/** Counts a request denied because its key could not get room (once per request, whatever its gates). */
export function countRefusal(): void {
  refusals++;
}

/** Evicts the soonest-to-expire record of the key's buckets: the last resort when room vanished between a check and a commit. */
export function evictFor(lo: u32, hi: u32): usize {
  locate(lo, hi);
  evictions++;
  let victim = soonest();
  if (victim == 0) victim = bucket1; // only claims of this request in reach: never write nowhere
  release(victim);
  return victim;
}

/** Doubles the table in place (see the header). False at the cap or when memory cannot grow. */
function grow(now: f64): bool {
  if (bucketBits >= maxBucketBits) return false;
  let oldBytes = tableBytes();
  let end = tableBase + oldBytes * 2;
  let have = <usize>memory.size() << 16;
  if (end > have) {
    if (memory.grow(<i32>((end - have + 0xffff) >> 16)) < 0) return false;
    grew = true;
  }
  clearRange(tableBase + oldBytes, end);
  let oldBits = bucketBits;
  bucketBits++;
  for (let i = (<i64>1 << oldBits) - 1; i >= 0; i--) {
    let src = tableBase + <usize>i * BUCKET_BYTES;
    memory.copy(scratch, src, BUCKET_BYTES);
    clearRange(src, src + BUCKET_BYTES);
    for (let e = scratch, eEnd = scratch + BUCKET_BYTES; e < eEnd; e += SLOT_BYTES) {
      if (load<f64>(e, 24) <= now) continue; // decayed: let it go
      let lo = load<u32>(e);
      let h = prefix(lo, oldBits) == <u32>i ? lo : mix(lo, load<u32>(e, 4));
      let to = firstFree(tableBase + <usize>prefix(h, bucketBits) * BUCKET_BYTES, now);
      memory.copy(to, e, SLOT_BYTES);
    }
  }
  growths++;
  epoch++;
  return true;
}

/**
 * Returns the slot to write key (lo, hi) into: its own slot when `addr` is
 * non-zero, otherwise the candidate of the last `find` (or room made now),
 * evicting only as a last resort. `find` must have been called for this key
 * just before.
 */
export function claim(addr: usize, lo: u32, hi: u32, now: f64): usize {
  let p = addr;
  if (p == 0) {
    p = candidate;
    if (p == 0) p = makeRoom(lo, hi, now);
    if (p == 0) p = evictFor(lo, hi);
  }
  // Written even for the key's own slot: a commit of another gate in between
  // may have moved it.
  store<u32>(p, lo);
  store<u32>(p, hi, 4);
  return p;
}

/**
 * What the host must hear about since the last call: bit 0, linear memory
 * grew (renew its views); bit 1, a new key met the table full at its cap.
 */
export function takeFlags(): u32 {
  let f: u32 = (grew ? 1 : 0) | (wasFull ? 2 : 0);
  grew = false;
  wasFull = false;
  return f;
}

export function evictionCount(): u64 {
  return evictions;
}

export function refusalCount(): u64 {
  return refusals;
}

export function growthCount(): u32 {
  return growths;
}

export function slotCount(): usize {
  return (<usize>1 << bucketBits) * SLOTS_PER_BUCKET;
}

export function byteCount(): usize {
  return tableBytes();
}

/** The bucket index of key (lo, hi)'s first choice (for tests of the keyed layout). */
export function bucketIndex(lo: u32, hi: u32): u32 {
  return prefix(lo, bucketBits);
}

export function liveCount(now: f64): u32 {
  let n: u32 = 0;
  for (let p = tableBase, end = tableBase + tableBytes(); p < end; p += SLOT_BYTES) {
    if (load<f64>(p, 24) > now) n++;
  }
  return n;
}

export function clearTable(): void {
  clearRange(tableBase, tableBase + tableBytes());
}

/**
 * Checks the table's invariants at `now`: every live record sits in one of
 * its key's two buckets, and no key has two live records. Returns -1, or the
 * index of the first slot that breaks them (for tests).
 */
export function checkTable(now: f64): i32 {
  let end = tableBase + tableBytes();
  for (let p = tableBase; p < end; p += SLOT_BYTES) {
    if (load<f64>(p, 24) <= now) continue;
    let bucket = tableBase + ((p - tableBase) / BUCKET_BYTES) * BUCKET_BYTES;
    locate(load<u32>(p), load<u32>(p, 4));
    if (bucket != bucket1 && bucket != bucket2) return <i32>((p - tableBase) / SLOT_BYTES);
    let key = load<u64>(p);
    for (let q = bucket1; q < bucket1 + BUCKET_BYTES; q += SLOT_BYTES) {
      if (q != p && load<u64>(q) == key && load<f64>(q, 24) > now) return <i32>((p - tableBase) / SLOT_BYTES);
    }
    for (let q = bucket2; q < bucket2 + BUCKET_BYTES; q += SLOT_BYTES) {
      if (q != p && load<u64>(q) == key && load<f64>(q, 24) > now) return <i32>((p - tableBase) / SLOT_BYTES);
    }
  }
  return -1;
}
