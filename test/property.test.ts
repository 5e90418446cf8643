// WASM core vs. reference model: the same random sequences of keys, costs and
// times through both, and every answer must be identical.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EmbeddedStore,
  Limiter,
  fixedWindow,
  gcra,
  linearWindow,
  slidingWindow,
  tokenBucket,
  type Policy,
} from '../src/index.js';
import { ReferenceLimiter } from './reference-model.js';

const policyArb: fc.Arbitrary<Policy> = fc.oneof(
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

type Op = { op: 'limit' | 'peek' | 'reserve' | 'refund' | 'reset'; key: number; cost: number; dt: number };

const opArb: fc.Arbitrary<Op> = fc.record({
  op: fc.constantFrom('limit', 'limit', 'limit', 'limit', 'peek', 'reserve', 'refund', 'refund', 'reset') as fc.Arbitrary<Op['op']>,
  key: fc.integer({ min: 0, max: 2 }),
  cost: fc.integer({ min: 1, max: 8 }),
  // Whole milliseconds, fractions, and long idle gaps.
  dt: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.double({ min: 0, max: 50, noNaN: true }), fc.integer({ min: 0, max: 20_000 })),
});

async function runBoth(policies: Policy[], ops: Op[], start: number): Promise<void> {
  let now = start;
  const limiter = new Limiter({ policy: policies, store: new EmbeddedStore({ maxKeys: 64 }), clock: () => now });
  const model = new ReferenceLimiter(policies);
  const capacity = Math.min(...policies.map((p) => p.core.capacity));
  for (const [i, o] of ops.entries()) {
    now += o.dt;
    const key = `key-${o.key}`;
    const cost = Math.min(o.cost, capacity);
    const where = `op ${i} ${o.op}(${key}, ${cost}) at ${now}`;
    if (o.op === 'limit' || o.op === 'peek') {
      const { source, ...got } = o.op === 'limit' ? limiter.limitSync(key, { cost }) : await limiter.peek(key, { cost });
      expect(source, where).toBe('local');
      expect(got, where).toEqual(model.limit(key, cost, now, o.op === 'peek'));
    } else if (o.op === 'reserve') {
      const maxWaitMs = o.key === 0 ? 100 : Infinity;
      const { at, source, ...got } = await limiter.reserve(key, { cost, maxWaitMs });
      expect(source, where).toBe('local');
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

describe('wasm core agrees with the reference model', () => {
  it('on one policy', async () => {
    await fc.assert(
      fc.asyncProperty(policyArb, fc.array(opArb, { minLength: 1, maxLength: 120 }), fc.integer({ min: 0, max: 2e12 }), (p, ops, start) =>
        runBoth([p], ops, start),
      ),
      { numRuns: 3000 },
    );
  });

  it('on stacked gates (all must admit, a denial charges none)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(policyArb, { minLength: 2, maxLength: 3 }), fc.array(opArb, { minLength: 1, maxLength: 120 }), fc.integer({ min: 0, max: 2e12 }), (ps, ops, start) =>
        runBoth(ps, ops, start),
      ),
      { numRuns: 1500 },
    );
  });
});
