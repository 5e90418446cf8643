// The min-heap behind custom limiters' expiries: pops come out in time order.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ExpiryQueue } from '../build/lib/src/core/expiry-queue.js';

describe('ExpiryQueue', () => {
  it('pops in time order, through pushes and pops interleaved and a rebuild', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.double({ min: -1e6, max: 1e6, noNaN: true })), { maxLength: 300 }), (ops) => {
        const q = new ExpiryQueue();
        const model: { time: number; key: string }[] = [];
        for (const [i, [isPush, time]] of ops.entries()) {
          if (isPush || model.length === 0) {
            q.push(time, `k${i}`);
            model.push({ time, key: `k${i}` });
          } else {
            model.sort((a, b) => a.time - b.time);
            const earliest = model[0]!.time;
            expect(q.nextAt()).toBe(earliest);
            const key = q.pop()!;
            const at = model.findIndex((m) => m.key === key);
            expect(model[at]!.time).toBe(earliest);
            model.splice(at, 1);
          }
          expect(q.size).toBe(model.length);
        }
        q.rebuild(model.map((m) => [m.time, m.key] as const));
        const times: number[] = [];
        while (q.size > 0) {
          times.push(q.nextAt());
          q.pop();
        }
        expect(times).toEqual(model.map((m) => m.time).sort((a, b) => a - b));
        expect(q.pop()).toBeUndefined();
        expect(q.nextAt()).toBe(Infinity);
      }),
      { numRuns: 500 },
    );
  });
});
