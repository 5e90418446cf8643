// Drives a limiter and the reference model with the same sequences of keys,
// costs and times, and requires identical answers: the oracle check shared by
// the embedded and the Redis property tests.
import fc from 'fast-check';
import { expect } from 'vitest';
import {
  Limiter,
  fixedWindow,
  gcra,
  linearWindow,
  slidingWindow,
  tokenBucket,
  type Policy,
  type Store,
} from '../../src/index.js';
import { ReferenceLimiter } from '../../support/reference-model.js';

export const policyArb: fc.Arbitrary<Policy> = fc.oneof(
  fc.record({ limit: fc.integer({ min: 1, max: 20 }), period: fc.integer({ min: 1, max: 5000 }), burst: fc.integer({ min: 1, max: 8 }) }).map((o) => gcra(o)),
  fc
    .record({
      capacity: fc.integer({ min: 1, max: 20 }),
      refill: fc.integer({ min: 1, max: 20 }),
      period: fc.integer({ min: 1, max: 5000 }),
      mode: fc.constantFrom('continuous' as const, 'interval' as const),
    })
    .map((o) => tokenBucket(o)),
  fc.record({ limit: fc.integer({ min: 1, max: 20 }), window: fc.integer({ min: 1, max: 5000 }) }).map((o) => fixedWindow(o)),
  fc.record({ limit: fc.integer({ min: 1, max: 20 }), within: fc.integer({ min: 1, max: 5000 }) }).map((o) => linearWindow(o)),
  fc.record({ limit: fc.integer({ min: 1, max: 20 }), window: fc.integer({ min: 1, max: 5000 }) }).map((o) => slidingWindow(o)),
);

export type Op = { op: 'limit' | 'peek' | 'reserve' | 'refund' | 'reset'; key: number; cost: number; dt: number };

export const opArb: fc.Arbitrary<Op> = fc.record({
  op: fc.constantFrom('limit', 'limit', 'limit', 'limit', 'peek', 'reserve', 'refund', 'refund', 'reset') as fc.Arbitrary<Op['op']>,
  key: fc.integer({ min: 0, max: 2 }),
  cost: fc.integer({ min: 1, max: 8 }),
  // Whole milliseconds, fractions, and long idle gaps.
  dt: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.double({ min: 0, max: 50, noNaN: true }), fc.integer({ min: 0, max: 20_000 })),
});

/**
 * Runs `ops` through a limiter on `store` (with an injected clock starting at
 * `start`) and through the model, expecting the same answers. `sync` uses
 * limitSync where the store allows it. `source` is not compared: a denial may
 * come from a local mirror.
 */
export async function runBoth(store: Store, policies: Policy[], ops: Op[], start: number, sync: boolean): Promise<void> {
  let now = start;
  const limiter = new Limiter({ policy: policies, store, clock: () => now });
  const model = new ReferenceLimiter(policies);
  const capacity = Math.min(...policies.map((p) => p.core.capacity));
  for (const [i, o] of ops.entries()) {
    now += o.dt;
    const key = `key-${o.key}`;
    const cost = Math.min(o.cost, capacity);
    const where = `op ${i} ${o.op}(${key}, ${cost}) at ${now}`;
    if (o.op === 'limit' || o.op === 'peek') {
      const { source: _source, ...got } =
        o.op === 'peek' ? await limiter.peek(key, { cost }) : sync ? limiter.limitSync(key, { cost }) : await limiter.limit(key, { cost });
      expect(got, where).toEqual(model.limit(key, cost, now, o.op === 'peek'));
    } else if (o.op === 'reserve') {
      const maxWaitMs = o.key === 0 ? 100 : Infinity;
      const { at, source: _source, ...got } = await limiter.reserve(key, { cost, maxWaitMs });
      expect(got, where).toEqual(model.reserve(key, cost, now, maxWaitMs));
      expect(at, where).toBe(now + got.waitMs);
    } else if (o.op === 'refund') {
      await limiter.refund(key, cost);
      model.refund(key, cost, now);
    } else {
      await limiter.reset(key);
      model.reset(key);
    }
  }
}

