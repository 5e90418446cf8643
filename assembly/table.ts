// The per-key state table: a sharded, two-choice, 8-way bucketed hash table in
// linear memory. Keys are 64-bit hashes (two u32 halves); nothing is allocated
// after `tableInit`.
//
// Shards: the top `shardBits` bits of keyHi pick a shard, a contiguous run of
// `bucketsPerShard` buckets. The same bits name the key's virtual shard on the
// TypeScript side, so everything keyed by shard (Redis batches) agrees with it.
//
// Within a shard a key may live in one of two buckets (b1 from keyLo, b2 from a
// mix of both halves), 8 slots each: a lookup scans at most 16 slots, and the
// two choices keep the table usable past 90% load without long probe chains.
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
// a key never seen, so dropping it costs nothing and needs no tombstone (every
// lookup scans both buckets whole, so no probe chain can break). When both
// buckets are full of live records, the soonest-to-expire one is evicted and
// counted.

export const SLOT_BYTES: usize = 32;
export const SLOTS_PER_BUCKET: usize = 8;
export const BUCKET_BYTES: usize = SLOT_BYTES * SLOTS_PER_BUCKET;

let tableBase: usize = 0;
let shardShift: u32 = 32;
let bucketsPerShard: u32 = 1;
let shardBytes: usize = 0;
let totalSlots: usize = 0;
let evictions: u64 = 0;

/** Insertion candidate left by the last `find` that did not find its key. */
let candidate: usize = 0;
/** Whether the last `find` (or `claim`) found or made a live record. */
export let foundLive: bool = false;

export function tableInit(shardBits: u32, buckets: u32): usize {
  bucketsPerShard = buckets;
  shardShift = 32 - shardBits;
  shardBytes = <usize>buckets * BUCKET_BYTES;
  totalSlots = (<usize>1 << shardBits) * <usize>buckets * SLOTS_PER_BUCKET;
  let bytes = totalSlots * SLOT_BYTES;
  tableBase = heap.alloc(bytes);
  for (let p = tableBase, end = tableBase + bytes; p < end; p += SLOT_BYTES) {
    store<u64>(p, 0);
    store<f64>(p, -Infinity, 24);
  }
  return bytes;
}

@inline function shardOf(hi: u32): u32 {
  // shardShift == 32 means one shard; a wasm shift by 32 would be a shift by 0.
  return shardShift >= 32 ? 0 : hi >>> shardShift;
}

@inline function fastRange(h: u32, n: u32): u32 {
  return <u32>((<u64>h * <u64>n) >>> 32);
}

let bucket1: usize = 0;
let bucket2: usize = 0;

@inline function locate(lo: u32, hi: u32): void {
  let shardBase = tableBase + <usize>shardOf(hi) * shardBytes;
  let n = bucketsPerShard;
  let b1 = fastRange(lo, n);
  let b2 = fastRange((lo ^ (lo >>> 15) ^ hi) * 0x2c1b3c6d, n);
  if (b2 == b1 && n > 1) b2 = b1 + 1 == n ? 0 : b1 + 1;
  bucket1 = shardBase + <usize>b1 * BUCKET_BYTES;
  bucket2 = shardBase + <usize>b2 * BUCKET_BYTES;
}

/**
 * Finds the slot holding key (lo, hi). Returns its address (foundLive tells
 * whether its state is still live at `now`) or 0 when absent, in which case
 * `candidate` is where the key would go.
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
  // A miss: the first free slot, else room made by displacement or eviction.
  foundLive = false;
  let best: usize = 0;
  let bestExp: f64 = Infinity;
  let base = bucket1;
  for (let round = 0; round < 2; round++) {
    for (let p = base, end = base + BUCKET_BYTES; p < end; p += SLOT_BYTES) {
      let exp = load<f64>(p, 24);
      if (exp <= now) {
        candidate = p;
        return 0;
      }
      if (exp < bestExp) {
        bestExp = exp;
        best = p;
      }
    }
    if (bucket2 == bucket1) break;
    base = bucket2;
  }
  candidate = displace(now, best);
  return 0;
}

/**
 * Both buckets are full of live records: make room by moving one of their
 * residents to its other bucket if that has a free slot (one cuckoo step,
 * which lifts the load the table holds without evicting from ~80% to ~95%),
 * or else hand back `fallback`, the soonest-to-expire slot, to be evicted.
 * Runs only when a key is inserted into two full buckets.
 */
function displace(now: f64, fallback: usize): usize {
  let own1 = bucket1;
  let own2 = bucket2;
  let base = own1;
  for (let round = 0; round < 2; round++) {
    for (let i: usize = 0; i < SLOTS_PER_BUCKET; i++) {
      let p = base + i * SLOT_BYTES;
      locate(load<u32>(p), load<u32>(p, 4));
      let other = bucket1 == base ? bucket2 : bucket1;
      if (other == base) continue;
      for (let j: usize = 0; j < SLOTS_PER_BUCKET; j++) {
        let q = other + j * SLOT_BYTES;
        if (load<f64>(q, 24) <= now) {
          memory.copy(q, p, SLOT_BYTES);
          // p is free now: a second `find` before the claim must not move another resident.
          store<f64>(p, -Infinity, 24);
          bucket1 = own1;
          bucket2 = own2;
          return p;
        }
      }
    }
    if (own2 == own1) break;
    base = own2;
  }
  bucket1 = own1;
  bucket2 = own2;
  return fallback;
}

/**
 * Returns the slot to write key (lo, hi) into: its own slot when `addr` is
 * non-zero, otherwise the candidate of the last `find`, evicting a live record
 * if it has to. `find` must have been called for this key just before.
 */
export function claim(addr: usize, lo: u32, hi: u32, now: f64): usize {
  let p = addr;
  if (p == 0) {
    p = candidate;
    if (load<f64>(p, 24) > now) evictions++;
  }
  // Written even for the key's own slot: a commit of another gate in between
  // may have evicted it.
  store<u32>(p, lo);
  store<u32>(p, hi, 4);
  return p;
}

export function evictionCount(): u64 {
  return evictions;
}

export function slotCount(): usize {
  return totalSlots;
}

export function liveCount(now: f64): u32 {
  let n: u32 = 0;
  for (let p = tableBase, end = tableBase + totalSlots * SLOT_BYTES; p < end; p += SLOT_BYTES) {
    if (load<f64>(p, 24) > now) n++;
  }
  return n;
}

export function clearTable(): void {
  for (let p = tableBase, end = tableBase + totalSlots * SLOT_BYTES; p < end; p += SLOT_BYTES) {
    store<f64>(p, -Infinity, 24);
  }
}
