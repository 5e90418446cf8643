// A store built where the runtime refuses random values (Cloudflare Workers
// at global scope; test/workerd.test.ts runs that for real): it draws its
// hash seed at the first keyed call instead, and never hashes a key unseeded.
// Here the refusal is made by replacing crypto.getRandomValues for the
// duration of a construction.
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedStore, Limiter, gcra } from '../build/lib/src/index.js';

const real = crypto.getRandomValues.bind(crypto);
let refuse = false;
crypto.getRandomValues = (<T extends ArrayBufferView | null>(array: T): T => {
  if (refuse) throw new Error('Disallowed operation called within global scope.');
  return real(array as never) as T;
}) as typeof crypto.getRandomValues;
afterEach(() => {
  refuse = false;
});

/** A store and limiter built while random values are refused. */
function builtAtGlobalScope(): { store: EmbeddedStore; limiter: Limiter } {
  refuse = true;
  try {
    const store = new EmbeddedStore();
    return { store, limiter: new Limiter({ policy: gcra({ limit: 1, period: '1h', burst: 3 }), store }) };
  } finally {
    refuse = false;
  }
}

describe('a store built where random values are refused', () => {
  it('constructs, then decides exactly once it can draw its seed', () => {
    const { limiter } = builtAtGlobalScope();
    expect([1, 2, 3, 4].map(() => limiter.limitSync('k').allowed)).toEqual([true, true, true, false]);
    expect(limiter.limitManySync(['a', 'b', 'k']).map((d) => d.allowed)).toEqual([true, true, false]);
  });

  it('refuses a decision while it still cannot draw, changing nothing, and draws a seed of its own', () => {
    const { store, limiter } = builtAtGlobalScope();
    refuse = true;
    expect(() => limiter.limitSync('k')).toThrow(/Disallowed operation called within global scope/);
    expect(() => limiter.limitManySync(['k', 'j'])).toThrow(/Disallowed operation/);
    refuse = false;
    expect(store.stats().keys).toBe(0);
    // The refused call wrote 'k' and never hashed it: the next call on 'k' must hash it, not reuse a hash never made.
    const seen = [limiter.limitSync('k'), limiter.limitSync('k'), limiter.limitSync('j'), limiter.limitSync('k'), limiter.limitSync('k')].map((d) => d.allowed);
    expect(seen).toEqual([true, true, true, true, false]);
    // Two such stores do not share a seed: the same keys hash apart (not one fixed fallback seed).
    const other = builtAtGlobalScope().store;
    other.hashOf('k'); // draws its seed
    const keys = Array.from({ length: 8 }, (_, i) => `key:${i}`);
    expect(keys.map((k) => other.hashOf(k))).not.toEqual(keys.map((k) => store.hashOf(k)));
  });

  it('a seed given is still checked at construction', () => {
    refuse = true;
    expect(() => new EmbeddedStore({ hashSeed: new Uint8Array(3) })).toThrow(/hashSeed must be a Uint8Array of 16 bytes/);
  });
});
