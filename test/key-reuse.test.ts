// The core skips copying and hashing a key that is the same as the previous
// keyed call's (KEY_SAME): a hot key's fast path. That is only right while
// nothing else wrote the key area or hashed another key in between, so here
// two limiters of different policies share one store and their calls, peeks,
// reservations, refunds, resets, batches (which hash every key they hold) and
// hash queries interleave on a few keys, each limiter against its own model.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EmbeddedStore, Limiter, fixedWindow, gcra } from '../build/lib/src/index.js';
import { ReferenceLimiter } from '../support/reference-model.js';

type Step = { who: 0 | 1; op: 'limit' | 'peek' | 'reserve' | 'refund' | 'reset' | 'many' | 'hash'; key: number; keys: number[]; dt: number };

const stepArb: fc.Arbitrary<Step> = fc.record({
  who: fc.constantFrom(0 as const, 1 as const),
  op: fc.constantFrom('limit', 'limit', 'limit', 'peek', 'reserve', 'refund', 'reset', 'many', 'hash') as fc.Arbitrary<Step['op']>,
  key: fc.integer({ min: 0, max: 5 }),
  keys: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 5 }),
  dt: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 400 })),
});

// Pairs of keys of one length, short and long (long ones are written as UTF-8).
const KEYS = ['a', 'b', 'tenant-7:user-42', 'tenant-7:user-43', `long:${'x'.repeat(60)}`, `long:${'y'.repeat(60)}`];

describe('the hash of the key last written is reused only for that key', () => {
  it('two limiters on one store, batches and hash queries between their calls, agree with their models', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 80 }), async (steps) => {
        let now = 1_700_000_000_000;
        const store = new EmbeddedStore({ maxKeys: 64 });
        const policies = [gcra({ limit: 3, period: 1000, burst: 2 }), fixedWindow({ limit: 2, window: 500 })];
        const limiters = policies.map((policy) => new Limiter({ policy, store, clock: () => now }));
        const models = policies.map((p) => new ReferenceLimiter([p]));
        const hashes = new Map<string, bigint>();
        for (const [i, s] of steps.entries()) {
          now += s.dt;
          const key = KEYS[s.key]!;
          const limiter = limiters[s.who]!;
          const model = models[s.who]!;
          const where = `step ${i}: limiter ${s.who} ${s.op}(${s.op === 'many' ? s.keys.join(',') : s.key})`;
          if (s.op === 'limit' || s.op === 'peek') {
            const { source: _s, ...got } = s.op === 'peek' ? await limiter.peek(key) : limiter.limitSync(key);
            expect(got, where).toEqual(model.limit(key, 1, now, s.op === 'peek'));
          } else if (s.op === 'many') {
            const keys = s.keys.map((k) => KEYS[k]!);
            const got = limiter.limitManySync(keys).map(({ source: _s, ...d }) => d);
            expect(got, where).toEqual(keys.map((k) => model.limit(k, 1, now)));
          } else if (s.op === 'reserve') {
            const { at: _a, source: _s, ...got } = await limiter.reserve(key);
            expect(got, where).toEqual(model.reserve(key, 1, now));
          } else if (s.op === 'refund') {
            await limiter.refund(key, 1);
            model.refund(key, 1, now);
          } else if (s.op === 'reset') {
            await limiter.reset(key);
            model.reset(key);
          } else {
            const h = store.hashOf(key);
            const seen = hashes.get(key);
            if (seen !== undefined) expect(h, where).toBe(seen);
            for (const [other, oh] of hashes) if (other !== key) expect(oh, where).not.toBe(h);
            hashes.set(key, h);
          }
        }
      }),
      { numRuns: 1500 },
    );
  });
});

describe('a batch writes its keys into the batch key area and hashes them in one call', () => {
  const seed = new Uint8Array(16).fill(7);
  const key = fc.oneof(
    fc.string({ minLength: 1, maxLength: 40 }),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 200 }).filter((s) => s.length <= 512),
    // Lone surrogates: not well-formed, written as code units however long.
    fc.array(fc.integer({ min: 0xd800, max: 0xdfff }), { minLength: 1, maxLength: 300 }).map((u) => String.fromCharCode(...u)),
    fc.integer({ min: 1, max: 512 }).map((n) => 'k'.repeat(n)),
  );

  it('deciding each key as limitSync does on a store with the same seed, whatever the lengths and encodings', () => {
    fc.assert(
      fc.property(fc.array(key, { minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 4 }), (pool, rounds) => {
        const keys = Array.from({ length: pool.length * rounds }, (_, i) => pool[(i * 7) % pool.length]!);
        const now = 1_700_000_000_000;
        const policy = gcra({ limit: 2, period: 1000, burst: 2 });
        const batched = new Limiter({ policy, store: new EmbeddedStore({ hashSeed: seed }), clock: () => now });
        const single = new Limiter({ policy, store: new EmbeddedStore({ hashSeed: seed }), clock: () => now });
        expect(batched.limitManySync(keys)).toEqual(keys.map((k) => single.limitSync(k)));
      }),
      { numRuns: 300 },
    );
  });

  it('splits a batch whose keys do not fit in the area, and still decides them in order', () => {
    // 1024 keys of 512 code units (1 KiB each in UTF-16) need 16 fillings of the 64 KiB area.
    const keys = Array.from({ length: 1024 }, (_, i) => `${i}:`.padEnd(512, String.fromCharCode(0xd800 + (i % 64))));
    const twice = [...keys, ...keys, ...keys];
    const now = 1_700_000_000_000;
    const policy = gcra({ limit: 2, period: 1000, burst: 2 });
    const batched = new Limiter({ policy, store: new EmbeddedStore({ hashSeed: seed }), clock: () => now });
    const single = new Limiter({ policy, store: new EmbeddedStore({ hashSeed: seed }), clock: () => now });
    const got = batched.limitManySync(twice);
    expect(got.map((d) => d.allowed)).toEqual([...keys.map(() => true), ...keys.map(() => true), ...keys.map(() => false)]);
    expect(got).toEqual(twice.map((k) => single.limitSync(k)));
  });
});
