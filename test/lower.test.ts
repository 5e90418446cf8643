// Limiter.lower(key, remaining): a key's remaining brought down to what an
// upstream's own counter reported, never up, one gate only; atomic in Redis
// (several stores applying one report lower it once), the same in the
// embedded store and in the script (an agreement property), and kept by the
// fallback while Redis is away.
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ArgumentError, EmbeddedStore, Limiter,
  concurrency, fixedWindow, gcra, linearWindow, slidingWindow, tokenBucket, type Decision, type Policy, type RateLimiter,
} from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { CODE } from '../build/lib/build/abi.js';
import { startRedisCluster, type RedisCluster } from '../build/lib/src/cli/redis-server.js';
import { useRedis } from './helpers/use-redis.js';
import { modelClock, policyArb } from './helpers/agreement.js';

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

/** What a peek of cost 1 says the key may still take now: its remaining + 1 (the peek's own request), or 0. */
const admissible = (d: Decision): number => (d.allowed ? d.remaining + 1 : 0);

/** Takes cost-1 requests until one is denied (at most `most`): how many passed. */
async function drain(limiter: Limiter, key: string, most = 2000): Promise<number> {
  let n = 0;
  while (n < most && (await limiter.limit(key)).allowed) n++;
  return n;
}

/** Each rate algorithm with a capacity of 100, its numbers round at the clock's start (no refill while the clock stands). */
const HUNDRED: readonly [string, () => Policy][] = [
  ['gcra', () => gcra({ limit: 100, period: '100s', burst: 100 })],
  ['tokenBucket interval', () => tokenBucket({ capacity: 100, refill: 100, period: '1m', mode: 'interval' })],
  ['tokenBucket continuous', () => tokenBucket({ capacity: 100, refill: 100, period: '1m', mode: 'continuous' })],
  ['fixedWindow', () => fixedWindow({ limit: 100, window: '1m' })],
  ['slidingWindow', () => slidingWindow({ limit: 100, window: '1m' })],
  ['linearWindow', () => linearWindow({ limit: 100, within: '1m' })],
];

describe('embedded: lower', () => {
  it.each(HUNDRED)('%s: 10 used of 100, lowered to 40: exactly 40 more pass; a lower to 60 after changes nothing', async (_name, make) => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: make(), clock: clock.now });
    for (let i = 0; i < 10; i++) expect(limiter.limitSync('k').allowed).toBe(true);
    expect(admissible(await limiter.peek('k'))).toBe(90);
    await limiter.lower('k', 40);
    expect(admissible(await limiter.peek('k'))).toBe(40);
    await limiter.lower('k', 60);
    expect(admissible(await limiter.peek('k'))).toBe(40);
    expect(await drain(limiter, 'k')).toBe(40);
    // Another key is untouched.
    expect(admissible(await limiter.peek('other'))).toBe(100);
  });

  it.each(HUNDRED)('%s: never up: 90 used, lowered to 50, still 10 left; to 0, none', async (_name, make) => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: make(), clock: clock.now });
    for (let i = 0; i < 90; i++) limiter.limitSync('k');
    await limiter.lower('k', 50);
    expect(admissible(await limiter.peek('k'))).toBe(10);
    await limiter.lower('k', 0);
    expect((await limiter.limit('k')).allowed).toBe(false);
  });

  it('idempotent: the same report applied 5 times lowers once', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: fixedWindow({ limit: 100, window: '1m' }), clock: clock.now });
    for (let i = 0; i < 5; i++) await limiter.lower('k', 30);
    expect(await drain(limiter, 'k')).toBe(30);
  });

  it('stacked minute + day: only the tighter gate is lowered; the day quota keeps its count', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: [fixedWindow({ limit: 100, window: '1m' }), fixedWindow({ limit: 120, window: '1d' })], clock: clock.now });
    for (let i = 0; i < 10; i++) limiter.limitSync('k'); // minute 90 left, day 110
    await limiter.lower('k', 40);
    expect(await drain(limiter, 'k')).toBe(40); // minute 0, day 70
    clock.advance(60_000);
    // Had the day been lowered to 40 too, it would have nothing left now.
    const d = await limiter.peek('k');
    expect({ gate: d.gate, left: admissible(d) }).toEqual({ gate: 1, left: 70 });
  });

  it('a tie is the first gate’s', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: [fixedWindow({ limit: 100, window: '1m' }), fixedWindow({ limit: 100, window: '1h' })], clock: clock.now });
    await limiter.lower('k', 40);
    expect(await drain(limiter, 'k')).toBe(40);
    clock.advance(60_000);
    expect(admissible(await limiter.peek('k'))).toBe(60);
  });

  it('a concurrency gate is untouched; a limiter of only one has nothing to lower', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: [fixedWindow({ limit: 100, window: '1m' }), concurrency({ limit: 3, leaseMs: 60_000 })], clock: clock.now });
    await limiter.lower('k', 2);
    const permits = [1, 2, 3].map(() => limiter.limitSync('k'));
    expect(permits.map((p) => p.allowed)).toEqual([true, true, false]); // the rate gate's 2, not the slots' 3
    await Promise.all(permits.map((p) => p.release?.()));
    const slots = new Limiter({ policy: concurrency({ limit: 3, leaseMs: 60_000 }), clock: clock.now });
    await slots.lower('k', 0);
    const held = [1, 2, 3, 4].map(() => slots.limitSync('k'));
    expect(held.map((p) => p.allowed)).toEqual([true, true, true, false]);
    await Promise.all(held.map((p) => p.release?.()));
  });

  it('a limiter with plans lowers the key under its plan (a name, and a resolver)', async () => {
    const clock = manualClock();
    const named = new Limiter({ name: 'api', policy: fixedWindow({ limit: 100, window: '1m' }), clock: clock.now });
    await named.lower('k', 25);
    expect(await drain(named, 'k')).toBe(25);
    const store = new EmbeddedStore();
    const tiers = new Limiter({ store, clock: clock.now, policy: (key) => (key.startsWith('pro:') ? fixedWindow({ limit: 100, window: '1m' }) : fixedWindow({ limit: 10, window: '1m' })) });
    await tiers.lower('pro:a', 50);
    await tiers.lower('free:a', 50); // 10 left: never up
    expect([await drain(tiers, 'pro:a'), await drain(tiers, 'free:a')]).toEqual([50, 10]);
  });

  it('bad input is an ArgumentError naming the parameter, and changes nothing', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: fixedWindow({ limit: 100, window: '1m' }), clock: clock.now });
    for (let i = 0; i < 10; i++) limiter.limitSync('k');
    const lower = limiter.lower.bind(limiter) as (key: unknown, remaining?: unknown) => Promise<void>;
    for (const bad of [NaN, -1, 1.5, Infinity, -Infinity, '40', undefined, null, 1_000_000_001, 40n, {}]) {
      await expect(lower('k', bad)).rejects.toThrow(expect.objectContaining({ parameter: 'remaining' }));
      await expect(lower('k', bad)).rejects.toBeInstanceOf(ArgumentError);
    }
    await expect(lower('k')).rejects.toThrow(expect.objectContaining({ parameter: 'remaining' }));
    await expect(lower(42, 5)).rejects.toThrow(expect.objectContaining({ parameter: 'key' }));
    await expect(lower(undefined, 5)).rejects.toBeInstanceOf(ArgumentError);
    expect(admissible(await limiter.peek('k'))).toBe(90);
    // The largest count a policy allows is accepted (and changes nothing here).
    await limiter.lower('k', 1_000_000_000);
    expect(admissible(await limiter.peek('k'))).toBe(90);
  });

  it('a custom RateLimiter refuses, as penalize does', async () => {
    const custom: RateLimiter<number> = { name: 'two', capacity: 2, initial: () => 0, decide: (used, _t, cost) => (used + cost > 2 ? { allowed: false, retryAfterMs: 10 } : { allowed: true, state: used + cost }) };
    const limiter = new Limiter({ policy: custom });
    const penalized = await limiter.penalize('k', 1).catch((e: unknown) => e);
    const lowered = await limiter.lower('k', 1).catch((e: unknown) => e);
    expect(lowered).toBeInstanceOf(ArgumentError);
    expect(lowered).toMatchObject({ parameter: 'policy' });
    expect((penalized as ArgumentError).parameter).toBe('policy');
  });
});

describe('Redis: lower, atomic', () => {
  const redis = useRedis();
  const client = () => new Redis({ host: redis.server.host, port: redis.server.port, maxRetriesPerRequest: 1 });

  it('20 concurrent lowers from 2 stores to the same number leave exactly that many', async () => {
    const t = 1_700_000_000_000;
    const [ca, cb] = [client(), client()];
    const a = new RedisStore({ client: ca, prefix: 'low1', ...modelClock });
    const b = new RedisStore({ client: cb, prefix: 'low1', ...modelClock });
    try {
      for (const [name, make] of HUNDRED) {
        const key = `k:${name}`;
        const la = new Limiter({ policy: make(), store: a, clock: () => t });
        const lb = new Limiter({ policy: make(), store: b, clock: () => t });
        for (let i = 0; i < 10; i++) expect((await la.limit(key)).allowed).toBe(true);
        await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? la : lb).lower(key, 25)));
        expect([name, await drain(lb, key)]).toEqual([name, 25]);
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
      ca.disconnect();
      cb.disconnect();
    }
  });

  it('stacked through Redis: the day quota keeps its count', async () => {
    let t = 1_700_000_000_000 - (1_700_000_000_000 % 86_400_000);
    const c = client();
    const store = new RedisStore({ client: c, prefix: 'low2', ...modelClock });
    const limiter = new Limiter({ policy: [fixedWindow({ limit: 100, window: '1m' }), fixedWindow({ limit: 120, window: '1d' })], store, clock: () => t });
    try {
      for (let i = 0; i < 10; i++) await limiter.limit('k');
      await limiter.lower('k', 40);
      expect(await drain(limiter, 'k')).toBe(40);
      t += 60_000;
      const d = await limiter.peek('k');
      expect({ gate: d.gate, left: admissible(d), source: d.source }).toEqual({ gate: 1, left: 70, source: 'redis' });
    } finally {
      await store.close();
      c.disconnect();
    }
  });

  it('with Redis unreachable, the fallback is lowered and nothing throws; Redis is not lowered after', async () => {
    const c = new Redis({ host: redis.server.host, port: redis.server.port, maxRetriesPerRequest: 1 });
    const store = new RedisStore({ client: c, prefix: 'low3', timeoutMs: 100, fallback: { nodes: 1 } });
    const policy = fixedWindow({ limit: 100, window: '1h' });
    const limiter = new Limiter({ policy, store });
    await limiter.limit('warm');
    await redis.client.client('PAUSE', 3000, 'ALL');
    let seen: Decision[] = [];
    try {
      for (let i = 0; i < 5; i++) await limiter.limit(`probe${i}`); // opens the breaker
      await limiter.lower('k', 3);
      seen = [];
      for (let i = 0; i < 5; i++) seen.push(await limiter.limit('k'));
    } finally {
      await redis.client.client('UNPAUSE');
    }
    expect(seen.map((d) => [d.allowed, d.source])).toEqual([
      [true, 'fallback'], [true, 'fallback'], [true, 'fallback'], [false, 'fallback'], [false, 'fallback'],
    ]);
    const other = storeOf('low3');
    const peek = await new Limiter({ policy, store: other }).peek('fresh-after');
    expect(peek.source).toBe('redis');
    await Promise.all([store.close(), other.close()]);
    c.disconnect();
  }, 30_000);

  it('leased mode lowers in Redis and drops its own lease of the key', async () => {
    const t = 1_700_000_000_000;
    const leased = new RedisStore({ client: client(), prefix: 'low4', mode: 'leased', ...modelClock });
    const strictStore = new RedisStore({ client: client(), prefix: 'low4', ...modelClock });
    const policy = fixedWindow({ limit: 1000, window: '1h' });
    const l = new Limiter({ policy, store: leased, clock: () => t });
    const strict = new Limiter({ policy, store: strictStore, clock: () => t });
    try {
      await l.limit('k');
      await l.lower('k', 5);
      expect(admissible(await strict.peek('k'))).toBeLessThanOrEqual(5);
      // The lease held before the lower is gone: what this process admits now comes from the lowered state.
      let passed = 0;
      for (let i = 0; i < 50; i++) if ((await l.limit('k')).allowed) passed++;
      expect(passed).toBeLessThanOrEqual(5);
    } finally {
      await Promise.all([leased.close(), strictStore.close()]);
    }
  });

  function storeOf(prefix: string): RedisStore {
    return new RedisStore({ client: client(), prefix });
  }
});

describe('Redis Cluster: lower', () => {
  let cluster: RedisCluster | undefined;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('concurrent lowers of 12 keys on many shards from 2 stores: each key exactly its number', async () => {
    const t = 1_700_000_000_000;
    const make = () => new Cluster(cluster!.nodes, { redisOptions: { maxRetriesPerRequest: 1 } });
    const [ca, cb] = [make(), make()];
    const a = new RedisStore({ client: ca, prefix: 'lowc', timeoutMs: 10_000, ...modelClock });
    const b = new RedisStore({ client: cb, prefix: 'lowc', timeoutMs: 10_000, ...modelClock });
    const policy = gcra({ limit: 100, period: '100s', burst: 100 });
    const [la, lb] = [new Limiter({ policy, store: a, clock: () => t }), new Limiter({ policy, store: b, clock: () => t })];
    const keys = Array.from({ length: 12 }, (_, i) => `tenant:${i}`);
    try {
      await Promise.all(keys.flatMap((k, i) => Array.from({ length: 10 }, (_, j) => (j % 2 === 0 ? la : lb).lower(k, i))));
      const left = await Promise.all(keys.map(async (k) => admissible(await la.peek(k))));
      expect(left).toEqual(keys.map((_, i) => i));
      expect(await drain(lb, 'tenant:7')).toBe(7);
    } finally {
      await Promise.all([a.close(), b.close()]);
      ca.disconnect();
      cb.disconnect();
    }
  }, 60_000);
});

describe('the core and the Redis script agree on lower, decision for decision', () => {
  const redis = useRedis();
  const rate = policyArb.filter((p) => p.kind !== 'concurrency');
  type LowerOp = { op: 'limit' | 'peek' | 'lower' | 'penalize' | 'reset'; key: number; n: number; dt: number };
  const opArb: fc.Arbitrary<LowerOp> = fc.record({
    op: fc.constantFrom('limit', 'limit', 'limit', 'peek', 'lower', 'lower', 'penalize', 'reset') as fc.Arbitrary<LowerOp['op']>,
    key: fc.integer({ min: 0, max: 1 }),
    n: fc.integer({ min: 0, max: 25 }),
    dt: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.double({ min: 0, max: 50, noNaN: true }), fc.integer({ min: 0, max: 6000 })),
  });
  let run = 0;

  /** An embedded limiter and its Redis twin (a store of its own, the model's clock, asking Redis every time) for `fn`, the store closed after. */
  async function twins(policy: Policy[], clock: () => number, fn: (local: Limiter, remote: Limiter) => Promise<void>): Promise<void> {
    const client = new Redis({ host: redis.server.host, port: redis.server.port, maxRetriesPerRequest: 1 });
    const store = new RedisStore({ client, prefix: `lagree${run++}`, negativeCache: false, ...modelClock });
    try {
      await fn(new Limiter({ policy, clock }), new Limiter({ policy, clock, store }));
    } finally {
      await store.close();
      client.disconnect();
    }
  }

  it('every rate algorithm, 1 or 2 gates: the same decisions, and a lower leaves exactly min(before, remaining)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(rate, { minLength: 1, maxLength: 2 }), fc.array(opArb, { minLength: 1, maxLength: 40 }), async (policy, ops) => {
        let t = 1_700_000_000_000;
        await twins(policy, () => t, async (local, remote) => {
          for (const { op, key, n, dt } of ops) {
            t += dt;
            const k = `k${key}`;
            const cost = 1 + (n % Math.min(...policy.map((p) => p.core.capacity)));
            const before = admissible(await local.peek(k));
            // The same call on both, one after the other.
            for (const limiter of [local, remote]) {
              if (op === 'lower') await limiter.lower(k, n);
              else if (op === 'penalize') await limiter.penalize(k, cost);
              else if (op === 'reset') await limiter.reset(k);
            }
            const [a, b] = op === 'limit' ? [await local.limit(k, { cost }), await remote.limit(k, { cost })] : [await local.peek(k, { cost }), await remote.peek(k, { cost })];
            expect({ ...b, source: 'local' }).toEqual(a);
            if (op !== 'lower') continue;
            const after = admissible(await local.peek(k));
            const want = Math.min(before, n);
            if (policy.some((p) => p.core.code === CODE.gcra)) {
              // GCRA's remaining is floored from times large next to its
              // interval and may read one short (REMAINING_EPSILON is far
              // below an epoch's ulp over a small interval): never above, at most one below.
              expect(after).toBeLessThanOrEqual(want);
              expect(after).toBeGreaterThanOrEqual(want - 1);
            } else {
              expect(after).toBe(want);
            }
          }
        });
      }),
      { numRuns: 80 },
    );
  }, 180_000);
});
