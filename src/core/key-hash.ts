import { MAX_KEY_LENGTH } from '../../build/abi.js';
import { ArgumentError, ConfigError } from '../errors.js';

// The core's key area is sized from the same definition (abi/abi.mjs).
export { MAX_KEY_LENGTH };

/**
 * The 128-bit key of the table's SipHash-1-3 (assembly/key-hash.ts) as four
 * little-endian 32-bit words (k0 low, k0 high, k1 low, k1 high). With a
 * secret seed per store, nobody outside the process can compute a key that
 * collides with someone else's (a lockout) or lands in its buckets.
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
 * Throws {@link ArgumentError} unless `key` is a non-empty string of at most
 * {@link MAX_KEY_LENGTH} code units.
 * @internal
 */
export function checkKey(key: unknown, parameter = 'key'): asserts key is string {
  // The throw is out of line, to keep this small enough to inline on every call's path.
  if (!isKey(key)) badKey(key, parameter);
}

/** Whether `key` is what {@link checkKey} accepts. @internal */
export function isKey(key: unknown): key is string {
  return typeof key === 'string' && key.length !== 0 && key.length <= MAX_KEY_LENGTH;
}

function badKey(key: unknown, parameter: string): never {
  throw new ArgumentError(parameter, key, `a non-empty string of at most ${MAX_KEY_LENGTH} characters`);
}
