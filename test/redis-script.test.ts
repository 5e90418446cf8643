// The Redis decide script itself against the reference model: every
// operation on the wire (charge and lease too, which no Limiter call makes),
// random sequences in mixed batches on one to three gates, equal answers and
// equal states after every call; then hand-computed cases of the outage
// charge, the lease and a refund of a booking, which both must give (an
// agreement alone would not catch a misreading shared by both).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fixedWindow, gcra, tokenBucket, type Policy } from '../build/lib/src/index.js';
import { SCRIPT_OPS, policyArb, runScript, scriptOpArb, type ScriptOp, type ScriptOpName } from './helpers/agreement.js';
import { ReferenceLimiter } from '../support/reference-model.js';
import { useRedis } from './helpers/use-redis.js';

const db = useRedis();

describe('the decide script agrees with the reference model, answers and states', () => {
  let run = 0;
  it.each(Object.keys(SCRIPT_OPS) as ScriptOpName[])('%s, among all the others', async (op) => {
    await fc.assert(
      fc.asyncProperty(fc.array(policyArb, { minLength: 1, maxLength: 3 }), fc.array(scriptOpArb(op), { minLength: 1, maxLength: 50 }), fc.integer({ min: 0, max: 2e12 }), (ps, ops, start) =>
        runScript(db.client, `script${run++}:`, ps, ops, start).then(() => undefined),
      ),
      { numRuns: 300 },
    );
  }, 60_000);
});

/** Ops at absolute times (ms), each its own call. */
function at(steps: [t: number, op: ScriptOpName, cost: number, arg?: number][]): ScriptOp[] {
  let last = 0;
  return steps.map(([t, op, cost, arg = 0]) => {
    const dt = t - last;
    last = t;
    // charge's arg is how long before now the units were spent: given here as that moment.
    return { op, key: 0, cost, dt, arg: op === 'charge' ? t - arg : arg, together: false };
  });
}

describe('hand-computed cases, through the script and the model', () => {
  let run = 0;
  const both = async (policy: Policy, steps: Parameters<typeof at>[0]) => runScript(db.client, `hand${run++}:`, [policy], at(steps), 0);

  it('GCRA: two stores charging one outage as of its start add up in the past, not on top of the present', async () => {
    // 10 per second, burst 1: a unit is 100 ms.
    const { answers, states } = await both(gcra({ limit: 10, period: '1s' }), [
      // Store A: 5 units since 5 s, charged at 10 s as Redis comes back (r):
      // their own TAT ends at 5.5 s, all of it before r, so no debt (TAT now).
      [10_000, 'charge', 5, 5000],
      [10_000, 'limit', 1], // a present admission: TAT 10.1 s, the outage's own TAT kept
      [10_001, 'charge', 5, 5000], // store B, the same outage: from 5.5 s to 6 s, before r: under the TAT
      [10_100, 'limit', 1],
    ]);
    expect(states[0]).toEqual([{ a: 10_000, b: 5500, c: 70_000, exp: 70_000 }]);
    expect(states[1]).toEqual([{ a: 10_100, b: 5500, c: 70_000, exp: 70_000 }]);
    // The chain keeps r (c = r + a minute), not the time of B's charge.
    expect(states[2]).toEqual([{ a: 10_100, b: 6000, c: 70_000, exp: 70_000 }]);
    expect(answers[3]).toMatchObject({ allowed: true });
  });

  it('an interval bucket charged as of the past refills from then; its state is kept a minute', async () => {
    const { answers, states } = await both(tokenBucket({ capacity: 4, refill: 2, period: 1000, mode: 'interval' }), [
      [10_000, 'charge', 6, 8000],
      [10_000, 'limit', 1],
    ]);
    // -2 tokens at 8 s; two refills by 10 s make 2, one is taken, and 3 more are
    // back by 12 s.
    expect(states[0]).toEqual([{ a: 8000, b: -2, c: 0, exp: 70_000 }]);
    expect(answers[1]).toEqual({ allowed: true, limit: 4, capacity: 4, gate: 0, remaining: 1, retryAfterMs: 0, resetAfterMs: 2000 });
  });

  it('a fixed-window lease is valid to the end of its window, and takes what is left', async () => {
    const { answers } = await both(fixedWindow({ limit: 10, window: 1000 }), [
      [5250, 'lease', 4],
      [5300, 'lease', 10],
      [5400, 'lease', 1],
    ]);
    expect(answers).toEqual([
      { granted: 4, limit: 10, lastMs: 0, validMs: 750 },
      { granted: 6, limit: 10, lastMs: 0, validMs: 700 },
      { granted: 0, limit: 10, retryAfterMs: 600, resetAfterMs: 600 },
    ]);
  });

  it('a GCRA lease takes the burst now and the slots up to its horizon', async () => {
    // 10 per second, burst 2: the burst at 1 s, then 1.1 s and 1.2 s within 250 ms.
    const { answers, states } = await both(gcra({ limit: 10, period: '1s', burst: 2 }), [[1000, 'lease', 5, 250]]);
    expect(answers[0]).toEqual({ granted: 4, limit: 2, lastMs: 200, validMs: Infinity });
    expect(states[0]).toEqual([{ a: 1400, b: 0, c: 0, exp: 1400 }]);
  });

  it('a refund to an interval booked ahead fills it to capacity and it stays booked; given back whole, the rest goes to the interval before it', async () => {
    // Capacity 2 a second: used up at 0, the next interval booked at 0.1 s, then 1 refunded: it stays booked.
    const kept = await both(tokenBucket({ capacity: 2, period: 1000, mode: 'interval' }), [
      [0, 'limit', 2],
      [100, 'reserve', 1, Infinity],
      [200, 'refund', 1],
      [300, 'limit', 1],
    ]);
    expect(kept.answers[1]).toEqual({ allowed: true, waitMs: 900, limit: 2, capacity: 2, gate: 0, remaining: 1 });
    expect(kept.states[2]).toEqual([{ a: 1000, b: 2, c: 0, exp: 1000 }]);
    expect(kept.answers[3]).toMatchObject({ allowed: false, retryAfterMs: 700 });
    // 2 more come back: the booked interval is whole again, and the current one gets them.
    const back = await both(tokenBucket({ capacity: 2, period: 1000, mode: 'interval' }), [
      [0, 'limit', 2],
      [100, 'reserve', 1, Infinity],
      [200, 'refund', 3],
      [300, 'limit', 1],
    ]);
    expect(back.states[2]).toEqual([undefined]); // full: as a key never seen
    expect(back.answers[3]).toMatchObject({ allowed: true, remaining: 1 });
  });

  it('the model alone gives the same (it is no copy of the script)', () => {
    const model = new ReferenceLimiter([gcra({ limit: 10, period: '1s', burst: 2 })]);
    expect(model.lease('k', 5, 250, 1000)).toEqual({ granted: 4, limit: 2, lastMs: 200, validMs: Infinity });
    expect(model.lease('k', 1, 0, 1000)).toMatchObject({ granted: 0, retryAfterMs: 300 });
  });
});
