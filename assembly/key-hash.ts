// The table's key hash: SipHash-1-3 (Aumasson & Bernstein; the keyed hash of
// Rust's HashMap and CPython) under a secret 128-bit seed, over a key's UTF-16
// code units as the host wrote them into the key area. Native 64-bit
// arithmetic makes it several times cheaper here than in JavaScript, which
// has no fast 64-bit integers.
//
// Key area: KEY_AREA_BYTES from keyPtr(), written by the host before each
// keyed call, which names the key by a descriptor (abi/abi.mjs):
// `bytes << KEY_BYTES_SHIFT | KEY_UTF8`.
// - without KEY_UTF8: the key's UTF-16 code units, little-endian (any string,
//   lone surrogates included);
// - with KEY_UTF8: the key's UTF-8 bytes (well-formed strings only: the host
//   encodes long keys natively, faster than a code unit loop).
// Each encoding is one-to-one, and the two are hashed under different keys
// (k1 is tagged for UTF-8), so a key's two spellings never meet: "ab" in
// UTF-16 and "a\0b\0" in UTF-8 are the same bytes, not the same hash.

import { BATCH_KEY_AREA_BYTES, KEY_AREA_BYTES, KEY_BYTES_SHIFT, KEY_UTF8 } from "../build/abi-as";

/** XORed into k1 for UTF-8 keys: a second, independent PRF. */
const UTF8_TAG: u64 = 0x7574662d38000000;

let k0: u64 = 0;
let k1: u64 = 0;
let keyArea: usize = 0;
let batchKeys: usize = 0;

export function keyHashInit(): usize {
  keyArea = heap.alloc(KEY_AREA_BYTES);
  batchKeys = heap.alloc(BATCH_KEY_AREA_BYTES);
  return keyArea;
}

export function batchKeysPtr(): usize {
  return batchKeys;
}

/** SipHash-1-3 of the key at `offset` in the batch key area that `desc` names (refused past the area). */
export function sipHashBatchKey(offset: u32, desc: u32): u64 {
  let end = <u64>offset + <u64>(desc >>> KEY_BYTES_SHIFT);
  if (end > <u64>BATCH_KEY_AREA_BYTES) unreachable(); // the host checks; never read past the area
  return sipHashAt(batchKeys + <usize>offset, desc);
}

export function setSeed(a: u32, b: u32, c: u32, d: u32): void {
  k0 = <u64>a | (<u64>b << 32);
  k1 = <u64>c | (<u64>d << 32);
}

export function keyAreaPtr(): usize {
  return keyArea;
}

/** SipHash-1-3 of the key the descriptor names (see the header). */
export function sipHash13(desc: u32): u64 {
  if (<usize>(desc >>> KEY_BYTES_SHIFT) > KEY_AREA_BYTES) unreachable(); // the host checks; never read past the area
  return sipHashAt(keyArea, desc);
}

/** SipHash-1-3 of the key at `base` that `desc` names (its bytes checked by the caller). */
@inline function sipHashAt(base: usize, desc: u32): u64 {
  let bytes = <usize>(desc >>> KEY_BYTES_SHIFT);
  let key1 = (desc & KEY_UTF8) != 0 ? k1 ^ UTF8_TAG : k1;
  let v0: u64 = k0 ^ 0x736f6d6570736575;
  let v1: u64 = key1 ^ 0x646f72616e646f6d;
  let v2: u64 = k0 ^ 0x6c7967656e657261;
  let v3: u64 = key1 ^ 0x7465646279746573;
  let words = <u32>(bytes >> 3);
  let end = base + (<usize>words << 3);
  // The last word: the tail (0 to 7 bytes) and the length in bytes, mod 256,
  // in the top byte.
  let last: u64 = <u64>(bytes & 0xff) << 56;
  for (let j: usize = 0, rest = bytes & 7; j < rest; j++) last |= <u64>load<u8>(end + j) << (<u64>j << 3);
  // One round per message word (c = 1), then three (d = 3): one loop, so the
  // round is written once.
  for (let i: u32 = 0, rounds = words + 4; i < rounds; i++) {
    let m: u64 = i < words ? load<u64>(base + (<usize>i << 3)) : i == words ? last : 0;
    v3 ^= m;
    v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
    v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
    v0 ^= m;
    if (i == words) v2 ^= 0xff;
  }
  return v0 ^ v1 ^ v2 ^ v3;
}
