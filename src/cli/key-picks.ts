// The key sequences of the Redis benchmarks (bench/ and `cellgate bench`):
// every contender sees the same pseudo-random sequence over the same 10k keys.

/** The benchmark's keys, `user:0` to `user:9999`. */
export const KEYS = Array.from({ length: 10_000 }, (_, i) => `user:${i}`);

/**
 * A fast deterministic PRNG (mulberry32): numbers in [0, 1).
 *
 * @example
 * ```ts
 * const r = rng(1); r(); // the same first number on every run
 * ```
 */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Keys drawn uniformly.
 *
 * @example
 * ```ts
 * const pick = pickUniform(rng(1)); pick(); // e.g. 'user:4711'
 * ```
 */
export function pickUniform(r: () => number): () => string {
  return () => KEYS[Math.floor(r() * KEYS.length)]!;
}

/**
 * Hot keys: 1% of the keys take 90% of the picks.
 *
 * @example
 * ```ts
 * const pick = pickHot(rng(1)); pick(); // most often one of 'user:0' to 'user:99'
 * ```
 */
export function pickHot(r: () => number): () => string {
  const hot = KEYS.length / 100;
  return () => (r() < 0.9 ? KEYS[Math.floor(r() * hot)]! : KEYS[hot + Math.floor(r() * (KEYS.length - hot))]!);
}
