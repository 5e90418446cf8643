// WASM core vs. reference model: the same random sequences of keys, costs and
// times through both, and every answer must be identical.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { EmbeddedStore } from '../build/lib/src/index.js';
import { concurrencyRunArb, opArb, policyArb, runBoth } from './helpers/agreement.js';

describe('wasm core agrees with the reference model', () => {
  it('on one policy', async () => {
    await fc.assert(
      fc.asyncProperty(policyArb, fc.array(opArb, { minLength: 1, maxLength: 120 }), fc.integer({ min: 0, max: 2e12 }), (p, ops, start) =>
        runBoth(new EmbeddedStore({ maxKeys: 64 }), [p], ops, start, true),
      ),
      { numRuns: 3000 },
    );
  });

  it('on stacked gates (all must admit, a denial charges none)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(policyArb, { minLength: 2, maxLength: 3 }), fc.array(opArb, { minLength: 1, maxLength: 120 }), fc.integer({ min: 0, max: 2e12 }), (ps, ops, start) =>
        runBoth(new EmbeddedStore({ maxKeys: 64 }), ps, ops, start, true),
      ),
      { numRuns: 1500 },
    );
  });

  it('on concurrency gates: permits taken, renewed and released within and across their lease epochs', async () => {
    for (const sync of [true, false]) {
      await fc.assert(
        fc.asyncProperty(concurrencyRunArb, fc.integer({ min: 0, max: 2e12 }), ({ policies, ops }, start) =>
          runBoth(new EmbeddedStore({ maxKeys: 64 }), policies, ops, start, sync),
        ),
        { numRuns: 1500 },
      );
    }
  });
});
