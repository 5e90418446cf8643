// Leased mode against a real Redis: units are debited in Redis before a
// process spends them, so several processes on one key never admit more than
// the policy allows over the test window, and they use most of it, even when
// one of them dies holding a lease.
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Limiter, fixedWindow, gcra, tokenBucket } from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { runPods } from '../support/pods.js';
import { useRedis } from './helpers/use-redis.js';
import { startRedis } from '../build/lib/src/cli/redis-server.js';

const db = useRedis();

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('leased mode in one process', () => {
  it('spends a lease synchronously once it holds one, and leases on demand', async () => {
    const store = new RedisStore({ client: db.client, prefix: 'l1:', mode: 'leased', timeoutMs: 10_000 });
    const limiter = new Limiter({ policy: fixedWindow({ limit: 100, window: '1h' }), store });
    // No lease yet: limitSync cannot wait, so it denies and leases in the background.
    expect(limiter.limitSync('k')).toMatchObject({ allowed: false, source: 'lease' });
    let d = limiter.limitSync('k');
    for (let i = 0; i < 200 && !d.allowed; i++) {
      await tick();
      d = limiter.limitSync('k');
    }
    expect(d).toMatchObject({ allowed: true, source: 'lease' });
    expect(store.stats().decisions.redis).toBe(0); // no call waited on Redis
    // limit() on a key without a lease waits for one, then spends from it.
    expect(await limiter.limit('other')).toMatchObject({ allowed: true, source: 'lease' });
  });

  it('debits Redis before spending: a strict limiter on the same key sees the leased units gone', async () => {
    const policy = fixedWindow({ limit: 10, window: '1h' });
    const leased = new Limiter({ policy, store: new RedisStore({ client: db.client, prefix: 'l2:', mode: 'leased', lease: { maxShare: 0.5 }, timeoutMs: 10_000 }) });
    const strict = new Limiter({ policy, store: new RedisStore({ client: db.client, prefix: 'l2:', timeoutMs: 10_000, negativeCache: false }) });
    // A lease is at most half of the limit here.
    expect((await leased.limit('k')).allowed).toBe(true);
    const seen = await strict.peek('k');
    expect(seen.remaining).toBeLessThan(10);
    // 10, less the first lease (1 unit: a cold key's), less the prefetched next
    // one (at most 5), less the 1 that peek would take.
    expect(seen.remaining).toBeGreaterThanOrEqual(3);
    // Draining the key by both never admits more than 10 in all.
    let admitted = 1;
    for (let i = 0; i < 30; i++) {
      if ((await leased.limit('k')).allowed) admitted++;
      if ((await strict.limit('k')).allowed) admitted++;
    }
    expect(admitted).toBe(10);
  });

  it('leases GCRA slots ahead and spends them at the policy spacing, not in a burst', async () => {
    // The limiter's clock, also Redis's (time: 'client'): each decision's moment is known exactly.
    let now = 1_700_000_000_000;
    const store = new RedisStore({ client: db.client, prefix: 'l3:', mode: 'leased', time: 'client', lease: { maxShare: 1, ttlMs: 400 }, timeoutMs: 10_000 });
    const limiter = new Limiter({ policy: gcra({ limit: 50, period: '1s' }), store, clock: () => now }); // one every 20 ms, burst 1
    const times: number[] = [];
    for (let i = 0; i < 1000; i++, now += 0.5) {
      if ((await limiter.limit('k')).allowed) times.push(now);
      await new Promise((resolve) => setImmediate(resolve));
    }
    // Over 500 ms: at most 1 + 500 / 20 admissions, never two closer than 20 ms, and most of them used.
    expect(times.length).toBeLessThanOrEqual(26);
    expect(times.length).toBeGreaterThanOrEqual(20);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(20);
    // Leased: few round trips, most decisions from the lease.
    expect(store.stats().decisions.lease).toBeGreaterThan(900);
  });

  it('never carries leased units across a window or refill boundary', async () => {
    // A fake clock shared with Redis (time: 'client'), stepping 5 ms per call.
    let now = 1_700_000_000_000;
    const store = new RedisStore({ client: db.client, prefix: 'l5:', mode: 'leased', time: 'client', lease: { maxShare: 1, ttlMs: 10_000 }, timeoutMs: 10_000 });
    const policies = {
      bucket: tokenBucket({ capacity: 10, period: '1s', mode: 'interval' }),
      window: fixedWindow({ limit: 10, window: '1s' }),
      stacked: [gcra({ limit: 100, period: '1s', burst: 10 }), fixedWindow({ limit: 15, window: '1s' })],
    };
    for (const [name, policy] of Object.entries(policies)) {
      const limiter = new Limiter({ policy, store, clock: () => now });
      const perSecond = new Map<number, number>();
      const call = async () => {
        if ((await limiter.limit(name)).allowed) perSecond.set(Math.floor(now / 1000), (perSecond.get(Math.floor(now / 1000)) ?? 0) + 1);
        await new Promise((resolve) => setImmediate(resolve));
      };
      now = Math.ceil(now / 1000) * 1000;
      // A quiet second: the process leases more than it spends, and holds the rest at the boundary...
      for (let i = 0; i < 5; i++, now += 200) await call();
      // ...then busy seconds: the units held must not be spent after the boundary.
      for (let i = 0; i < 400; i++, now += 5) await call();
      const limit = name === 'stacked' ? 15 : 10;
      expect(perSecond.size).toBe(3);
      for (const count of perSecond.values()) expect(count).toBeLessThanOrEqual(limit);
      expect(Math.max(...perSecond.values())).toBe(limit);
    }
  });

  it('falls back exactly as strict mode when Redis is gone', async () => {
    const own = await startRedis();
    const redis = new Redis({ host: own.host, port: own.port, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    redis.on('error', () => {});
    const store = new RedisStore({ client: redis, prefix: 'l4:', mode: 'leased', lease: { maxShare: 1 }, timeoutMs: 100, fallback: { nodes: 1 } });
    const limiter = new Limiter({ policy: fixedWindow({ limit: 100, window: '1h' }), store });
    try {
      expect((await limiter.limit('held')).source).toBe('lease');
      // Spending the first lease (1 unit: a cold key's) prefetched a larger one, sized by the
      // demand seen; the second call spends from it, waiting for it if it has not landed.
      expect((await limiter.limit('held')).source).toBe('lease');
      own.kill('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 100));
      const fresh = await limiter.limit('fresh');
      expect(fresh).toMatchObject({ allowed: true, source: 'fallback' });
      expect(limiter.limitSync('fresh2')).toMatchObject({ allowed: true, source: 'fallback' });
      // Units already leased were debited in Redis: spending them stays within the limit.
      expect(await limiter.limit('held')).toMatchObject({ source: 'lease' });
    } finally {
      store.close();
      redis.disconnect();
      await own.stop();
    }
  });
});

describe('leased mode across processes', () => {
  const worker = fileURLToPath(new URL('../support/leased-worker.mjs', import.meta.url));
  const DURATION_MS = 2000;

  async function run(policy: string, key: string, pods: number, killAfterMs?: number, durationMs = DURATION_MS) {
    const running = await runPods(worker, Array.from({ length: pods }, () => [String(db.server.port), policy, key, String(durationMs)]));
    if (killAfterMs !== undefined) setTimeout(() => running[0]!.process.kill('SIGKILL'), killAfterMs);
    const results = (await Promise.all(running.map((p) => p.result))).filter((r) => r !== undefined) as { admitted: number[]; sources: Record<string, number> }[];
    const admitted = results.flatMap((r) => r.admitted).sort((a, b) => a - b);
    // From the moment the pods were told to go to the last admission (on Redis's clock, the system clock here).
    return { results, elapsedMs: admitted[admitted.length - 1]! - running[0]!.wentAt, admitted };
  }

  it('4 processes on one GCRA key: never more than the policy allows over the run, and nearly all of it', async () => {
    // gcra 200/s, burst 5: at most 5 + elapsed / 5 ms (+1 for the clocks' rounding) over the run.
    const { results, elapsedMs, admitted } = await run('gcra', 'g', 4);
    expect(results).toHaveLength(4);
    const bound = 5 + Math.floor(elapsedMs / 5) + 1;
    const allowance = 5 + DURATION_MS / 5;
    expect(admitted.length).toBeLessThanOrEqual(bound);
    expect(admitted.length).toBeGreaterThanOrEqual(0.8 * allowance);
    // Every pod got a share, from leases.
    for (const r of results) expect(r.admitted.length).toBeGreaterThan(0);
    console.log(`leased gcra, 4 processes: ${admitted.length} admitted over ${elapsedMs.toFixed(0)} ms (bound ${bound}, utilization ${((100 * admitted.length) / allowance).toFixed(1)}% of ${allowance})`);
  }, 30_000);

  it('4 processes on one fixed-window key: no window over its limit', async () => {
    // fixedWindow 300 per 1 s window, aligned on Redis's clock. 3.5 s of calls: whenever the
    // first admission falls in its window, the run reaches well into the window after next, so
    // at least one whole window lies between them even if a lease arrives late on a busy machine
    // (with 2 s, a first admission early in a window left the next boundary a few ms before the end).
    const { results, admitted } = await run('fixed', 'f', 4, undefined, 3500);
    expect(results).toHaveLength(4);
    const windows = new Map<number, number>();
    for (const t of admitted) windows.set(Math.floor(t / 1000), (windows.get(Math.floor(t / 1000)) ?? 0) + 1);
    for (const count of windows.values()) expect(count).toBeLessThanOrEqual(300);
    // The run spans at least one whole window: it is used nearly in full.
    const first = Math.floor(admitted[0]! / 1000);
    const whole = [...windows].filter(([w]) => w > first && w < Math.floor(admitted[admitted.length - 1]! / 1000));
    expect(whole.length).toBeGreaterThan(0);
    for (const [, count] of whole) expect(count).toBeGreaterThanOrEqual(0.8 * 300);
    console.log(`leased fixed window, 4 processes: per window ${[...windows.values()].join(', ')} (limit 300)`);
  }, 30_000);

  it('one of 4 processes killed holding a lease: the rest stay within the policy and use most of it', async () => {
    const { results, elapsedMs, admitted } = await run('gcra', 'd', 4, 700);
    expect(results).toHaveLength(3);
    const allowance = 5 + DURATION_MS / 5;
    expect(admitted.length).toBeLessThanOrEqual(5 + Math.floor(elapsedMs / 5) + 1);
    // The dead process had about a quarter of the first 700 ms, and its lease is lost.
    expect(admitted.length).toBeGreaterThanOrEqual(0.7 * allowance);
    console.log(`leased gcra, 1 of 4 processes killed at 700 ms: survivors admitted ${admitted.length} (${((100 * admitted.length) / allowance).toFixed(1)}% of ${allowance})`);
  }, 30_000);
});
