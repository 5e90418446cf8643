// Concurrency gates in one process: the gate's options, permits (release,
// extend, renewal, loss, disposal), acquire's waiting, the calls a gate
// refuses, and a RedisStore's fallback holding slots while Redis is down.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AcquireTimeoutError,
  ArgumentError,
  ConfigError,
  DEFAULT_LEASE_MS,
  LeaseLostError,
  Limiter,
  MAX_LEASE_MS,
  MIN_LEASE_MS,
  UnknownOptionError,
  concurrency,
  gcra,
  type Permit,
} from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { startRedis, type RedisServer } from '../build/lib/src/cli/redis-server.js';
import { rateLimitHeaders } from '../build/lib/src/http/headers.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('concurrency()', () => {
  it('builds a gate of `limit` slots with a lease of 30 s by default', () => {
    const gate = concurrency({ limit: 3 });
    expect(gate).toMatchObject({ kind: 'concurrency', limit: 3, leaseMs: DEFAULT_LEASE_MS });
    expect(DEFAULT_LEASE_MS).toBe(30_000);
    expect(concurrency({ limit: 1, leaseMs: '2s' }).leaseMs).toBe(2000);
  });

  it.each([
    [{ limit: 0 }, 'limit'],
    [{ limit: 1.5 }, 'limit'],
    [{ limit: '3' }, 'limit'],
    [{}, 'limit'],
    [{ limit: 2, leaseMs: MIN_LEASE_MS - 1 }, 'leaseMs'],
    [{ limit: 2, leaseMs: MAX_LEASE_MS + 1 }, 'leaseMs'],
    [{ limit: 2, leaseMs: 'soon' }, 'leaseMs'],
    [{ limit: 2, leaseMs: Number.NaN }, 'leaseMs'],
  ])('refuses %j, naming %s', (options, parameter) => {
    const error = (() => {
      try {
        concurrency(options as never);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).parameter).toBe(parameter);
  });

  it('refuses an unknown option', () => {
    expect(() => concurrency({ limit: 2, lease: 1000 } as never)).toThrow(UnknownOptionError);
  });
});

describe('permits on an embedded store', () => {
  it('admits `limit` holders, and the next once one is released (twice releasing frees one slot)', async () => {
    let now = 1_000_000;
    const limiter = new Limiter({ policy: concurrency({ limit: 2, leaseMs: 1000 }), clock: () => now });
    const a = limiter.limitSync('k');
    const b = limiter.limitSync('k');
    const c = limiter.limitSync('k');
    expect([a.allowed, b.allowed, c.allowed]).toEqual([true, true, false]);
    expect([a.remaining, b.remaining, c.remaining]).toEqual([1, 0, 0]);
    expect(c.release).toBeUndefined();
    // The denial's wait: until the lease of the oldest holders ends (an upper bound).
    expect(c.retryAfterMs).toBe(2000);
    await a.release!();
    await a.release!();
    expect(limiter.limitSync('k').allowed).toBe(true);
    expect(limiter.limitSync('k').allowed).toBe(false);
    now += 1;
    expect(limiter.limitSync('other').allowed).toBe(true);
  });

  it('frees the slots of permits never released between leaseMs and 2 x leaseMs after they were taken', () => {
    let now = 5_000_000;
    const limiter = new Limiter({ policy: concurrency({ limit: 1, leaseMs: 1000 }), clock: () => now });
    expect(limiter.limitSync('k').allowed).toBe(true);
    now += 999;
    expect(limiter.limitSync('k').allowed).toBe(false);
    now += 1001; // 2000 ms after: always free
    expect(limiter.limitSync('k').allowed).toBe(true);
  });

  it('extend() keeps a permit across its lease epochs; a lost lease aborts its signal with LeaseLostError', async () => {
    let now = 7_000_000;
    const limiter = new Limiter({ policy: concurrency({ limit: 1, leaseMs: 1000 }), clock: () => now });
    const p = (await limiter.limit('k')) as Permit;
    for (let i = 0; i < 5; i++) {
      now += 900;
      expect(await p.extend()).toBe(true);
      expect(limiter.limitSync('k').allowed).toBe(false);
    }
    now += 2500; // past its lease, unrenewed: the slot is free, and taken
    const q = limiter.limitSync('k') as Permit;
    expect(q.allowed).toBe(true);
    expect(await p.extend()).toBe(false);
    expect(p.held).toBe(false);
    expect(p.signal.aborted).toBe(true);
    expect(p.signal.reason).toBeInstanceOf(LeaseLostError);
    // A lost permit's release gives back nothing: q still holds the only slot.
    await p.release();
    expect(limiter.limitSync('k').allowed).toBe(false);
    await q.release();
    expect(limiter.limitSync('k').allowed).toBe(true);
  });

  it('renews held permits on its own while the process runs, and stops once they are released', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 1, leaseMs: MIN_LEASE_MS }) });
    const p = (await limiter.acquire('k')) as Permit;
    await sleep(MIN_LEASE_MS * 2.5); // past two leases
    expect(p.held).toBe(true);
    expect(limiter.limitSync('k').allowed).toBe(false);
    await p.release();
    expect(p.held).toBe(false);
    const q = limiter.limitSync('k');
    expect(q.allowed).toBe(true);
    await q.release!();
  });

  it('Symbol.asyncDispose releases (await using)', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 1 }) });
    const p = await limiter.acquire('k');
    await p[Symbol.asyncDispose]();
    expect(p.held).toBe(false);
    const q = limiter.limitSync('k');
    expect(q.allowed).toBe(true);
    await q.release!();
  });

  it('acquire() waits for a release in the process and wakes on it', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 1, leaseMs: '1m' }) });
    const first = await limiter.acquire('k');
    const started = performance.now();
    const second = limiter.acquire('k');
    let settled = false;
    void second.then(() => (settled = true));
    await sleep(30);
    expect(settled).toBe(false);
    await first.release();
    const p = await second;
    // Woken by the release, not by the denial's wait (the lease: up to 2 minutes).
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(p.allowed).toBe(true);
    await p.release();
  });

  it('acquire() times out after maxWaitMs, and rejects with the reason when its signal aborts, charging nothing', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 1, leaseMs: '1m' }) });
    const held = await limiter.acquire('k');
    await expect(limiter.acquire('k', { maxWaitMs: 50 })).rejects.toThrow(AcquireTimeoutError);
    const controller = new AbortController();
    const waiting = limiter.acquire('k', { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('gave up')), 20);
    await expect(waiting).rejects.toThrow('gave up');
    await held.release();
    // Neither waiter took the slot.
    const next = limiter.limitSync('k');
    expect(next.allowed).toBe(true);
    await next.release!();
  });

  it('stacked with a rate gate: all or nothing, and a release returns only the slot', async () => {
    let now = 1_760_000_000_000;
    const limiter = new Limiter({ policy: [gcra({ limit: 3, period: '1s', burst: 3 }), concurrency({ limit: 1, leaseMs: 1000 })], clock: () => now });
    const a = limiter.limitSync('k');
    expect(a.allowed).toBe(true);
    // Denied by the concurrency gate: the rate gate is not charged.
    const denied = limiter.limitSync('k');
    expect(denied).toMatchObject({ allowed: false, gate: 1 });
    expect((await limiter.peek('k')).remaining).toBe(0);
    await a.release!();
    // The rate gate kept its charge: 2 left of the burst of 3, not 3.
    const b = limiter.limitSync('k');
    expect(b).toMatchObject({ allowed: true });
    await b.release!();
    const c = limiter.limitSync('k');
    await c.release!();
    const d = limiter.limitSync('k');
    expect(d).toMatchObject({ allowed: false, gate: 0 });
  });

  it('limitMany and limitManySync hand a permit to each admission', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 2 }) });
    const ds = limiter.limitManySync(['a', 'a', 'a', 'b']);
    expect(ds.map((d) => d.allowed)).toEqual([true, true, false, true]);
    expect(ds.map((d) => typeof d.release)).toEqual(['function', 'function', 'undefined', 'function']);
    for (const d of ds) await d.release?.();
    const again = await limiter.limitMany(['a', 'a']);
    expect(again.every((d) => d.allowed && d.release !== undefined)).toBe(true);
    for (const d of again) await d.release!();
  });

  it('a clock that goes back: releases and renewals still find the holders where they were counted', async () => {
    let now = 1_760_000_000_000;
    const limiter = new Limiter({ policy: concurrency({ limit: 3, leaseMs: 1000 }), clock: () => now });
    const a = limiter.limitSync('k') as Permit;
    now -= 60_000; // an NTP step back of a minute
    const b = limiter.limitSync('k') as Permit;
    const c = limiter.limitSync('k') as Permit;
    expect([a.allowed, b.allowed, c.allowed]).toEqual([true, true, true]);
    expect(await c.extend()).toBe(true);
    expect(c.held).toBe(true);
    expect((await limiter.peek('k')).allowed).toBe(false);
    await b.release();
    expect(await limiter.peek('k')).toMatchObject({ allowed: true, remaining: 0 });
    await Promise.all([a.release(), c.release()]);
    expect((await limiter.peek('k', { cost: 3 })).allowed).toBe(true);
  });

  it('takes one concurrency gate at most', () => {
    const error = (() => {
      try {
        new Limiter({ policy: [concurrency({ limit: 2 }), concurrency({ limit: 5, leaseMs: '1m' })] });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).parameter).toBe('policy');
  });

  it('reserve() refuses a limiter with a concurrency gate, naming the policy', async () => {
    const limiter = new Limiter({ policy: [gcra({ limit: 3, period: '1s' }), concurrency({ limit: 1 })] });
    const error = await limiter.reserve('k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ArgumentError);
    expect((error as ArgumentError).parameter).toBe('policy');
  });

  it('a rate-only limiter answers acquire with a permit whose release does nothing', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 1, period: '1m' }) });
    const p = await limiter.acquire('k');
    expect(p.allowed).toBe(true);
    expect(p.held).toBe(false);
    await p.release();
    expect(await p.extend()).toBe(false);
    expect(limiter.limitSync('k').allowed).toBe(false);
  });

  it('headers: a concurrency gate has no window, and a denial by it says retry in 1 s', () => {
    const policies = [gcra({ limit: 10, period: '1m', burst: 10 }), concurrency({ limit: 2 })];
    const headers = rateLimitHeaders(policies, 'both');
    const denied = headers({ allowed: false, limit: 2, capacity: 2, gate: 1, remaining: 0, retryAfterMs: 45_000, resetAfterMs: 60_000, source: 'local' });
    expect(Object.fromEntries(denied)).toEqual({
      'RateLimit-Policy': '"gcra";q=10;w=60, "concurrency";q=2',
      RateLimit: '"concurrency";r=0;t=1',
      'X-RateLimit-Limit': '2',
      'X-RateLimit-Remaining': '0',
      'X-RateLimit-Reset': '1',
      'Retry-After': '1',
    });
    const allowed = headers({ allowed: true, limit: 2, capacity: 2, gate: 1, remaining: 1, retryAfterMs: 0, resetAfterMs: 60_000, source: 'local' });
    expect(Object.fromEntries(allowed).RateLimit).toBe('"concurrency";r=1;t=0');
  });
});

describe('permits through a RedisStore', () => {
  let server: RedisServer;
  let client: Redis;
  beforeAll(async () => {
    server = await startRedis();
    client = new Redis({ host: server.host, port: server.port, maxRetriesPerRequest: 1 });
  }, 30_000);
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it('limit, release and acquire across two stores (two processes\' worth) on one key', async () => {
    const policy = concurrency({ limit: 2, leaseMs: '1m' });
    const one = new RedisStore({ client, prefix: 'c1:' });
    const two = new RedisStore({ client, prefix: 'c1:' });
    const a = new Limiter({ policy, store: one });
    const b = new Limiter({ policy, store: two });
    const p1 = await a.acquire('k');
    const p2 = await b.acquire('k');
    expect([p1.source, p2.source]).toEqual(['redis', 'redis']);
    const denied = await b.limit('k');
    expect(denied).toMatchObject({ allowed: false, source: 'redis', remaining: 0 });
    // b waits for a slot a frees: b polls, since the release happens in another store.
    const waiting = b.acquire('k', { maxWaitMs: 5_000 });
    await sleep(20);
    await p1.release();
    const p3 = await waiting;
    expect(p3.allowed).toBe(true);
    await Promise.all([p2.release(), p3.release()]);
    // Both free: a peek admits 2 (a mirror holding an old denial does not answer it).
    expect((await a.peek('k', { cost: 2 })).allowed).toBe(true);
    await one.close();
    await two.close();
  });

  it("refuses time: 'client' (clients' clocks a lease apart would take each other's held slots), naming the option", async () => {
    const policy = concurrency({ limit: 3, leaseMs: 1000 });
    const store = new RedisStore({ client, prefix: 'cs:', time: 'client' });
    expect(() => new Limiter({ policy, store })).toThrow(ConfigError);
    expect(() => new Limiter({ policy: [gcra({ limit: 5, period: '1s' }), policy], store })).toThrow(/time/);
    // The same store still serves rate gates on the client's clock.
    const rate = new Limiter({ policy: gcra({ limit: 1, period: '1s' }), store });
    expect((await rate.limit('k')).allowed).toBe(true);
    await store.close();
  });

  it('a release right after a renewal names the renewed slot (both in one batch), so every slot comes back', async () => {
    const store = new RedisStore({ client, prefix: 'cr:' });
    const limiter = new Limiter({ policy: concurrency({ limit: 2, leaseMs: MIN_LEASE_MS }), store });
    for (let i = 0; i < 10; i++) {
      const p = await limiter.acquire('k');
      // Into the next lease epoch, some of the time: a renewal then moves the slot.
      await sleep(Math.random() * MIN_LEASE_MS * 0.6);
      const renewed = p.extend();
      await p.release();
      await renewed;
      expect((await limiter.peek('k', { cost: 2 })).allowed, `round ${i}`).toBe(true);
    }
    await store.close();
  }, 30_000);

  it('while Redis is down, the fallback holds its share of the slots; a permit it admitted moves to Redis once it is back', async () => {
    // Its own server: this test kills it.
    const own = await startRedis();
    const redis = new Redis({ host: own.host, port: own.port, maxRetriesPerRequest: 0, enableOfflineQueue: false });
    await new Promise((resolve) => redis.once('ready', resolve));
    // 5 slots over 2 nodes: 2 for this one while Redis is down (never a third: 2 + 2 <= 5).
    const store = new RedisStore({ client: redis, prefix: 'cf:', timeoutMs: 100, probeIntervalMs: 50, fallback: { nodes: 2 } });
    try {
      const limiter = new Limiter({ policy: concurrency({ limit: 5, leaseMs: 1000 }), store });
      const before = await limiter.acquire('k');
      expect(before.source).toBe('redis');
      own.kill('SIGKILL');
      // The outage's grace: no new holder for 2.5 leases and a timeout after
      // the first failure, while other stores may still hold more than their
      // shares through Redis (what this store's table never saw).
      const early = await limiter.limit('k');
      expect(early).toMatchObject({ allowed: false, source: 'fallback' });
      expect(early.retryAfterMs).toBeGreaterThan(2000);
      expect(early.retryAfterMs).toBeLessThanOrEqual(2600);
      // A wait across the grace (acquire's poll) ends in an admission within the share.
      const waited = await limiter.acquire('k', { maxWaitMs: 5000 });
      expect(waited.source).toBe('fallback');
      await waited.release();
      const held: Permit[] = [];
      for (let i = 0; i < 10; i++) {
        const d = await limiter.limit('k');
        expect(d.source).toBe('fallback');
        if (d.allowed) held.push(d as Permit);
      }
      // The Redis permit still counts among this store's own holders: 1 + 1 of the share of 2.
      expect(held.length).toBe(1);
      expect(before.held).toBe(true);
      await before.release(); // Redis is down: given back to the fallback's table
      const next = (await limiter.limit('k')) as Permit;
      expect(next).toMatchObject({ allowed: true, source: 'fallback' });
      held.push(next);
      expect((await limiter.limit('k')).allowed).toBe(false);
      await own.restart();
      // The client reconnects (its backoff has grown over the outage) and the probe closes the breaker.
      for (let i = 0; i < 200 && store.breaker.state !== 'closed'; i++) await sleep(50);
      expect(store.breaker.state).toBe('closed');
      // Renewed once Redis is back: taken afresh there.
      for (const p of held) expect(await p.extend()).toBe(true);
      // Just back from the fallback: for two leases the store keeps to its share (2, both held) even though Redis answers.
      expect(await limiter.limit('k')).toMatchObject({ allowed: false, source: 'fallback', remaining: 0 });
      for (const p of held) await p.release();
      const fresh = await limiter.limit('k');
      expect(fresh).toMatchObject({ allowed: true, source: 'redis' });
      await (fresh as Permit).release();
    } finally {
      await store.close();
      redis.disconnect();
      await own.stop();
    }
  }, 30_000);
});
