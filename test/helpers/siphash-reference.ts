// A plain SipHash over bytes with BigInt words, written from the paper
// (Aumasson & Bernstein, 2012) for the tests: the fast 32-bit-halves version
// in src/core/key-hash.ts must agree with it.
const MASK = (1n << 64n) - 1n;
const rotl = (x: bigint, b: bigint): bigint => ((x << b) | (x >> (64n - b))) & MASK;

export function sipHash(key: Uint8Array, message: Uint8Array, c: number, d: number): bigint {
  const k = new DataView(key.buffer, key.byteOffset, 16);
  const k0 = k.getBigUint64(0, true);
  const k1 = k.getBigUint64(8, true);
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;
  const round = (): void => {
    v0 = (v0 + v1) & MASK; v1 = rotl(v1, 13n); v1 ^= v0; v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & MASK; v3 = rotl(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & MASK; v3 = rotl(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & MASK; v1 = rotl(v1, 17n); v1 ^= v2; v2 = rotl(v2, 32n);
  };
  const words = Math.floor(message.length / 8);
  const m = new DataView(message.buffer, message.byteOffset, message.length);
  for (let w = 0; w <= words; w++) {
    let word: bigint;
    if (w < words) word = m.getBigUint64(w * 8, true);
    else {
      word = BigInt(message.length & 0xff) << 56n;
      for (let j = 0; j < message.length - words * 8; j++) word |= BigInt(message[words * 8 + j]!) << BigInt(8 * j);
    }
    v3 ^= word;
    for (let r = 0; r < c; r++) round();
    v0 ^= word;
  }
  v2 ^= 0xffn;
  for (let r = 0; r < d; r++) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

/** A string's UTF-16 code units as little-endian bytes: what hashKey hashes. */
export function utf16le(s: string): Uint8Array {
  const out = new Uint8Array(s.length * 2);
  for (let i = 0; i < s.length; i++) {
    out[2 * i] = s.charCodeAt(i) & 0xff;
    out[2 * i + 1] = s.charCodeAt(i) >>> 8;
  }
  return out;
}

/**
 * The table's key hash as the core defines it (assembly/key-hash.ts): keys
 * of more than 32 code units that are well-formed are hashed as UTF-8 under
 * k1 ^ "utf-8", all others as UTF-16 code units under the seed itself.
 */
export function tableHash(seed: Uint8Array, key: string): bigint {
  if (key.length > 32 && (key as unknown as { isWellFormed(): boolean }).isWellFormed()) {
    const tagged = Uint8Array.from(seed);
    const view = new DataView(tagged.buffer);
    view.setBigUint64(8, view.getBigUint64(8, true) ^ 0x7574662d38000000n, true);
    return sipHash(tagged, new TextEncoder().encode(key), 1, 3);
  }
  return sipHash(seed, utf16le(key), 1, 3);
}
