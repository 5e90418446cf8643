// The Redis store against real redis-server processes: agreement with the
// reference model, batching, the negative cache, a 3-master cluster, and
// several OS processes sharing one limit.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Limiter, fixedWindow, gcra, linearWindow } from '../build/lib/src/index.js';
import { RedisStateError, RedisStore } from '../build/lib/src/stores/redis/index.js';
import { concurrencyRunArb, modelClock, opArb, policyArb, runBoth } from './helpers/agreement.js';
import { runPods } from '../support/pods.js';
import { useRedis } from './helpers/use-redis.js';
import { startRedisCluster, type RedisCluster } from '../build/lib/src/cli/redis-server.js';

// These tests check semantics and exactness, not timeouts (test/redis-faults.test.ts
// does): a loaded machine must not send a slow batch to the fallback.
const patient = { timeoutMs: 10_000 } as const;

const db = useRedis();

describe('RedisStore on one server', () => {
  it('agrees with the reference model on every algorithm and stacked gates', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(policyArb, { minLength: 1, maxLength: 3 }), fc.array(opArb, { minLength: 1, maxLength: 60 }), fc.integer({ min: 0, max: 2e12 }), (ps, ops, start) =>
        runBoth(new RedisStore({ ...patient, client: db.client, ...modelClock, prefix: `agree${run++}:` }), ps, ops, start, false),
      ),
      { numRuns: 400 },
    );
  }, 60_000);

  it('agrees with the reference model on concurrency gates: permits taken, renewed and released across lease epochs', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(concurrencyRunArb, fc.integer({ min: 0, max: 2e12 }), ({ policies, ops }, start) =>
        runBoth(new RedisStore({ ...patient, ...modelClock, client: db.client, prefix: `agreec${run++}:` }), policies, ops, start, false),
      ),
      { numRuns: 300 },
    );
  }, 60_000);

  it('decides with Redis TIME and answers cached denials locally', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 2, period: '1s' }), store: new RedisStore({ ...patient, client: db.client, prefix: 'time:' }) });
    const first = await limiter.limit('k');
    expect(first).toMatchObject({ allowed: true, source: 'redis', remaining: 0 });
    const second = await limiter.limit('k');
    expect(second).toMatchObject({ allowed: false, source: 'local' });
    expect(second.retryAfterMs).toBeGreaterThan(400);
    expect(second.retryAfterMs).toBeLessThanOrEqual(500);
    // Without the negative cache, Redis gives the same denial.
    const uncached = new Limiter({ policy: gcra({ limit: 2, period: '1s' }), store: new RedisStore({ ...patient, client: db.client, prefix: 'time:', negativeCache: false }) });
    expect(await uncached.limit('k')).toMatchObject({ allowed: false, source: 'redis' });
  });

  it('batches one tick into one script call per shard, deciding hits on one key in order', async () => {
    const calls: number[] = [];
    const spy = new Redis({ host: db.server.host, port: db.server.port });
    const store = new RedisStore({ ...patient, client: spy, prefix: 'batch:', shards: 4, negativeCache: false });
    // The store sends through the Buffer variant ioredis defines beside the command.
    const original = (spy as unknown as Record<string, (...a: string[]) => Promise<unknown>>).cellgateDecideBuffer!;
    (spy as unknown as Record<string, unknown>).cellgateDecideBuffer = (...args: string[]) => {
      calls.push(args.length);
      return original.apply(spy, args);
    };
    const limiter = new Limiter({ policy: fixedWindow({ limit: 3, window: '1h' }), store });
    const keys = Array.from({ length: 200 }, (_, i) => `user:${i % 50}`);
    const decisions = await Promise.all(keys.map((k) => limiter.limit(k)));
    // One script call per shard touched (4 shards), however many calls were made.
    expect(calls.length).toBeGreaterThanOrEqual(1);
    expect(calls.length).toBeLessThanOrEqual(4);
    // Each of the 50 keys was hit 4 times: the first 3 in order pass, the 4th does not.
    expect(decisions.filter((d) => d.allowed)).toHaveLength(150);
    expect(decisions.slice(150).every((d) => !d.allowed)).toBe(true);
    spy.disconnect();
  });

  it('keeps keys under the prefix and hash tag, expiring with their state', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }), store: new RedisStore({ ...patient, client: db.client, prefix: 'layout:' }) });
    await limiter.limit('user:7');
    const keys = (await db.client.keys('layout:*')).filter((k) => k !== 'layout:{fleet}'); // and the fleet's membership set
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/^layout:\{\d+\}:user:7\|0:100:1:100$/);
    const ttl = await db.client.pttl(keys[0]!);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(100);
  });

  it('refuses a key holding a foreign value with a typed error, deciding the rest of the batch', async () => {
    const store = new RedisStore({ ...patient, client: db.client, prefix: 'foreign:', negativeCache: false });
    const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }), store });
    await limiter.limit('poisoned');
    const [name] = (await db.client.keys('foreign:*')).filter((k) => k !== 'foreign:{fleet}');
    await db.client.del(name!);
    await db.client.hset(name!, 'field', 'value');
    const [bad, good] = await Promise.allSettled([limiter.limit('poisoned'), limiter.limit('fine')]);
    expect(bad.status).toBe('rejected');
    expect((bad as PromiseRejectedResult).reason).toBeInstanceOf(RedisStateError);
    expect(good).toMatchObject({ status: 'fulfilled', value: { allowed: true, source: 'redis' } });
    expect(await db.client.type(name!)).toBe('hash');
    expect(store.stats().state).toBe('closed');
    await db.client.set(name!, 'not 32 bytes');
    await expect(limiter.limit('poisoned')).rejects.toBeInstanceOf(RedisStateError);
  });

  it('recovers after SCRIPT FLUSH (ioredis resends the script)', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }), store: new RedisStore({ ...patient, client: db.client, prefix: 'flush:' }) });
    expect((await limiter.limit('a')).allowed).toBe(true);
    await db.client.script('FLUSH');
    expect((await limiter.limit('b')).allowed).toBe(true);
  });
});

describe('several processes on one key', () => {
  const worker = fileURLToPath(new URL('./fixtures/redis-worker.mjs', import.meta.url));

  async function run(args: string[][]): Promise<Record<string, number>[]> {
    const pods = await runPods(worker, args.map((a) => [String(db.server.port), ...a]));
    return (await Promise.all(pods.map((p) => p.result))) as Record<string, number>[];
  }

  it('admit exactly what the policy allows, no more, no fewer', async () => {
    // 4 pods x 400 requests on one key against "500 within 1h".
    const results = await run(Array.from({ length: 4 }, () => ['hammer', 'shared', '400']));
    const total = results.reduce((sum, r) => sum + r.admitted!, 0);
    expect(results).toHaveLength(4);
    expect(total).toBe(500);
  }, 30_000);

  it('fire at exactly spaced moments when they reserve one key', async () => {
    // 6 pods reserve on "10 per second": they must fire 100 ms apart by Redis's
    // clock. Each pod sleeps from when its answer arrived, so answers that
    // arrive at different times on a busy machine blur the gaps by some ms; a
    // herd would fire all within a few ms.
    const results = await run(Array.from({ length: 6 }, () => ['reserve', 'paced']));
    expect(results.every((r) => r.allowed)).toBe(true);
    const fired = results.map((r) => r.firedAt!).sort((a, b) => a - b);
    for (let i = 1; i < fired.length; i++) {
      const gap = fired[i]! - fired[i - 1]!;
      // A herd would fire within a few ms; a pod woken late on a busy machine shortens the next gap.
      expect(gap).toBeGreaterThan(40);
      expect(gap).toBeLessThan(200);
    }
    expect(fired[5]! - fired[0]!).toBeGreaterThan(400);
    expect(fired[5]! - fired[0]!).toBeLessThan(650);
  }, 30_000);
});

describe('RedisStore on a 3-master cluster', () => {
  let cluster: RedisCluster;
  let redis: Cluster;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
    redis = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 } });
  }, 60_000);

  afterAll(async () => {
    redis?.disconnect();
    await cluster?.stop();
  });

  it('spreads keys over every master with no cross-slot errors, deciding exactly', async () => {
    const limiter = new Limiter({ policy: fixedWindow({ limit: 2, window: '1h' }), store: new RedisStore({ ...patient, client: redis, prefix: 'c:', negativeCache: false }) });
    const keys = Array.from({ length: 3000 }, (_, i) => `tenant:${i % 1000}`);
    const decisions = await Promise.all(keys.map((k) => limiter.limit(k)));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(2000);
    expect(decisions.every((d) => d.source === 'redis')).toBe(true);
    const sizes = await Promise.all(redis.nodes('master').map((node) => node.dbsize()));
    expect(sizes).toHaveLength(3);
    for (const size of sizes) expect(size).toBeGreaterThan(100);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(1000 + 1); // and the fleet's membership set
  }, 30_000);

  it('agrees with the reference model through the cluster', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(policyArb, { minLength: 1, maxLength: 2 }), fc.array(opArb, { minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 2e12 }), (ps, ops, start) =>
        runBoth(new RedisStore({ ...patient, client: redis, ...modelClock, prefix: `ca${run++}:` }), ps, ops, start, false),
      ),
      { numRuns: 100 },
    );
  }, 60_000);

  it('linear windows hold across masters', async () => {
    const limiter = new Limiter({ policy: linearWindow({ limit: 1, within: '1h' }), store: new RedisStore({ ...patient, client: redis, prefix: 'cl:' }) });
    const first = await Promise.all(['a', 'b', 'c', 'd'].map((k) => limiter.limit(k)));
    const second = await Promise.all(['a', 'b', 'c', 'd'].map((k) => limiter.limit(k)));
    expect(first.every((d) => d.allowed)).toBe(true);
    expect(second.every((d) => !d.allowed)).toBe(true);
  });
});

describe('pods starting together', () => {
  it('4 processes starting cold on one GCRA key with default options admit within its bound, none falling back at birth', async () => {
    // Each pod connects, loads the script and calls at the same moment: the
    // first batches take longer than timeoutMs on a busy machine, which once
    // opened every breaker and let each pod admit its full fallback share.
    const worker = fileURLToPath(new URL('./fixtures/cold-worker.mjs', import.meta.url));
    // Two CPU hogs make the machine busy, and Redis answers its first
    // connections 300 ms late (frozen while the pods start): longer than
    // timeoutMs (100 ms), as a Redis busy with a fleet's reconnects would.
    const hogs = Array.from({ length: 2 }, () => spawn(process.execPath, ['-e', 'const end = Date.now() + 4000; while (Date.now() < end);'], { stdio: 'ignore' }));
    let pods;
    try {
      pods = await runPods(worker, Array.from({ length: 4 }, () => [String(db.server.port), 'deploy', '1500']), 30_000);
      // "go" is sent: the pods are making their clients now.
      db.server.kill('SIGSTOP');
      const thaw = setTimeout(() => db.server.kill('SIGCONT'), 300);
      try {
        await Promise.all(pods.map((p) => p.result));
      } finally {
        clearTimeout(thaw);
        db.server.kill('SIGCONT');
      }
    } finally {
      for (const hog of hogs) hog.kill('SIGKILL');
    }
    const results = (await Promise.all(pods.map((p) => p.result))) as { admitted: number; opens: number; sources: Record<string, number>; firstAt: number; lastAt: number }[];
    expect(results).toHaveLength(4);
    const admitted = results.reduce((n, r) => n + r.admitted, 0);
    const first = Math.min(...results.map((r) => r.firstAt));
    const last = Math.max(...results.map((r) => r.lastAt));
    // GCRA 100/s, burst 10: at most the burst plus one per 10 ms between the
    // first and the last admission on Redis's clock, which lie within the
    // pods' [first admitted call sent, last admission answered] (one system
    // clock on this machine; +1 for the milliseconds' rounding). Taken when
    // answers arrived, a busy pod reading its first answers late shrank the
    // span below what Redis decided over (202 admitted against a bound of 134).
    const bound = 10 + Math.floor((last - first) / 10) + 1;
    console.log(`cold start: ${admitted} admitted over ${last - first} ms (bound ${bound}); opens ${results.map((r) => r.opens).join(',')}; sources ${JSON.stringify(results.map((r) => r.sources))}`);
    expect(admitted).toBeLessThanOrEqual(bound);
    expect(admitted).toBeGreaterThan(bound / 2); // and the fleet did admit: not silenced
    for (const r of results) {
      expect(r.opens).toBe(0);
      expect(r.sources.fallback ?? 0).toBe(0);
    }
  }, 60_000);
});
