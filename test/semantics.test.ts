// Exact semantics of each algorithm at hand-computed times, with an injected clock.
import { describe, expect, it } from 'vitest';
import { Limiter, fixedWindow, gcra, linearWindow, slidingWindow, tokenBucket, type Policy } from '../build/lib/src/index.js';

function setup(policy: Policy | Policy[], start = 0) {
  const clock = { now: start };
  const limiter = new Limiter({ policy, clock: () => clock.now });
  const at = (t: number, key = 'k', cost = 1) => {
    clock.now = t;
    return limiter.limitSync(key, { cost });
  };
  return { limiter, clock, at };
}

describe('gcra', () => {
  it('paces requests exactly period/limit apart with burst 1', () => {
    const { at } = setup(gcra({ limit: 5, period: '1s' }));
    expect(at(0)).toMatchObject({ allowed: true, limit: 5, capacity: 1, gate: 0, remaining: 0, resetAfterMs: 200 });
    expect(at(0)).toMatchObject({ allowed: false, retryAfterMs: 200 });
    expect(at(199.5)).toMatchObject({ allowed: false, retryAfterMs: 0.5 });
    expect(at(200)).toMatchObject({ allowed: true });
    expect(at(400)).toMatchObject({ allowed: true });
    // Admissions over 10 s of requests every 1 ms: exactly one per 200 ms.
    let admitted = 0;
    for (let t = 401; t < 10_401; t++) if (at(t).allowed) admitted++;
    expect(admitted).toBe(50);
  });

  it('lets burst requests through back-to-back, then paces', () => {
    const { at } = setup(gcra({ limit: 10, period: '1s', burst: 3 }));
    expect(at(0)).toMatchObject({ allowed: true, limit: 10, capacity: 3, remaining: 2 });
    expect(at(0)).toMatchObject({ allowed: true, remaining: 1 });
    expect(at(0)).toMatchObject({ allowed: true, remaining: 0, resetAfterMs: 300 });
    expect(at(0)).toMatchObject({ allowed: false, retryAfterMs: 100 });
    expect(at(100)).toMatchObject({ allowed: true, remaining: 0 });
    // Idle for the whole tolerance: the full burst is back.
    expect(at(400)).toMatchObject({ allowed: true, remaining: 2 });
  });

  it('charges a cost of n as n cells', () => {
    const { at } = setup(gcra({ limit: 10, period: '1s', burst: 5 }));
    expect(at(0, 'k', 5)).toMatchObject({ allowed: true, remaining: 0 });
    expect(at(250, 'k', 3)).toMatchObject({ allowed: false, retryAfterMs: 50 });
    expect(at(300, 'k', 3)).toMatchObject({ allowed: true, remaining: 0 });
  });
});

describe('tokenBucket', () => {
  it('continuous: starts full, drips back refill per period', () => {
    const { at } = setup(tokenBucket({ capacity: 4, refill: 2, period: '1s' }));
    expect(at(0, 'k', 4)).toMatchObject({ allowed: true, limit: 4, capacity: 4, remaining: 0, resetAfterMs: 2000 });
    expect(at(0)).toMatchObject({ allowed: false, retryAfterMs: 500 });
    expect(at(500)).toMatchObject({ allowed: true, remaining: 0 });
    expect(at(1500)).toMatchObject({ allowed: true, remaining: 1 });
  });

  it('interval: the quota comes back whole at each period boundary from first use', () => {
    const { at } = setup(tokenBucket({ capacity: 3, period: '1m', mode: 'interval' }), 10_000);
    expect(at(10_000)).toMatchObject({ allowed: true, remaining: 2, resetAfterMs: 60_000 });
    expect(at(20_000)).toMatchObject({ allowed: true, remaining: 1 });
    expect(at(30_000)).toMatchObject({ allowed: true, remaining: 0 });
    expect(at(69_999)).toMatchObject({ allowed: false, retryAfterMs: 1 });
    expect(at(70_000)).toMatchObject({ allowed: true, remaining: 2 });
  });

  it('interval with partial refill accumulates up to capacity', () => {
    const { at } = setup(tokenBucket({ capacity: 10, refill: 4, period: 1000, mode: 'interval' }));
    expect(at(0, 'k', 10)).toMatchObject({ allowed: true, remaining: 0 });
    expect(at(500, 'k', 5)).toMatchObject({ allowed: false, retryAfterMs: 1500 });
    expect(at(2000, 'k', 5)).toMatchObject({ allowed: true, remaining: 3 });
  });
});

describe('fixedWindow', () => {
  it('counts per window aligned to multiples of the window since the epoch', () => {
    const { at } = setup(fixedWindow({ limit: 2, window: '1s' }), 1_700_000_000_250);
    const t0 = 1_700_000_000_250;
    expect(at(t0)).toMatchObject({ allowed: true, remaining: 1, resetAfterMs: 750 });
    expect(at(t0 + 100)).toMatchObject({ allowed: true, remaining: 0 });
    expect(at(t0 + 200)).toMatchObject({ allowed: false, retryAfterMs: 550 });
    expect(at(t0 + 750)).toMatchObject({ allowed: true, remaining: 1 });
  });
});

describe('linearWindow', () => {
  it('blocks a key until the window opened by its first admission expires', () => {
    const { at } = setup(linearWindow({ limit: 2, within: '3s' }));
    expect(at(0)).toMatchObject({ allowed: true, remaining: 1, resetAfterMs: 3000 });
    expect(at(1000)).toMatchObject({ allowed: true, remaining: 0, resetAfterMs: 2000 });
    expect(at(1500)).toMatchObject({ allowed: false, retryAfterMs: 1500 });
    expect(at(3000)).toMatchObject({ allowed: true, remaining: 1, resetAfterMs: 3000 });
    // The new window opened at 3 s, not at a multiple of 3 s.
    expect(at(5999)).toMatchObject({ allowed: true, remaining: 0 });
    expect(at(6000)).toMatchObject({ allowed: true, remaining: 1 });
  });

  it('keeps resources independent', () => {
    const { at } = setup(linearWindow({ limit: 1, within: '3s' }));
    expect(at(0, 'a').allowed).toBe(true);
    expect(at(0, 'b').allowed).toBe(true);
    expect(at(1, 'a').allowed).toBe(false);
  });
});

describe('slidingWindow', () => {
  it('weights the previous window by its remaining overlap', () => {
    const { at } = setup(slidingWindow({ limit: 10, window: 1000 }));
    for (let i = 0; i < 10; i++) expect(at(500).allowed).toBe(true);
    expect(at(999)).toMatchObject({ allowed: false, retryAfterMs: 1 + 100 });
    // At 1250 the previous window (10) weighs 0.75: estimate 7.5, so 2 more pass.
    expect(at(1250)).toMatchObject({ allowed: true, remaining: 1 });
    expect(at(1250)).toMatchObject({ allowed: true, remaining: 0 });
    expect(at(1250)).toMatchObject({ allowed: false, retryAfterMs: 50 });
    expect(at(1300)).toMatchObject({ allowed: true });
  });

  it('refund takes from the current window first, then the previous one', async () => {
    const { at, limiter, clock } = setup(slidingWindow({ limit: 10, window: 1000 }));
    for (let i = 0; i < 5; i++) at(100);
    clock.now = 1100;
    await limiter.refund('k', 2);
    // previous window now counts 3, weighted 0.8 at 1200: estimate 2.4 + 1.
    expect(at(1200)).toMatchObject({ allowed: true, remaining: 6 });
  });
});

describe('stacked gates', () => {
  it('admits only when every gate admits, and a denial charges none', () => {
    const { at } = setup([gcra({ limit: 10, period: '1s' }), tokenBucket({ capacity: 3, period: '1d', mode: 'interval' })]);
    expect(at(0)).toMatchObject({ allowed: true });
    // Denied by the pacing gate: the daily quota must not be charged.
    expect(at(50)).toMatchObject({ allowed: false, retryAfterMs: 50 });
    expect(at(100)).toMatchObject({ allowed: true, remaining: 0 });
    // Both gates are now at 0: the first one reports.
    expect(at(200)).toMatchObject({ allowed: true, gate: 0, limit: 10, capacity: 1, remaining: 0 });
    const d = at(300);
    expect(d).toMatchObject({ allowed: false, gate: 1, limit: 3, capacity: 3, retryAfterMs: 86_400_000 - 300 });
  });
});

describe('peek, refund, reset, reserve', () => {
  it('peek answers without charging', async () => {
    const { limiter, at } = setup(fixedWindow({ limit: 1, window: '1s' }));
    expect(await limiter.peek('k')).toMatchObject({ allowed: true, remaining: 0 });
    expect(await limiter.peek('k')).toMatchObject({ allowed: true, remaining: 0 });
    expect(at(0).allowed).toBe(true);
    expect(await limiter.peek('k')).toMatchObject({ allowed: false });
  });

  it('refund gives capacity back, reset forgets the key', async () => {
    const { limiter, at } = setup(gcra({ limit: 1, period: '1s', burst: 2 }));
    expect(at(0, 'k', 2).allowed).toBe(true);
    expect(at(0).allowed).toBe(false);
    await limiter.refund('k', 1);
    expect(at(0)).toMatchObject({ allowed: true, remaining: 0 });
    await limiter.reset('k');
    expect(at(0)).toMatchObject({ allowed: true, remaining: 1 });
  });

  it('reserve books consecutive slots exactly spaced, first come first served', async () => {
    const { limiter } = setup(gcra({ limit: 4, period: '1s' }));
    const waits = [];
    for (let i = 0; i < 5; i++) waits.push((await limiter.reserve('k')).waitMs);
    expect(waits).toEqual([0, 250, 500, 750, 1000]);
    expect(await limiter.reserve('k', { maxWaitMs: 1000 })).toMatchObject({ allowed: false, waitMs: 1250 });
    expect((await limiter.reserve('k')).at).toBe(1250);
  });

  it('reserve on a full linear window books the next window', async () => {
    const { limiter, at } = setup(linearWindow({ limit: 2, within: '3s' }));
    at(0);
    at(1000);
    expect(await limiter.reserve('k')).toMatchObject({ allowed: true, waitMs: 2000, at: 3000 });
    // The booked window holds one more; requests before it opens wait for it.
    expect(at(2000)).toMatchObject({ allowed: false, retryAfterMs: 1000 });
    expect(at(3000)).toMatchObject({ allowed: true, remaining: 0 });
  });
});

describe('a cancelled booking in a later window', () => {
  // A reservation that lands in the next window (or refill interval) replaces
  // the key's state with that window's; refunding it (an aborted acquire)
  // must not leave the current window looking empty: it was full, which is
  // why the booking went to the next one.
  // `free`: what passes at the booked moment once the booking is refunded, by
  // hand: the whole limit of a window (or interval) that starts empty; for
  // the sliding window, booked at 1500, its limit less half the full window
  // before. Without the refund, one less would pass.
  it.each([
    ['fixedWindow', fixedWindow({ limit: 2, window: '1s' }), 1000, 2],
    ['linearWindow', linearWindow({ limit: 2, within: '1s' }), 1000, 2],
    ['tokenBucket interval', tokenBucket({ capacity: 2, period: '1s', mode: 'interval' }), 1000, 2],
    ['slidingWindow', slidingWindow({ limit: 2, window: '1s' }), 1500, 1],
  ] as const)('%s: the current window stays full', async (_name, policy, bookedAt, free) => {
    const { limiter, clock, at } = setup(policy);
    expect(at(0).allowed).toBe(true);
    expect(at(0).allowed).toBe(true);
    clock.now = 100;
    const booking = await limiter.reserve('k');
    expect(booking).toMatchObject({ allowed: true, at: bookedAt });
    await limiter.refund('k', 1);
    expect(at(200).allowed).toBe(false);
    expect(at(bookedAt - 1).allowed).toBe(false);
    // From the booked moment on, the key is as the refund left it: nothing booked.
    let passed = 0;
    while (passed < 10 && at(bookedAt).allowed) passed++;
    expect(passed).toBe(free);
  });
});
