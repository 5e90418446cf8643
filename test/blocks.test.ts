// Penalties and blocks (issue #17, part 3): limiter.penalize, block, unblock
// and the blockAfter escalation, in the embedded store and through Redis,
// where several OS processes share them; attacked as a client would (keys
// of its choosing, floods, a full table) and as a bad day would (Redis gone).
import { fileURLToPath } from 'node:url';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ArgumentError, ConfigError, EmbeddedStore, Limiter, StoreFullError, UnknownOptionError,
  concurrency, fixedWindow, gcra, slidingWindow, tokenBucket, type Decision, type Policy,
} from '../build/lib/src/index.js';
import { RedisStore, RedisUnavailableError } from '../build/lib/src/stores/redis/index.js';
import { runPods } from '../support/pods.js';
import { startRedisCluster, type RedisCluster } from '../build/lib/src/cli/redis-server.js';
import { useRedis } from './helpers/use-redis.js';
import { modelClock, policyArb } from './helpers/agreement.js';
import fc from 'fast-check';

const worker = fileURLToPath(new URL('../support/blocks-worker.mjs', import.meta.url));

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

const outcome = (d: Decision) => (d.allowed ? 'allowed' : d.reason === 'blocked' ? 'blocked' : 'denied');

describe('embedded: block, unblock, penalize, blockAfter', () => {
  it('a block denies with reason blocked, charges nothing, ends when it says, and touches no other key', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: fixedWindow({ limit: 3, window: '10s' }), clock: clock.now });
    expect(limiter.limitSync('a').allowed).toBe(true);
    await limiter.block('a', '5s');
    const d = limiter.limitSync('a');
    expect(d).toMatchObject({ allowed: false, reason: 'blocked', remaining: 0, gate: 0, retryAfterMs: 5000 });
    expect(limiter.limitSync('b').allowed).toBe(true);
    expect((await limiter.peek('a')).reason).toBe('blocked');
    clock.advance(5000);
    // Nothing was charged while blocked: 2 of the window's 3 are left.
    expect([1, 2, 3].map(() => outcome(limiter.limitSync('a')))).toEqual(['allowed', 'allowed', 'denied']);
  });

  it('unblock lifts it at once; a later block replaces an earlier one, shorter or longer', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }), clock: clock.now });
    await limiter.block('k', '1h');
    await limiter.block('k', '2s');
    expect(limiter.limitSync('k').retryAfterMs).toBe(2000);
    await limiter.unblock('k');
    expect(limiter.limitSync('k').allowed).toBe(true);
    await limiter.unblock('never-blocked'); // nothing to lift: no error, no state
    expect(limiter.limitSync('never-blocked').allowed).toBe(true);
  });

  it('reset forgets a block with the rest of the key', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }) });
    await limiter.block('k', '1h');
    await limiter.reset('k');
    expect(limiter.limitSync('k').allowed).toBe(true);
  });

  it('a blocked reservation books the moment the block ends, or is refused within a shorter maxWaitMs', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }), clock: clock.now });
    await limiter.block('k', '3s');
    expect(await limiter.reserve('k', { maxWaitMs: 1000 })).toMatchObject({ allowed: false });
    const r = await limiter.reserve('k');
    expect(r.allowed).toBe(true);
    expect(r.waitMs).toBe(3000);
  });

  it('blockAfter blocks at the denials-th denial within the window, and only the limit’s denials count', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: fixedWindow({ limit: 2, window: '1s' }), clock: clock.now, blockAfter: { denials: 3, within: '10s', duration: '1m' } });
    const seen = [1, 2, 3, 4, 5, 6].map(() => outcome(limiter.limitSync('a')));
    expect(seen).toEqual(['allowed', 'allowed', 'denied', 'denied', 'denied', 'blocked']);
    // Blocked requests are not counted: the block ends when it said.
    for (let i = 0; i < 100; i++) limiter.limitSync('a');
    clock.advance(60_000 - 1);
    expect(outcome(limiter.limitSync('a'))).toBe('blocked');
    clock.advance(1);
    expect(outcome(limiter.limitSync('a'))).toBe('allowed');
  });

  it('blockAfter forgets denials that fall outside `within`, and peeks never count', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: fixedWindow({ limit: 1, window: '1s' }), clock: clock.now, blockAfter: { denials: 3, within: '2s', duration: '1m' } });
    for (let round = 0; round < 5; round++) {
      limiter.limitSync('a'); // allowed
      limiter.limitSync('a'); // denied: one
      limiter.limitSync('a'); // denied: two
      for (let i = 0; i < 10; i++) await limiter.peek('a');
      clock.advance(2000); // the count's window closes before a third
    }
    expect(outcome(limiter.limitSync('a'))).toBe('allowed');
  });

  it('blockAfter through limitManySync counts each denial in order', () => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: fixedWindow({ limit: 1, window: '1s' }), clock: clock.now, blockAfter: { denials: 2, within: '10s', duration: '1m' } });
    const ds = limiter.limitManySync(['a', 'a', 'b', 'a', 'a']);
    expect(ds.map(outcome)).toEqual(['allowed', 'denied', 'allowed', 'denied', 'blocked']);
  });

  it('blocks many keys chosen by a client without one escaping or another being locked out', () => {
    const clock = manualClock();
    const store = new EmbeddedStore({ maxKeys: 4096 });
    const limiter = new Limiter({ policy: fixedWindow({ limit: 1, window: '1m' }), store, clock: clock.now, blockAfter: { denials: 2, within: '1m', duration: '1m' } });
    const keys = Array.from({ length: 500 }, (_, i) => (i % 3 === 0 ? `k\u{1F600}${i}` : i % 3 === 1 ? `k\ud800${i}` : `k${'x'.repeat(i % 200)}${i}`));
    for (const key of keys) for (let i = 0; i < 3; i++) limiter.limitSync(key);
    expect(keys.every((key) => limiter.limitSync(key).reason === 'blocked')).toBe(true);
    expect(limiter.limitSync('innocent').allowed).toBe(true);
  });

  it('a full table neither bans on its refusals nor evicts another key for a block', async () => {
    const clock = manualClock();
    const store = new EmbeddedStore({ maxKeys: 8, whenFull: 'deny' });
    const limiter = new Limiter({ policy: fixedWindow({ limit: 5, window: '1m' }), store, clock: clock.now, blockAfter: { denials: 1, within: '1m', duration: '1m' } });
    const refused: string[] = [];
    for (let i = 0; i < 200; i++) if (!limiter.limitSync(`fill${i}`).allowed) refused.push(`fill${i}`);
    expect(refused.length).toBeGreaterThan(0);
    // Refused for room, not for their own denials (denials: 1 would block at
    // once): once the table has room, none of them is blocked.
    clock.advance(60_000);
    expect(refused.map((key) => limiter.limitSync(key).reason).filter((r) => r !== undefined)).toEqual([]);
    // Full again: a block that has no room is refused with a typed error, not recorded by evicting.
    for (let i = 0; i < 200; i++) limiter.limitSync(`again${i}`);
    let full: unknown;
    for (let i = 0; i < 50 && full === undefined; i++) await limiter.block(`new${i}`, '1m').catch((e: unknown) => (full = e));
    expect(full).toBeInstanceOf(StoreFullError);
  });

  it.each<[string, Policy]>([
    ['gcra', gcra({ limit: 2, period: '1s' })],
    ['tokenBucket', tokenBucket({ capacity: 4, refill: 2, period: '1s' })],
    ['fixedWindow', fixedWindow({ limit: 4, window: '1s' })],
    ['slidingWindow', slidingWindow({ limit: 4, window: '1s' })],
  ])('penalize (%s): the key owes past its capacity and waits it off; others are untouched', async (_name, policy) => {
    const clock = manualClock();
    const limiter = new Limiter({ policy, clock: clock.now });
    await limiter.penalize('k', 10);
    const d = limiter.limitSync('k');
    expect(d.allowed).toBe(false);
    expect(d.reason).toBeUndefined();
    expect(d.retryAfterMs).toBeGreaterThan(999);
    expect(limiter.limitSync('other').allowed).toBe(true);
    clock.advance(d.retryAfterMs);
    expect(limiter.limitSync('k').allowed).toBe(true);
  });

  it('a penalty that would overflow a count saturates instead of wrapping round to a free key', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: slidingWindow({ limit: 4, window: '1h' }), clock: clock.now });
    for (let i = 0; i < 6; i++) await limiter.penalize('k', 1_000_000_000);
    expect(limiter.limitSync('k').allowed).toBe(false);
    clock.advance(1_800_000);
    expect(limiter.limitSync('k').allowed).toBe(false);
  });

  it('rejects bad input with a typed error naming the parameter, changing nothing', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }) });
    for (const bad of [0, -1, Number.NaN, Infinity, 1001 * 86_400_000, '1 fortnight', null, {}]) {
      await expect(limiter.block('k', bad as never)).rejects.toMatchObject({ name: 'ArgumentError', parameter: 'duration' });
    }
    for (const bad of [0, -1, 1.5, Number.NaN, 1e10, '3', null]) {
      await expect(limiter.penalize('k', bad as never)).rejects.toMatchObject({ name: 'ArgumentError', parameter: 'cost' });
    }
    for (const key of ['', 42, 'x'.repeat(513), null]) {
      await expect(limiter.block(key as never, '1s')).rejects.toBeInstanceOf(ArgumentError);
      await expect(limiter.unblock(key as never)).rejects.toBeInstanceOf(ArgumentError);
      await expect(limiter.penalize(key as never, 1)).rejects.toBeInstanceOf(ArgumentError);
    }
    expect(limiter.limitSync('k').allowed).toBe(true);
    const policy = gcra({ limit: 1, period: '1s' });
    expect(() => new Limiter({ policy, blockAfter: { denials: 0, within: '1s', duration: '1s' } })).toThrow(expect.objectContaining({ parameter: 'blockAfter.denials' }));
    expect(() => new Limiter({ policy, blockAfter: { denials: 2.5, within: '1s', duration: '1s' } })).toThrow(expect.objectContaining({ parameter: 'blockAfter.denials' }));
    expect(() => new Limiter({ policy, blockAfter: { denials: 2, within: 0, duration: '1s' } })).toThrow(expect.objectContaining({ parameter: 'blockAfter.within' }));
    expect(() => new Limiter({ policy, blockAfter: { denials: 2, within: '1s', duration: 'soon' as never } })).toThrow(expect.objectContaining({ parameter: 'blockAfter.duration' }));
    expect(() => new Limiter({ policy, blockAfter: { denials: 2, within: '1s', duration: '1s', forever: true } as never })).toThrow(UnknownOptionError);
    expect(() => new Limiter({ policy, blockAfter: 5 as never })).toThrow(ConfigError);
    // A waiting acquire() is denied at every try: not abuse, so refused together.
    expect(() => new Limiter({ policy: [policy, concurrency({ limit: 2 })], blockAfter: { denials: 2, within: '1s', duration: '1s' } })).toThrow(expect.objectContaining({ parameter: 'blockAfter' }));
  });
});

describe('through Redis: one block for the whole fleet', () => {
  const redis = useRedis();
  const clients: Redis[] = [];
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });
  const storeOf = (prefix: string, options: Record<string, unknown> = {}) => {
    const client = new Redis({ host: redis.server.host, port: redis.server.port, maxRetriesPerRequest: 1 });
    clients.push(client);
    return new RedisStore({ client, prefix, ...options });
  };

  it('a block set through one store holds in another at once, and an unblock reaches it within 1 s', async () => {
    const a = storeOf('blk1');
    const b = storeOf('blk1');
    const policy = gcra({ limit: 100, period: '1s', burst: 100 });
    const la = new Limiter({ policy, store: a });
    const lb = new Limiter({ policy, store: b });
    expect((await lb.limit('ip')).allowed).toBe(true);
    await la.block('ip', '1m');
    const d = await lb.limit('ip');
    expect(d).toMatchObject({ allowed: false, reason: 'blocked', source: 'redis' });
    expect(d.retryAfterMs).toBeGreaterThan(59_000);
    // b's mirror answers the flood of a blocked key itself...
    const local = await lb.limit('ip');
    expect(local).toMatchObject({ reason: 'blocked', source: 'local' });
    await la.unblock('ip');
    await new Promise((r) => setTimeout(r, 1100));
    // ...for at most a second after Redis last said so.
    expect((await lb.limit('ip')).allowed).toBe(true);
    // A limiter of other gates shares no block.
    const other = new Limiter({ policy: gcra({ limit: 5, period: '1s' }), store: b });
    await la.block('ip', '1m');
    expect((await other.limit('ip')).allowed).toBe(true);
    await Promise.all([a.close(), b.close()]);
  });

  it('penalize owes in Redis, seen by every store', async () => {
    const a = storeOf('blk2');
    const b = storeOf('blk2');
    const policy = fixedWindow({ limit: 5, window: '1m' });
    await new Limiter({ policy, store: a }).penalize('k', 20);
    expect((await new Limiter({ policy, store: b }).limit('k')).allowed).toBe(false);
    await Promise.all([a.close(), b.close()]);
  });

  it('4 processes flooding one key: the fleet admits the limit, counts exactly `denials` denials, then blocks; a quiet key is untouched', async () => {
    const prefix = `blk3-${Date.now()}`;
    const pods = await runPods(worker, [0, 1, 2, 3].map(() => [String(redis.server.port), prefix, '40', 'abuser']));
    const results = (await Promise.all(pods.map((p) => p.result))) as Record<string, { allowed: number; denied: number; blocked: number }>[];
    expect(results.every((r) => r !== undefined)).toBe(true);
    const sum = (f: 'allowed' | 'denied' | 'blocked') => results.reduce((n, r) => n + r.abuser![f], 0);
    console.log(`4 pods x 40 calls, linearWindow 10 within 1 min, blockAfter 20 denials: allowed ${sum('allowed')}, denied ${sum('denied')}, blocked ${sum('blocked')}; per pod ${JSON.stringify(results.map((r) => r.abuser))}`);
    expect(sum('allowed')).toBe(10);
    expect(sum('denied')).toBe(20);
    expect(sum('blocked')).toBe(130);
    const quiet = await runPods(worker, [[String(redis.server.port), prefix, '5', 'quiet']]);
    const q = (await quiet[0]!.result) as Record<string, { allowed: number; blocked: number }>;
    expect(q.quiet).toMatchObject({ allowed: 5, blocked: 0 });
  }, 60_000);

  it('with Redis gone, block() rejects typed and blocks nothing; penalize is kept by the fallback and charged to Redis after', async () => {
    const client = new Redis({ host: redis.server.host, port: redis.server.port, maxRetriesPerRequest: 1 });
    const store = new RedisStore({ client, prefix: 'blk4', timeoutMs: 100, fallback: { nodes: 1 } });
    // GCRA: a debt runs on past any window boundary (a fixed window's would
    // end with its window, and the charge is settled as of its own time).
    const policy = gcra({ limit: 5, period: '1m', burst: 5 });
    const limiter = new Limiter({ policy, store });
    await limiter.block('held', '1m');
    await redis.client.client('PAUSE', 3000, 'ALL');
    try {
      // Open the breaker.
      for (let i = 0; i < 5; i++) await limiter.limit(`probe${i}`);
      await expect(limiter.block('k', '1m')).rejects.toBeInstanceOf(RedisUnavailableError);
      await limiter.penalize('owed', 50);
      expect(await limiter.limit('owed')).toMatchObject({ allowed: false, source: 'fallback' });
      // A block Redis reported stays with the fallback through the outage.
      expect(await limiter.limit('held')).toMatchObject({ allowed: false, reason: 'blocked', source: 'fallback' });
    } finally {
      await redis.client.client('UNPAUSE');
    }
    await new Promise((r) => setTimeout(r, 1500));
    // Another store, asking Redis itself every time (no mirror) and charging
    // nothing (peek): denied only once the penalty reached Redis.
    const otherStore = storeOf('blk4', { negativeCache: false });
    const other = new Limiter({ policy, store: otherStore });
    let seen: Decision | undefined;
    for (let i = 0; i < 40; i++) {
      seen = await other.peek('owed');
      if (!seen.allowed && seen.source === 'redis') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen).toMatchObject({ allowed: false, source: 'redis' });
    expect((await other.peek('fresh')).allowed).toBe(true);
    await Promise.all([store.close(), otherStore.close()]);
    client.disconnect();
  }, 30_000);

  it('leased mode refuses blockAfter, and takes blocks and penalties through Redis', async () => {
    const store = storeOf('blk5', { mode: 'leased' });
    const policy = fixedWindow({ limit: 100, window: '1m' });
    expect(() => new Limiter({ policy, store, blockAfter: { denials: 2, within: '1s', duration: '1s' } })).toThrow(expect.objectContaining({ parameter: 'blockAfter' }));
    const limiter = new Limiter({ policy, store });
    await limiter.block('k', '1m');
    const strict = new Limiter({ policy, store: storeOf('blk5') });
    expect((await strict.limit('k')).reason).toBe('blocked');
    await store.close();
  });
});

describe('the core and the Redis script agree on blocks and penalties, decision for decision', () => {
  const redis = useRedis();
  const rate = policyArb.filter((p) => p.kind !== 'concurrency');
  type BlockOp = { op: 'limit' | 'peek' | 'block' | 'unblock' | 'penalize' | 'reserve' | 'reset'; key: number; n: number; dt: number };
  const blockOpArb: fc.Arbitrary<BlockOp> = fc.record({
    op: fc.constantFrom('limit', 'limit', 'limit', 'limit', 'peek', 'block', 'unblock', 'penalize', 'reserve', 'reset') as fc.Arbitrary<BlockOp['op']>,
    key: fc.integer({ min: 0, max: 2 }),
    n: fc.integer({ min: 1, max: 5000 }),
    dt: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 6000 })),
  });
  let run = 0;

  it('for every rate algorithm, with and without blockAfter', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(rate, { minLength: 1, maxLength: 2 }),
        fc.option(fc.record({ denials: fc.integer({ min: 1, max: 4 }), within: fc.integer({ min: 1, max: 5000 }), duration: fc.integer({ min: 1, max: 5000 }) })),
        fc.array(blockOpArb, { minLength: 1, maxLength: 40 }),
        async (policy, blockAfter, ops) => {
          let t = 1_700_000_000_000;
          const clock = () => t;
          const extra = blockAfter === null ? {} : { blockAfter };
          const local = new Limiter({ policy, clock, ...extra });
          const client = new Redis({ host: redis.server.host, port: redis.server.port, maxRetriesPerRequest: 1 });
          const store = new RedisStore({ client, prefix: `agree${run++}`, negativeCache: false, ...modelClock });
          const remote = new Limiter({ policy, clock, store, ...extra });
          try {
            for (const { op, key, n, dt } of ops) {
              t += dt;
              const k = `k${key}`;
              const cost = 1 + (n % Math.min(...policy.map((p) => p.core.capacity)));
              if (op === 'limit' || op === 'peek') {
                const [a, b] = [await local[op](k, { cost }), await remote[op](k, { cost })];
                expect({ ...b, source: 'local' }).toEqual(a);
              } else if (op === 'reserve') {
                const [a, b] = [await local.reserve(k, { cost, maxWaitMs: n }), await remote.reserve(k, { cost, maxWaitMs: n })];
                expect({ ...b, at: a.at, source: 'local' }).toEqual(a);
              } else if (op === 'block') {
                await local.block(k, n);
                await remote.block(k, n);
              } else if (op === 'unblock') {
                await local.unblock(k);
                await remote.unblock(k);
              } else if (op === 'penalize') {
                await local.penalize(k, cost);
                await remote.penalize(k, cost);
              } else {
                await local.reset(k);
                await remote.reset(k);
              }
            }
          } finally {
            await store.close();
            client.disconnect();
          }
        },
      ),
      { numRuns: 60 },
    );
  }, 120_000);
});

describe('blocks on many shards: one server, and a 3-master Cluster', () => {
  const redis = useRedis();
  let cluster: RedisCluster | undefined;
  let clusterClient: Cluster | undefined;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
    clusterClient = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 } });
  }, 60_000);
  afterAll(async () => {
    clusterClient?.disconnect();
    await cluster?.stop();
  });

  /** Blocks every other key of 200 through one store; another store's limitMany sees exactly those, in batches spanning many shards. */
  async function blocksExactly(makeClient: () => Redis | Cluster, prefix: string): Promise<void> {
    const policy = fixedWindow({ limit: 100, window: '1h' });
    const keys = Array.from({ length: 200 }, (_, i) => `tenant:${i}:\u00e9`);
    const [ca, cb] = [makeClient(), makeClient()];
    const a = new RedisStore({ client: ca, prefix, timeoutMs: 10_000 });
    const b = new RedisStore({ client: cb, prefix, timeoutMs: 10_000 });
    const blocker = new Limiter({ policy, store: a });
    await Promise.all(keys.filter((_, i) => i % 2 === 0).map((k) => blocker.block(k, '1h')));
    const ds = await new Limiter({ policy, store: b }).limitMany(keys);
    expect(ds.map((d, i) => [i % 2 === 0, d.reason === 'blocked', d.allowed !== (i % 2 === 0)])).toEqual(keys.map((_, i) => [i % 2 === 0, i % 2 === 0, true]));
    await Promise.all([a.close(), b.close()]);
    for (const c of [ca, cb]) if (c !== clusterClient) c.disconnect();
  }

  it('one server (one call decides several shards)', async () => {
    await blocksExactly(() => new Redis({ host: redis.server.host, port: redis.server.port, maxRetriesPerRequest: 1 }), 'blk6');
  });

  it('a Cluster (the marker and the states share each shard’s slot)', async () => {
    await blocksExactly(() => clusterClient!, 'blk7');
  });
});
