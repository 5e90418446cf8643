// The table's key hash: SipHash-1-3 (Aumasson & Bernstein; the keyed hash of
// Rust's HashMap and CPython) under a secret 128-bit seed, over a key's UTF-16
// code units as the host wrote them into the key area. Native 64-bit
// arithmetic makes it several times cheaper here than in JavaScript, which
// has no fast 64-bit integers.
//
// Key area: MAX_KEY_UNITS u16 code units from keyPtr(), written by the host
// before each hashKey(n) call. The message is those 2n bytes, little-endian,
// so every string has one encoding and no two strings share it.

/** Longest key, in UTF-16 code units: MAX_KEY_LENGTH in src/key-hash.ts (test/security.test.ts holds them equal). */
export const MAX_KEY_UNITS: u32 = 512;

let k0: u64 = 0;
let k1: u64 = 0;
let keyArea: usize = 0;

export function keyHashInit(): usize {
  keyArea = heap.alloc(<usize>MAX_KEY_UNITS * 2);
  return keyArea;
}

export function setSeed(a: u32, b: u32, c: u32, d: u32): void {
  k0 = <u64>a | (<u64>b << 32);
  k1 = <u64>c | (<u64>d << 32);
}

export function keyAreaPtr(): usize {
  return keyArea;
}

/** SipHash-1-3 of the first `n` code units of the key area. */
export function sipHash13(n: u32): u64 {
  if (n > MAX_KEY_UNITS) unreachable(); // the host checks; never read past the area
  let v0: u64 = k0 ^ 0x736f6d6570736575;
  let v1: u64 = k1 ^ 0x646f72616e646f6d;
  let v2: u64 = k0 ^ 0x6c7967656e657261;
  let v3: u64 = k1 ^ 0x7465646279746573;
  let bytes = <usize>n << 1;
  let words = <u32>(bytes >> 3);
  let end = keyArea + (<usize>words << 3);
  // The last word: the tail (0, 2, 4 or 6 bytes) and the length in bytes,
  // mod 256, in the top byte.
  let last: u64 = <u64>(bytes & 0xff) << 56;
  let rest = bytes & 7;
  if (rest >= 4) {
    last |= <u64>load<u32>(end);
    if (rest == 6) last |= <u64>load<u16>(end, 4) << 32;
  } else if (rest == 2) {
    last |= <u64>load<u16>(end);
  }
  // One round per message word (c = 1), then three (d = 3): one loop, so the
  // round is written once.
  for (let i: u32 = 0, rounds = words + 4; i < rounds; i++) {
    let m: u64 = i < words ? load<u64>(keyArea + (<usize>i << 3)) : i == words ? last : 0;
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
