// Custom RateLimiters: a pure (state, now, cost) function and an initial
// state, plugged into Limiter like a built-in policy; and the built-in
// policies seen as RateLimiters, so that custom ones can wrap them.
import { describe, expect, it } from 'vitest';
import { ConfigError, EmbeddedStore, Limiter, fixedWindow, gcra, linearWindow, type RateLimiter } from '../src/index.js';

const DAY = 86_400_000;

/** At most 3 per calendar day (UTC): a policy no built-in expresses. */
const perDay: RateLimiter<{ day: number; used: number }> = {
  name: 'per-day-3',
  capacity: 3,
  initial: () => ({ day: 0, used: 0 }),
  decide(state, now, cost) {
    const day = Math.floor(now / DAY);
    // A state from a later day is a booking made by reserve: nothing passes before that day.
    if (state.day > day) return { allowed: false, retryAfterMs: state.day * DAY - now, remaining: 0 };
    const used = state.day === day ? state.used : 0;
    if (used + cost > 3) return { allowed: false, retryAfterMs: (day + 1) * DAY - now, remaining: 3 - used };
    return { allowed: true, state: { day, used: used + cost }, remaining: 3 - used - cost, ttlMs: (day + 1) * DAY - now };
  },
  refund: (state, _now, cost) => ({ day: state.day, used: Math.max(0, state.used - cost) }),
};

describe('a custom RateLimiter on the embedded store', () => {
  it('decides like a built-in policy: limit, peek, refund, reset', async () => {
    let now = 10 * DAY + 1000;
    const limiter = new Limiter({ policy: perDay, clock: () => now });
    expect((await limiter.peek('k')).remaining).toBe(2);
    const seen = [1, 2, 3, 4].map(() => limiter.limitSync('k'));
    expect(seen.map((d) => d.allowed)).toEqual([true, true, true, false]);
    expect(seen[3]).toMatchObject({ allowed: false, retryAfterMs: DAY - 1000, limit: 3, source: 'local' });
    await limiter.refund('k', 1);
    expect(limiter.limitSync('k').allowed).toBe(true);
    expect(limiter.limitSync('other').allowed).toBe(true); // keys are independent
    await limiter.reset('k');
    expect(limiter.limitSync('k', { cost: 3 }).allowed).toBe(true);
    now += DAY; // a new day
    expect(limiter.limitSync('k', { cost: 3 }).allowed).toBe(true);
  });

  it('books the earliest admissible moment with reserve', async () => {
    const now = 3 * DAY;
    const limiter = new Limiter({ policy: perDay, clock: () => now });
    limiter.limitSync('k', { cost: 3 });
    const r = await limiter.reserve('k', { maxWaitMs: 2 * DAY });
    expect(r).toMatchObject({ allowed: true, waitMs: DAY });
    // The booking counts: a second reservation lands on the same next day, a fourth waits another.
    expect((await limiter.reserve('k', { maxWaitMs: 2 * DAY })).waitMs).toBe(DAY);
    expect((await limiter.reserve('k', { maxWaitMs: 10 })).allowed).toBe(false);
  });

  it('keeps at most maxKeys states, dropping the oldest', () => {
    const store = new EmbeddedStore({ maxKeys: 10 });
    const limiter = new Limiter({ policy: perDay, store, clock: () => DAY });
    for (let i = 0; i < 25; i++) limiter.limitSync(`k${i}`, { cost: 3 });
    // The newest keys are remembered (exhausted), the oldest were dropped (fresh again).
    expect(limiter.limitSync('k24').allowed).toBe(false);
    expect(limiter.limitSync('k0').allowed).toBe(true);
  });

  it('rejects a broken algorithm with a typed error naming it, changing nothing', () => {
    const broken: RateLimiter<number> = { name: 'broken', capacity: 5, initial: () => 0, decide: () => ({ allowed: false, retryAfterMs: -1 }) };
    const limiter = new Limiter({ policy: broken });
    expect(() => limiter.limitSync('k')).toThrow(ConfigError);
    try {
      limiter.limitSync('k');
    } catch (error) {
      expect((error as ConfigError).parameter).toBe('policy.decide');
    }
    for (const [bad, parameter] of [
      [{ ...perDay, name: '' }, 'policy.name'],
      [{ ...perDay, name: 'a{b}' }, 'policy.name'],
      [{ ...perDay, capacity: 0 }, 'policy.capacity'],
      [{ ...perDay, initial: 5 }, 'policy.initial'],
    ] as const) {
      expect(() => new Limiter({ policy: bad as never })).toThrow(expect.objectContaining({ parameter }));
    }
    // A custom limiter is the only policy: it composes others inside itself.
    expect(() => new Limiter({ policy: [perDay, gcra({ limit: 1, period: '1s' })] as never })).toThrow(expect.objectContaining({ parameter: 'policy' }));
  });
});

describe('built-in policies are RateLimiters', () => {
  it('decide purely, as the stores do', () => {
    // Drive each built-in policy's pure view and an embedded limiter with the same sequence.
    for (const policy of [gcra({ limit: 5, period: '1s', burst: 2 }), fixedWindow({ limit: 3, window: '1s' }), linearWindow({ limit: 2, within: '3s' })]) {
      let now = 1_000_000;
      const limiter = new Limiter({ policy, clock: () => now });
      let state = policy.initial();
      for (let i = 0; i < 60; i++, now += 97) {
        const step = policy.decide(state, now, 1);
        const d = limiter.limitSync('k');
        expect(step.allowed).toBe(d.allowed);
        if (step.allowed) state = step.state;
        else expect(step.retryAfterMs).toBeCloseTo(d.retryAfterMs, 9);
        expect(step.remaining).toBe(d.remaining);
      }
    }
  });

  it('compose: a custom limiter that wraps two built-ins (a burst of 2, and 5 per 3 s)', () => {
    const burst = gcra({ limit: 10, period: '1s', burst: 2 });
    const window = linearWindow({ limit: 5, within: '3s' });
    type S = readonly [ReturnType<typeof burst.initial>, ReturnType<typeof window.initial>];
    const both: RateLimiter<S> = {
      name: 'burst-and-window',
      capacity: 2,
      initial: () => [burst.initial(), window.initial()],
      decide(state, now, cost) {
        const a = burst.decide(state[0], now, cost);
        const b = window.decide(state[1], now, cost);
        if (!a.allowed || !b.allowed) return { allowed: false, retryAfterMs: Math.max(a.allowed ? 0 : a.retryAfterMs, b.allowed ? 0 : b.retryAfterMs) };
        return { allowed: true, state: [a.state, b.state], ttlMs: Math.max(a.ttlMs ?? 0, b.ttlMs ?? 0) };
      },
    };
    let now = 0;
    const limiter = new Limiter({ policy: both, clock: () => now });
    const admitted: number[] = [];
    for (; now < 6000; now += 10) if (limiter.limitSync('k').allowed) admitted.push(now);
    // Each 3 s window: a burst of 2, then paced 100 ms apart, until 5; then the window holds until it ends.
    expect(admitted).toEqual([0, 10, 100, 200, 300, 3000, 3010, 3100, 3200, 3300]);
  });
});
