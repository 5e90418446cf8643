import { ArgumentError, ConfigError } from './errors.js';

/** Longest key accepted, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 512;

/** Low 32 bits of the last {@link hashKey} result (as a signed int). */
export let keyLo = 0;
/** High 32 bits of the last {@link hashKey} result (as a signed int). */
export let keyHi = 0;

/**
 * The 128-bit key of {@link hashKey} as four little-endian 32-bit words
 * (k0 low, k0 high, k1 low, k1 high).
 * @internal
 */
export type HashSeed = Int32Array;

/**
 * A seed drawn from the platform's CSPRNG (`crypto.getRandomValues`, in every
 * runtime cellgate supports), or the one given as 16 bytes (tests only: a
 * known seed makes collisions computable again).
 * @internal
 *
 * @example
 * ```ts
 * const seed = hashSeed(); // random
 * const fixed = hashSeed(new Uint8Array(16)); // all zeros, for a test
 * ```
 */
export function hashSeed(bytes?: unknown, parameter = 'hashSeed'): HashSeed {
  const seed = new Int32Array(4);
  if (bytes === undefined) {
    crypto.getRandomValues(seed);
    return seed;
  }
  if (!(bytes instanceof Uint8Array) || bytes.length !== 16) throw new ConfigError(parameter, bytes, 'a Uint8Array of 16 bytes');
  const view = new DataView(bytes.buffer, bytes.byteOffset, 16);
  for (let i = 0; i < 4; i++) seed[i] = view.getInt32(i * 4, true);
  return seed;
}

/**
 * Hashes a key to 64 bits with SipHash-1-3 under `seed`, left in
 * {@link keyLo} and {@link keyHi} (no allocation). Keys cross into the core
 * only as these two numbers, so whoever picks keys must not be able to
 * compute them: with a secret 128-bit seed per store, a collision with
 * someone else's key (which would share its state: a lockout) or a flood aimed
 * at its buckets needs the seed. SipHash-1-3 is the keyed function Rust's
 * `HashMap` and CPython use for the same purpose.
 *
 * The message is the key's UTF-16 code units, little-endian (4 per 64-bit
 * word), so every string, lone surrogates included, has one encoding and no
 * two strings share it. 64-bit words are kept as pairs of signed 32-bit
 * halves: JavaScript has no fast 64-bit integers, and Bun pays ~50 ns to pass
 * a number >= 2^31 to a wasm i32.
 *
 * @example
 * ```ts
 * hashKey('user:42', seed); const id = [keyLo, keyHi];
 * ```
 */
export function hashKey(key: string, seed: HashSeed): void {
  const n = key.length;
  const k0l = seed[0]!, k0h = seed[1]!, k1l = seed[2]!, k1h = seed[3]!;
  // v0..v3 = k ^ "somepseudorandomlygeneratedbytes"
  let v0l = k0l ^ 0x70736575, v0h = k0h ^ 0x736f6d65;
  let v1l = k1l ^ 0x6e646f6d, v1h = k1h ^ 0x646f7261;
  let v2l = k0l ^ 0x6e657261, v2h = k0h ^ 0x6c796765;
  let v3l = k1l ^ 0x79746573, v3h = k1h ^ 0x74656462;
  const full = n - (n & 3);
  let i = 0;
  let ml = 0, mh = 0, t = 0, u = 0;
  for (;;) {
    const last = i >= full;
    if (!last) {
      ml = key.charCodeAt(i) | (key.charCodeAt(i + 1) << 16);
      mh = key.charCodeAt(i + 2) | (key.charCodeAt(i + 3) << 16);
      i += 4;
    } else {
      // The tail (0 to 3 units) and the message's length in bytes, mod 256, in the top byte.
      const r = n - full;
      ml = r === 0 ? 0 : r === 1 ? key.charCodeAt(full) : key.charCodeAt(full) | (key.charCodeAt(full + 1) << 16);
      mh = (r === 3 ? key.charCodeAt(full + 2) : 0) | ((n * 2) << 24);
    }
    v3l ^= ml; v3h ^= mh;
    // One SipRound (c = 1). The round is written out here and in the
    // finalization below: as a function it would need its eight halves in
    // memory, not in registers.
    t = (v0l + v1l) | 0; v0h = (v0h + v1h + ((t >>> 0) < (v0l >>> 0) ? 1 : 0)) | 0; v0l = t;
    t = (v1h << 13) | (v1l >>> 19); v1l = (v1l << 13) | (v1h >>> 19); v1h = t;
    v1l ^= v0l; v1h ^= v0h;
    t = v0l; v0l = v0h; v0h = t;
    t = (v2l + v3l) | 0; v2h = (v2h + v3h + ((t >>> 0) < (v2l >>> 0) ? 1 : 0)) | 0; v2l = t;
    t = (v3h << 16) | (v3l >>> 16); v3l = (v3l << 16) | (v3h >>> 16); v3h = t;
    v3l ^= v2l; v3h ^= v2h;
    t = (v0l + v3l) | 0; v0h = (v0h + v3h + ((t >>> 0) < (v0l >>> 0) ? 1 : 0)) | 0; v0l = t;
    t = (v3h << 21) | (v3l >>> 11); v3l = (v3l << 21) | (v3h >>> 11); v3h = t;
    v3l ^= v0l; v3h ^= v0h;
    t = (v2l + v1l) | 0; v2h = (v2h + v1h + ((t >>> 0) < (v2l >>> 0) ? 1 : 0)) | 0; v2l = t;
    t = (v1h << 17) | (v1l >>> 15); v1l = (v1l << 17) | (v1h >>> 15); v1h = t;
    v1l ^= v2l; v1h ^= v2h;
    t = v2l; v2l = v2h; v2h = t;
    v0l ^= ml; v0h ^= mh;
    if (last) break;
  }
  v2l ^= 0xff;
  // Three SipRounds (d = 3).
  for (let r = 0; r < 3; r++) {
    t = (v0l + v1l) | 0; v0h = (v0h + v1h + ((t >>> 0) < (v0l >>> 0) ? 1 : 0)) | 0; v0l = t;
    u = (v1h << 13) | (v1l >>> 19); v1l = (v1l << 13) | (v1h >>> 19); v1h = u;
    v1l ^= v0l; v1h ^= v0h;
    u = v0l; v0l = v0h; v0h = u;
    t = (v2l + v3l) | 0; v2h = (v2h + v3h + ((t >>> 0) < (v2l >>> 0) ? 1 : 0)) | 0; v2l = t;
    u = (v3h << 16) | (v3l >>> 16); v3l = (v3l << 16) | (v3h >>> 16); v3h = u;
    v3l ^= v2l; v3h ^= v2h;
    t = (v0l + v3l) | 0; v0h = (v0h + v3h + ((t >>> 0) < (v0l >>> 0) ? 1 : 0)) | 0; v0l = t;
    u = (v3h << 21) | (v3l >>> 11); v3l = (v3l << 21) | (v3h >>> 11); v3h = u;
    v3l ^= v0l; v3h ^= v0h;
    t = (v2l + v1l) | 0; v2h = (v2h + v1h + ((t >>> 0) < (v2l >>> 0) ? 1 : 0)) | 0; v2l = t;
    u = (v1h << 17) | (v1l >>> 15); v1l = (v1l << 17) | (v1h >>> 15); v1h = u;
    v1l ^= v2l; v1h ^= v2h;
    u = v2l; v2l = v2h; v2h = u;
  }
  keyLo = v0l ^ v1l ^ v2l ^ v3l;
  keyHi = v0h ^ v1h ^ v2h ^ v3h;
}

/**
 * Throws {@link ArgumentError} unless `key` is a non-empty string of at most
 * {@link MAX_KEY_LENGTH} code units.
 * @internal
 */
export function checkKey(key: unknown, parameter = 'key'): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new ArgumentError(parameter, key, `a non-empty string of at most ${MAX_KEY_LENGTH} characters`);
  }
}
