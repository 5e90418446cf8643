// Concurrency gates across an outage of their Redis, attacked: permits Redis
// admitted to one store beyond its share when the outage begins, a store
// that saw no outage asking right after it, the fallback's own bookkeeping
// (only the excess is given up, dropped permits, a batch that fails for one
// key), and fallbacks that would bound no slots. Each test runs its own
// redis-server, which it kills, freezes or restarts.
import v8 from 'node:v8';
import vm from 'node:vm';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ConfigError, LeaseLostError, Limiter, concurrency, gcra, type Permit } from '../build/lib/src/index.js';
import { RedisStateError, RedisStore, type RedisStoreOptions } from '../build/lib/src/stores/redis/index.js';
import { startRedis, type RedisServer } from '../build/lib/src/cli/redis-server.js';

const LEASE = 1000;

/** A server of its own and a client that fails at once while it is down (no queue, no retries). */
async function ownServer(): Promise<{ server: RedisServer; client: () => Redis; stop(): Promise<void> }> {
  const server = await startRedis();
  const clients: Redis[] = [];
  const client = () => {
    const c = new Redis({ host: server.host, port: server.port, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 50 });
    clients.push(c);
    return c;
  };
  return {
    server,
    client,
    async stop() {
      for (const c of clients) c.disconnect();
      await server.stop();
    },
  };
}

async function ready(c: Redis): Promise<void> {
  if (c.status !== 'ready') await new Promise((resolve) => c.once('ready', resolve));
}

async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Two stores' worth of options: 2 nodes, so a share of floor(limit / 2) slots each without Redis. */
const storeOptions = (client: Redis, prefix: string): RedisStoreOptions => ({ client, prefix, timeoutMs: 100, probeIntervalMs: 50, fallback: { nodes: 2 } });

describe('concurrency gates across an outage', () => {
  it('a store holding more than its share through Redis gives up exactly the excess before another store admits its share (never more than the limit held)', async () => {
    const own = await ownServer();
    const [ca, cb] = [own.client(), own.client()];
    await Promise.all([ready(ca), ready(cb)]);
    const a = new RedisStore(storeOptions(ca, 'o1:'));
    const b = new RedisStore(storeOptions(cb, 'o1:'));
    try {
      const policy = concurrency({ limit: 4, leaseMs: LEASE });
      const la = new Limiter({ policy, store: a });
      const lb = new Limiter({ policy, store: b });
      // A takes every slot through Redis, B has seen none of them.
      const mine = await Promise.all([1, 2, 3, 4].map(() => la.acquire('k')));
      expect(mine.map((p) => p.source)).toEqual(['redis', 'redis', 'redis', 'redis']);
      own.server.kill('SIGKILL');
      const theirs: Permit[] = [];
      let most = 0;
      const end = Date.now() + 4 * LEASE;
      while (Date.now() < end) {
        const d = await lb.limit('k');
        if (d.allowed) theirs.push(d as Permit);
        const held = mine.filter((p) => p.held).length + theirs.filter((p) => p.held).length;
        most = Math.max(most, held);
        await sleep(10);
      }
      // B admitted its share once the grace was over, A kept its share: 2 + 2.
      expect(theirs.length).toBe(2);
      expect(theirs.every((p) => p.source === 'fallback')).toBe(true);
      expect(mine.filter((p) => p.held).length).toBe(2);
      expect(most).toBeLessThanOrEqual(4);
      // The ones given up say so.
      for (const p of mine.filter((q) => !q.held)) expect(p.signal.reason).toBeInstanceOf(LeaseLostError);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await own.stop();
    }
  }, 30_000);

  it('once Redis is back, the fallback holders are taken afresh in Redis at once: a store that saw no outage is admitted only the rest', async () => {
    const own = await ownServer();
    const cb = own.client();
    await ready(cb);
    const b = new RedisStore(storeOptions(cb, 'o2:'));
    let c: RedisStore | undefined;
    try {
      const policy = concurrency({ limit: 4, leaseMs: LEASE });
      const lb = new Limiter({ policy, store: b });
      own.server.kill('SIGKILL');
      // Past the grace: B holds its share of 2 from its fallback.
      const held = [await lb.acquire('k', { maxWaitMs: 5000 }), await lb.acquire('k', { maxWaitMs: 5000 })];
      expect(held.map((p) => p.source)).toEqual(['fallback', 'fallback']);
      await own.server.restart();
      // Between two sweeps of B's (every half lease), right as B's breaker closes.
      await until('B to see Redis back', () => b.breaker.state === 'closed');
      const cc = own.client();
      await ready(cc);
      c = new RedisStore({ ...storeOptions(cc, 'o2:'), fallback: 'closed' });
      const lc = new Limiter({ policy, store: c });
      const asks = await Promise.all([1, 2, 3, 4].map(() => lc.limit('k')));
      const admitted = asks.filter((d) => d.allowed);
      expect(admitted.every((d) => d.source === 'redis')).toBe(true);
      expect(admitted.length).toBe(2);
      expect(held.every((p) => p.held)).toBe(true);
      for (const d of admitted) await d.release!();
      for (const p of held) await p.release();
    } finally {
      await Promise.all([b.close(), c?.close()]);
      await own.stop();
    }
  }, 30_000);

  it('a store that made no call during an outage (Redis frozen) keeps to its share for two leases after it: its heartbeat saw it', async () => {
    const own = await ownServer();
    const cc = own.client();
    await ready(cc);
    const c = new RedisStore(storeOptions(cc, 'o3:'));
    try {
      const lc = new Limiter({ policy: concurrency({ limit: 4, leaseMs: LEASE }), store: c });
      own.server.kill('SIGSTOP');
      // A heartbeat's timeout (2 s) and its interval (1 s) and more: one fails, whatever the phase.
      await sleep(4000);
      own.server.kill('SIGCONT');
      await sleep(1200); // the next heartbeat answers
      const asks = await Promise.all([1, 2, 3].map(() => lc.limit('k')));
      expect(asks.map((d) => d.allowed)).toEqual([true, true, false]);
      expect(asks[2]).toMatchObject({ source: 'fallback', remaining: 0 });
      for (const d of asks) await d.release?.();
    } finally {
      await c.close();
      await own.stop();
    }
  }, 30_000);

  it('a permit dropped without release stops counting toward the share once its lease runs out (no slot leaks)', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const own = await ownServer();
    const ca = own.client();
    await ready(ca);
    const a = new RedisStore(storeOptions(ca, 'o4:'));
    try {
      const la = new Limiter({ policy: concurrency({ limit: 4, leaseMs: LEASE }), store: a });
      own.server.kill('SIGKILL');
      // Taken and dropped: no reference kept.
      await (async () => {
        const d = await la.acquire('k', { maxWaitMs: 5000 });
        expect(d.source).toBe('fallback');
        expect((await la.limit('k')).allowed).toBe(true);
      })();
      expect((await la.limit('k')).allowed).toBe(false); // the share of 2 is held
      for (let i = 0; i < 5; i++) {
        gc();
        await sleep(LEASE);
      }
      // Collected, not renewed, its lease ran out: the share is free again.
      const again = [await la.limit('k'), await la.limit('k')];
      expect(again.map((d) => d.allowed)).toEqual([true, true]);
      for (const d of again) await d.release!();
    } finally {
      await a.close();
      await own.stop();
    }
  }, 30_000);

  it('limitMany where one key fails hands out nothing and gives back the slots it took', async () => {
    const own = await ownServer();
    const ca = own.client();
    await ready(ca);
    const a = new RedisStore({ ...storeOptions(ca, 'o5:'), timeoutMs: 10_000 });
    try {
      const limiter = new Limiter({ policy: concurrency({ limit: 1, leaseMs: LEASE }), store: a });
      // Held, so that its state is in Redis to be poisoned.
      const first = (await limiter.limit('poisoned')) as Permit;
      const name = (await ca.keys('o5:*')).find((k) => k.includes('poisoned'));
      await ca.del(name!);
      await ca.hset(name!, 'field', 'value');
      await expect(limiter.limitMany(['fine', 'poisoned', 'also-fine'])).rejects.toBeInstanceOf(RedisStateError);
      // The slots of 'fine' and 'also-fine' came back: each admits its one holder again.
      const again = await limiter.limitMany(['fine', 'also-fine']);
      expect(again.map((d) => d.allowed)).toEqual([true, true]);
      for (const d of again) await d.release!();
      await first.release(); // never rejects, even on a key it cannot release
    } finally {
      await a.close();
      await own.stop();
    }
  }, 30_000);

  it("Redis losing its state (flushed, restarted empty): an old permit's release takes nothing from the new holders, and its renewal finds no room", async () => {
    const own = await ownServer();
    const ca = own.client();
    await ready(ca);
    const a = new RedisStore({ ...storeOptions(ca, 'o7:'), timeoutMs: 10_000 });
    const b = new RedisStore({ ...storeOptions(ca, 'o7:'), timeoutMs: 10_000 });
    try {
      const policy = concurrency({ limit: 2, leaseMs: LEASE });
      const la = new Limiter({ policy, store: a });
      const lb = new Limiter({ policy, store: b });
      const old = await la.acquire('k');
      await ca.flushall();
      // A Redis that forgot the holder admits two new ones (until the old one's renewal: see README).
      const fresh = [await lb.acquire('k'), await lb.acquire('k')];
      expect(fresh.map((p) => p.source)).toEqual(['redis', 'redis']);
      await old.release();
      // Had the old release taken one of theirs, a third would now pass with two held.
      expect((await lb.limit('k')).allowed).toBe(false);
      // And a renewal of a permit counted before finds no room: lost, and it says so.
      const older = await la.acquire('j');
      await ca.flushall();
      const taken = [await lb.acquire('j'), await lb.acquire('j')];
      expect(await older.extend()).toBe(false);
      expect(older.signal.reason).toBeInstanceOf(LeaseLostError);
      for (const p of [...fresh, ...taken]) await p.release();
      expect((await lb.peek('k', { cost: 2 })).allowed).toBe(true);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await own.stop();
    }
  }, 30_000);

  it('a fallback policy must bound the slots too: one without a concurrency gate, or with more slots, is refused naming fallback.policy', async () => {
    const client = new Redis({ lazyConnect: true });
    const store = (fallback: RedisStoreOptions['fallback']) => new RedisStore({ client, prefix: 'o6:', fallback });
    const policy = [gcra({ limit: 10, period: '1s' }), concurrency({ limit: 3 })];
    const attempts = [{ policy: gcra({ limit: 1, period: '1s' }) }, { policy: [gcra({ limit: 1, period: '1s' }), concurrency({ limit: 4 })] }];
    for (const fallback of attempts) {
      const s = store(fallback);
      let error: unknown;
      try {
        new Limiter({ policy, store: s });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).parameter).toBe('fallback.policy');
      await s.close();
    }
    // Within the limit: accepted, and a rate-only limiter on the same fallback too.
    const s = store({ policy: [gcra({ limit: 1, period: '1s' }), concurrency({ limit: 1 })] });
    expect(() => new Limiter({ policy, store: s })).not.toThrow();
    expect(() => new Limiter({ policy: gcra({ limit: 5, period: '1s' }), store: s })).not.toThrow();
    await s.close();
    client.disconnect();
  });
});
