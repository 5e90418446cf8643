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
