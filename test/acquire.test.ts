// acquire waits (never drops), rejects only on abort or maxWaitMs.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AcquireTimeoutError, Limiter, fixedWindow, gcra, linearWindow, tokenBucket } from '../build/lib/src/index.js';

describe('acquire', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('admits concurrent waiters at exactly spaced moments, in arrival order', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }), clock: () => Date.now() });
    const fired: [number, number][] = [];
    const all = [0, 1, 2, 3].map((i) => limiter.acquire("k").then((d) => (fired.push([i, Date.now()]), d)));
    await vi.advanceTimersByTimeAsync(1000);
    const decisions = await Promise.all(all);
    expect(fired).toEqual([[0, 0], [1, 100], [2, 200], [3, 300]]);
    expect(decisions.every((d) => d.allowed && d.source === 'local')).toBe(true);
  });

  it('postpones a third reconciliation to the end of the linear window', async () => {
    const limiter = new Limiter({ policy: linearWindow({ limit: 2, within: '3s' }), clock: () => Date.now() });
    await limiter.acquire('resource-a');
    await vi.advanceTimersByTimeAsync(1000);
    await limiter.acquire('resource-a');
    await vi.advanceTimersByTimeAsync(500);
    let ranAt = -1;
    const third = limiter.acquire('resource-a').then(() => (ranAt = Date.now()));
    // Another resource is not held back.
    await limiter.acquire('resource-b');
    expect(Date.now()).toBe(1500);
    await vi.advanceTimersByTimeAsync(2000);
    await third;
    expect(ranAt).toBe(3000);
  });

  it('rejects with AcquireTimeoutError when the wait exceeds maxWaitMs, charging nothing', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 1, period: '1s' }), clock: () => Date.now() });
    await limiter.acquire('k');
    const error = await limiter.acquire('k', { maxWaitMs: 500 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect((error as AcquireTimeoutError).waitMs).toBe(1000);
    // Nothing was booked: the next slot is still at 1000.
    expect(await limiter.reserve('k')).toMatchObject({ allowed: true, waitMs: 1000 });
  });

  it('rejects with the signal reason on abort and gives the booked slot back', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 1, period: '1s' }), clock: () => Date.now() });
    await limiter.acquire('k');
    const controller = new AbortController();
    const waiting = limiter.acquire('k', { signal: controller.signal }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(100);
    controller.abort(new Error('shutting down'));
    expect(await waiting).toMatchObject({ message: 'shutting down' });
    expect(await limiter.reserve('k')).toMatchObject({ allowed: true, waitMs: 900 });
    const aborted = AbortSignal.abort();
    await expect(limiter.acquire('k', { signal: aborted })).rejects.toBe(aborted.reason);
  });

  // Found by `cellgate simulate --scenario quota-sync`: waiters booked into
  // intervals and windows ahead, then gave up; their refunds could not move a
  // booked interval back, so each burst pushed the key's next admission a
  // period further out, and a client that books and aborts locked the key.
  for (const [name, policy, perPeriod] of [
    ['an interval token bucket', tokenBucket({ capacity: 100, period: '1s', mode: 'interval' }), 100],
    ['an interval token bucket refilling less than its capacity', tokenBucket({ capacity: 100, refill: 40, period: '1s', mode: 'interval' }), 40],
    ['a fixed window', fixedWindow({ limit: 100, window: '1s' }), 100],
    ['a linear window', linearWindow({ limit: 100, within: '1s' }), 100],
  ] as const) {
    it(`${name}: callers that book periods ahead and abort give them back whole, however far they booked`, async () => {
      const limiter = new Limiter({ policy, clock: () => Date.now() });
      // Bursts of 350 callers every 1 s, each giving up after 250 ms: 3 periods booked ahead each time.
      const admitted: number[] = [];
      for (let burst = 0; burst < 6; burst++) {
        let ok = 0;
        const all = Array.from({ length: 350 }, () => {
          // (setTimeout, not AbortSignal.timeout: the fake timers run it.)
          const controller = new AbortController();
          setTimeout(() => controller.abort(), 250);
          return limiter.acquire('k', { signal: controller.signal }).then(() => ok++, () => {});
        });
        await vi.advanceTimersByTimeAsync(1000);
        await Promise.all(all);
        admitted.push(ok);
      }
      // Every period admits what it holds: the first the capacity, then what a period brings back.
      expect(admitted[0]).toBe(100);
      for (const n of admitted.slice(1)) expect(n).toBeGreaterThanOrEqual(perPeriod);
      // Nothing stays booked: a caller after the last burst waits at most one period.
      expect((await limiter.reserve('k')).waitMs).toBeLessThanOrEqual(1000);
    });
  }
});

describe('acquire past the timer limit', () => {
  it('waits a booking more than 24.8 days out in full (setTimeout alone would fire after 1 ms)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const limiter = new Limiter({ policy: fixedWindow({ limit: 1, window: '30d' }), clock: () => 0 });
      expect((await limiter.acquire('nightly')).allowed).toBe(true);
      let second = false;
      void limiter.acquire('nightly').then(() => (second = true));
      await vi.advanceTimersByTimeAsync(2 ** 31); // 24.9 days
      expect(second).toBe(false);
      await vi.advanceTimersByTimeAsync(30 * 86_400_000 - 2 ** 31 + 10);
      expect(second).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});
