import { ArgumentError } from './errors.js';

/** Longest key accepted, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 512;

/** Low 32 bits of the last {@link hashKey} result (as a signed int). */
export let keyLo = 0;
/** High 32 bits of the last {@link hashKey} result (as a signed int). */
export let keyHi = 0;

/**
 * Hashes a key to 64 bits, left in {@link keyLo} and {@link keyHi} (no
 * allocation). Keys cross into the core only as these two numbers. Two
 * independent 32-bit lanes over two UTF-16 units per step, cross-mixed at the
 * end (the cyrb53 construction, widened to 64 bits): a 32-bit hash alone would
 * collide at ~69% odds among 100k keys. The halves stay signed (`| 0`): Bun
 * pays ~50 ns to pass a number >= 2^31 to a wasm i32.
 *
 * @example
 * ```ts
 * hashKey('user:42'); const id = [keyLo, keyHi];
 * ```
 */
export function hashKey(key: string): void {
  const n = key.length;
  let h1 = 0xdeadbeef ^ n;
  let h2 = 0x41c6ce57 ^ n;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const c = key.charCodeAt(i) | (key.charCodeAt(i + 1) << 16);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  if (i < n) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  keyLo = h1 | 0;
  keyHi = h2 | 0;
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
