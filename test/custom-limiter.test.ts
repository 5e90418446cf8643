// Custom RateLimiters: a pure (state, now, cost) function and an initial
// state, plugged into Limiter like a built-in policy; and the built-in
// policies seen as RateLimiters, so that custom ones can wrap them.
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ConfigError, EmbeddedStore, Limiter, fixedWindow, gcra, linearWindow, slidingWindow, tokenBucket, type RateLimiter } from '../build/lib/src/index.js';
import { RedisStateError, RedisStore } from '../build/lib/src/stores/redis/index.js';
import { runPods } from '../support/pods.js';
import { startRedis } from '../build/lib/src/cli/redis-server.js';
import { useRedis } from './helpers/use-redis.js';
import { evaluate } from '../support/reference-model.js';

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

  it('at maxKeys live states, refuses new keys and forgets no debt (whenFull: deny, the default)', () => {
    const store = new EmbeddedStore({ maxKeys: 10 });
    let now = DAY;
    const limiter = new Limiter({ policy: perDay, store, clock: () => now });
    const admitted = Array.from({ length: 25 }, (_, i) => limiter.limitSync(`k${i}`, { cost: 3 }));
    expect(admitted.slice(0, 10).every((d) => d.allowed)).toBe(true);
    for (const d of admitted.slice(10)) {
      expect(d.allowed).toBe(false);
      expect(Number.isFinite(d.retryAfterMs) && d.retryAfterMs > 0).toBe(true);
    }
    // The first ten keys owe their day: still exhausted.
    for (let i = 0; i < 10; i++) expect(limiter.limitSync(`k${i}`).allowed, `k${i}`).toBe(false);
    expect(store.stats(now).refusals).toBe(15);
    // Once the day is over the states run out and new keys fit again.
    now += DAY;
    expect(limiter.limitSync('k24', { cost: 3 }).allowed).toBe(true);
  });

  it('keeps its map to the live states under a flood of distinct keys over a short policy', () => {
    const store = new EmbeddedStore();
    let now = 0;
    const perTenMs: RateLimiter<number> = {
      name: 'per-10ms',
      capacity: 2,
      initial: () => 0,
      decide: (used, _t, cost) => (used + cost > 2 ? { allowed: false, retryAfterMs: 10 } : { allowed: true, state: used + cost, ttlMs: 10 }),
    };
    const binding = store.bindCustom(perTenMs, () => now); // what a Limiter on this store decides through
    let admitted = 0;
    let held = 0;
    for (let i = 0; i < 300_000; i++) {
      if (binding.limit(`flood:${i}`, 1, false).allowed) admitted++;
      if (i % 1000 === 999) now += 1; // ~10k live states at once
      held = Math.max(held, binding.size);
    }
    expect(admitted).toBe(300_000);
    const { keys, refusals, evictions } = store.stats(now);
    expect(keys).toBeLessThanOrEqual(11_000);
    expect(refusals + evictions).toBe(0);
    // Swept as it goes: at most about twice the live states were ever held.
    expect(held).toBeLessThanOrEqual(2 * 11_000 + 2);
  });

  it('reclaims states that ran out without scanning the map, however a client renews its own (no sweep per new key)', () => {
    // 1000 per key per minute; the state runs out when the minute does.
    const perMinute: RateLimiter<{ start: number; used: number }> = {
      name: 'per-minute',
      capacity: 1000,
      initial: () => ({ start: -Infinity, used: 0 }),
      decide(st, now, cost) {
        const fresh = now >= st.start + 60_000;
        const start = fresh ? now : st.start;
        const used = (fresh ? 0 : st.used) + cost;
        if (used > 1000) return { allowed: false, retryAfterMs: start + 60_000 - now };
        return { allowed: true, state: { start, used }, ttlMs: start + 60_000 - now };
      },
    };
    const store = new EmbeddedStore({ maxKeys: 20_000 });
    let now = 1.8e12;
    const binding = store.bindCustom(perMinute, () => now);
    for (let i = 0; i < 1000; i++) {
      binding.limit(`att:${i}`, 1, false);
      now += 0.001;
    }
    for (let i = 0; i < 19_000; i++) binding.limit(`fill:${i}`, 1, false); // the map is full
    now += 60_000 - 1; // just before the attacker's keys run out
    let writes = 21_000;
    for (let i = 0; i < 1000; i++) {
      now += 0.001; // att:i runs out now...
      binding.limit(`att:${i}`, 1, false); // ...and is renewed at once
      binding.limit(`new:${i}`, 1, false); // a new key meets the full map
      writes += 2;
    }
    const { popped, queued } = binding.reclaimWork;
    // Each written state queues one pair and each pair is examined at most once:
    // linear in the writes (a scan per new key would have been 1000 x 20 000).
    expect(popped).toBeLessThanOrEqual(writes);
    expect(queued).toBeLessThanOrEqual(2 * binding.size + 1024);
    expect(store.stats(now).evictions).toBe(0);
  });

  it("at maxKeys with whenFull: 'evict', drops the oldest state for a new key, counting it", () => {
    const store = new EmbeddedStore({ maxKeys: 10, whenFull: 'evict' });
    const limiter = new Limiter({ policy: perDay, store, clock: () => DAY });
    for (let i = 0; i < 25; i++) limiter.limitSync(`k${i}`, { cost: 3 });
    // The newest keys are remembered (exhausted), the oldest were dropped (fresh again).
    expect(limiter.limitSync('k24').allowed).toBe(false);
    expect(limiter.limitSync('k0').allowed).toBe(true);
    expect(store.stats(DAY).evictions).toBeGreaterThanOrEqual(15);
  });

  it('rejects a step with an infinite or huge ttl or wait: every reset and Retry-After stays finite', () => {
    for (const step of [
      { allowed: true, state: 1, ttlMs: Infinity },
      { allowed: true, state: 1, ttlMs: 1e308 },
      { allowed: true, state: 1, ttlMs: NaN },
      { allowed: false, retryAfterMs: 1e20 },
      { allowed: false, retryAfterMs: Infinity },
    ]) {
      const odd: RateLimiter<number> = { name: 'odd', capacity: 5, initial: () => 0, decide: () => step as never };
      const store = new EmbeddedStore();
      const limiter = new Limiter({ policy: odd, store });
      expect(() => limiter.limitSync('k'), JSON.stringify(step)).toThrow(ConfigError);
      expect(store.stats().keys).toBe(0);
    }
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
  it('decide purely, as the reference model does (which every store agrees with: test/property.test.ts)', () => {
    // The pure view runs the wasm core on a state passed in; the model is an
    // independent TypeScript transcription of the algorithms. Same states,
    // times and costs through both, allowed and denied steps alike.
    const policies = [
      gcra({ limit: 5, period: '1s', burst: 2 }),
      tokenBucket({ capacity: 4, refill: 2, period: '1s' }),
      tokenBucket({ capacity: 4, refill: 2, period: '1s', mode: 'interval' }),
      fixedWindow({ limit: 3, window: '1s' }),
      linearWindow({ limit: 2, within: '3s' }),
      slidingWindow({ limit: 3, window: '1s' }),
    ];
    for (const policy of policies) {
      let now = 1_000_000;
      let state = policy.initial();
      const outcomes = new Set<boolean>();
      for (let i = 0; i < 80; i++, now += [97, 0, 13.5, 401, 0, 1999][i % 6]!) {
        const cost = 1 + (i % policy.capacity);
        const where = `${policy.kind} step ${i} at ${now}, cost ${cost}`;
        const [a, b, c, exp] = state;
        const model = evaluate(policy, exp > now ? { a, b, c, exp } : undefined, cost, now);
        const step = policy.decide(state, now, cost);
        outcomes.add(step.allowed);
        expect(step.allowed, where).toBe(model.allowed);
        expect(step.remaining, where).toBe(model.remaining);
        if (step.allowed) {
          expect(step.state, where).toEqual([model.state.a, model.state.b, model.state.c, model.state.exp]);
          expect(step.ttlMs, where).toBe(Math.max(0, model.state.exp - now));
          state = step.state;
        } else {
          expect(step.retryAfterMs, where).toBe(model.retry);
        }
      }
      // Both branches were compared.
      expect([...outcomes].sort(), policy.kind).toEqual([false, true]);
    }
  });

  it('compose: a custom limiter that wraps two built-ins (a burst of 2, and 5 per 3 s)', () => {
    let now = 0;
    const limiter = new Limiter({ policy: burstAndWindow(), clock: () => now });
    const admitted: number[] = [];
    for (; now < 6000; now += 10) if (limiter.limitSync('k').allowed) admitted.push(now);
    // Each 3 s window: a burst of 2, then paced 100 ms apart, until 5; then the window holds until it ends.
    expect(admitted).toEqual(COMPOSED);
  });
});

/** What {@link burstAndWindow} admits of a call every 10 ms for 6 s. */
const COMPOSED = [0, 10, 100, 200, 300, 3000, 3010, 3100, 3200, 3300];

/** A custom limiter composed of two built-ins: both must admit, and a denial by one charges neither. */
function burstAndWindow() {
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
  return both;
}

describe('a custom RateLimiter through Redis', () => {
  const db = useRedis();

  it('decides like on the embedded store, its state JSON in Redis under the shard tag', async () => {
    const now = 10 * DAY + 1000;
    const store = new RedisStore({ client: db.client, prefix: 'cu1:', time: 'client', timeoutMs: 10_000 });
    const limiter = new Limiter({ policy: perDay, store, clock: () => now });
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push(await limiter.limit('k'));
    expect(seen.map((d) => d.allowed)).toEqual([true, true, true, false]);
    expect(seen[3]).toMatchObject({ retryAfterMs: DAY - 1000, source: 'redis' });
    const key = `${store.shardKey(store.shardOf('k'))}:k|custom:per-day-3`;
    expect(JSON.parse((await db.client.get(key))!)).toEqual({ day: 10, used: 3 });
    expect(await db.client.pttl(key)).toBeGreaterThan(DAY - 2000);
    await limiter.refund('k', 2);
    expect((await limiter.limit('k', { cost: 2 })).allowed).toBe(true);
    expect((await limiter.reserve('k', { maxWaitMs: 2 * DAY })).waitMs).toBe(DAY - 1000);
    await limiter.reset('k');
    expect(await db.client.exists(key)).toBe(0);
  });

  it('carries built-in states (with their infinities) through JSON: a composed limiter decides as in process', async () => {
    let now = 0;
    const store = new RedisStore({ client: db.client, prefix: 'cu2:', time: 'client', timeoutMs: 10_000 });
    const limiter = new Limiter({ policy: burstAndWindow(), store, clock: () => now });
    const admitted: number[] = [];
    for (; now < 6000; now += 10) if ((await limiter.limit('k')).allowed) admitted.push(now);
    expect(admitted).toEqual(COMPOSED);
  });

  it('refuses a key holding a foreign value with a typed error, leaving it alone', async () => {
    const store = new RedisStore({ client: db.client, prefix: 'cu3:', timeoutMs: 10_000 });
    const limiter = new Limiter({ policy: perDay, store });
    const key = `${store.shardKey(store.shardOf('k'))}:k|custom:per-day-3`;
    await db.client.hset(key, 'f', 'v');
    await expect(limiter.limit('k')).rejects.toBeInstanceOf(RedisStateError);
    await db.client.del(key);
    await db.client.set(key, 'not json');
    await expect(limiter.limit('k')).rejects.toBeInstanceOf(RedisStateError);
    expect(await db.client.get(key)).toBe('not json');
  });

  it('two processes with 30 concurrent calls each on one key admit exactly what the limiter allows', async () => {
    const worker = fileURLToPath(new URL('./fixtures/custom-worker.mjs', import.meta.url));
    const pods = await runPods(worker, [
      [String(db.server.port), 'shared', '30'],
      [String(db.server.port), 'shared', '30'],
    ]);
    const results = (await Promise.all(pods.map((p) => p.result))) as { admitted: number; contention: number }[];
    expect(results.reduce((sum, r) => sum + r.admitted, 0)).toBe(20);
    expect(results.reduce((sum, r) => sum + r.contention, 0)).toBe(0);
  }, 30_000);

  it('while Redis is unreachable: denies (or admits with fallback: open), never rejects', async () => {
    const own = await startRedis();
    const redis = new Redis({ host: own.host, port: own.port, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    redis.on('error', () => {});
    const closed = new RedisStore({ client: redis, prefix: 'cu4:', timeoutMs: 100 });
    const open = new RedisStore({ client: redis, prefix: 'cu4:', timeoutMs: 100, fallback: 'open' });
    try {
      const a = new Limiter({ policy: perDay, store: closed });
      const b = new Limiter({ policy: perDay, store: open });
      expect((await a.limit('k')).source).toBe('redis');
      own.kill('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await a.limit('k')).toMatchObject({ allowed: false, source: 'fallback' });
      expect(await b.limit('k')).toMatchObject({ allowed: true, source: 'fallback' });
    } finally {
      closed.close();
      open.close();
      redis.disconnect();
      await own.stop();
    }
  });
});
