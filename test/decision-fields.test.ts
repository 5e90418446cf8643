// What a Decision's numbers mean: `limit` is the limit configured for the
// binding gate (the headers' q=), `capacity` what that gate passes at once
// (what `remaining` counts down from), `gate` its index; in every store and
// every way of deciding, and in the rate-limit headers built from them.
import { describe, expect, it } from 'vitest';
import {
  EmbeddedStore,
  Limiter,
  fixedWindow,
  gcra,
  linearWindow,
  slidingWindow,
  tokenBucket,
  type Decision,
  type Policy,
  type RateLimiter,
  type Reservation,
} from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { rateLimitHeaders } from '../build/lib/src/http/index.js';
import { useRedis } from './helpers/use-redis.js';

/** One policy of each kind, with the limit it was configured with and what it passes at once. */
const cases: [label: string, policy: Policy, limit: number, capacity: number][] = [
  ['gcra, default burst', gcra({ limit: 5, period: '1s' }), 5, 1],
  ['gcra, burst below limit', gcra({ limit: 5, period: '1s', burst: 3 }), 5, 3],
  ['gcra, burst above limit', gcra({ limit: 5, period: '1s', burst: 8 }), 5, 8],
  ['tokenBucket, continuous', tokenBucket({ capacity: 20, refill: 10, period: '1s' }), 20, 20],
  ['tokenBucket, interval', tokenBucket({ capacity: 7, refill: 2, period: '1m', mode: 'interval' }), 7, 7],
  ['fixedWindow', fixedWindow({ limit: 6, window: '1m' }), 6, 6],
  ['linearWindow', linearWindow({ limit: 2, within: '3s' }), 2, 2],
  ['slidingWindow', slidingWindow({ limit: 9, window: '1m' }), 9, 9],
];

/** What a decision (or booking) of a fresh key's first unit must say. */
function expectFirst(d: Decision | Reservation, limit: number, capacity: number): void {
  expect(d).toMatchObject({ allowed: true, limit, capacity, gate: 0, remaining: capacity - 1 });
}

describe('Decision.limit is the configured limit, Decision.capacity what passes at once (embedded store)', () => {
  it.each(cases)('%s', async (_label, policy, limit, capacity) => {
    const now = 1_700_000_000_000;
    const limiter = new Limiter({ policy, clock: () => now });
    expect(await limiter.peek('peek')).toMatchObject({ limit, capacity, gate: 0, remaining: capacity - 1 });
    expectFirst(limiter.limitSync('sync'), limit, capacity);
    expectFirst(await limiter.limit('async'), limit, capacity);
    for (const d of limiter.limitManySync(['many-a', 'many-b'])) expectFirst(d, limit, capacity);
    expectFirst(await limiter.reserve('reserve'), limit, capacity);
    expectFirst(await limiter.acquire('acquire'), limit, capacity);
    // A denial reports the same gate's numbers, with nothing left.
    for (let i = 1; i < capacity; i++) limiter.limitSync('sync');
    expect(limiter.limitSync('sync')).toMatchObject({ allowed: false, limit, capacity, gate: 0, remaining: 0 });
  });

  it('a custom RateLimiter reports its capacity as both', async () => {
    const custom: RateLimiter<number> = {
      name: 'three',
      capacity: 3,
      initial: () => 0,
      decide: (used, _now, cost) => (used + cost > 3 ? { allowed: false, retryAfterMs: 1000 } : { allowed: true, state: used + cost, remaining: 3 - used - cost }),
    };
    const limiter = new Limiter({ policy: custom, store: new EmbeddedStore() });
    expectFirst(limiter.limitSync('k'), 3, 3);
    expectFirst(await limiter.reserve('r'), 3, 3);
  });

  it('stacked gates report the gate that binds, by index', () => {
    let now = 1_700_000_000_000;
    // Equal capacities: only the index tells them apart.
    const limiter = new Limiter({ policy: [fixedWindow({ limit: 5, window: '1s' }), fixedWindow({ limit: 5, window: '1m' })], clock: () => now });
    now = Math.ceil(now / 60_000) * 60_000; // the start of a minute, so that both windows start together
    for (let i = 0; i < 3; i++) limiter.limitSync('k');
    now += 1000; // a new 1 s window: 5 left there, 2 in the minute
    expect(limiter.limitSync('k')).toMatchObject({ allowed: true, gate: 1, limit: 5, capacity: 5, remaining: 1 });
    limiter.limitSync('k');
    expect(limiter.limitSync('k')).toMatchObject({ allowed: false, gate: 1, remaining: 0 });

    const partner = new Limiter({ policy: [gcra({ limit: 10, period: '1s' }), tokenBucket({ capacity: 10_000, period: '1d', mode: 'interval' })], clock: () => now });
    expect(partner.limitSync('t')).toMatchObject({ allowed: true, gate: 0, limit: 10, capacity: 1, remaining: 0 });
    expect(partner.limitSync('t')).toMatchObject({ allowed: false, gate: 0, limit: 10, capacity: 1 });
  });
});

describe('Decision.limit and capacity through a RedisStore', () => {
  const db = useRedis();
  const patient = { timeoutMs: 10_000 } as const;

  it.each(cases)('strict: %s', async (label, policy, limit, capacity) => {
    const limiter = new Limiter({ policy, store: new RedisStore({ ...patient, client: db.client, prefix: `fields:${label}:` }) });
    expectFirst(await limiter.limit('k'), limit, capacity);
    expectFirst(await limiter.reserve('r'), limit, capacity);
    expect(await limiter.peek('k')).toMatchObject({ limit, capacity, gate: 0 });
  });

  it('strict, stacked gates: the binding gate as Redis reports it, and as the mirror answers a cached denial', async () => {
    const limiter = new Limiter({
      policy: [tokenBucket({ capacity: 100, period: '1h' }), gcra({ limit: 2, period: '1s' })],
      store: new RedisStore({ ...patient, client: db.client, prefix: 'fields-stacked:' }),
    });
    expect(await limiter.limit('k')).toMatchObject({ allowed: true, source: 'redis', gate: 1, limit: 2, capacity: 1, remaining: 0 });
    expect(await limiter.limit('k')).toMatchObject({ allowed: false, source: 'local', gate: 1, limit: 2, capacity: 1 });
  });

  it('leased', async () => {
    const store = new RedisStore({ ...patient, client: db.client, prefix: 'fields-leased:', mode: 'leased' });
    const limiter = new Limiter({ policy: gcra({ limit: 1000, period: '1s', burst: 100 }), store });
    try {
      expect(await limiter.limit('k')).toMatchObject({ allowed: true, source: 'lease', gate: 0, limit: 1000, capacity: 100 });
      // A cold key without a lease: denied while one is leased, with the same numbers.
      expect(limiter.limitSync('cold')).toMatchObject({ allowed: false, source: 'lease', gate: 0, limit: 1000, capacity: 100 });
    } finally {
      await store.close();
    }
  });

  it('fallback: the configured limit stays, the capacity is this node\'s share', async () => {
    // No server at all: the breaker is opened by hand, and its probes fail.
    const share = new RedisStore({ client: { defineCommand() {} }, fallback: { nodes: 2 } });
    const closed = new RedisStore({ client: { defineCommand() {} }, fallback: 'closed' });
    try {
      const policy = gcra({ limit: 10, period: '1s', burst: 4 });
      const shared = new Limiter({ policy, store: share });
      const denying = new Limiter({ policy, store: closed });
      share.breaker.fail(-1, new Error('down'));
      closed.breaker.fail(-1, new Error('down'));
      expect(await shared.limit('k')).toMatchObject({ allowed: true, source: 'fallback', gate: 0, limit: 10, capacity: 2, remaining: 1 });
      expect(await shared.reserve('r')).toMatchObject({ allowed: true, source: 'fallback', gate: 0, limit: 10, capacity: 2, remaining: 1 });
      expect(await denying.limit('k')).toMatchObject({ allowed: false, source: 'fallback', gate: 0, limit: 10, capacity: 4, remaining: 0 });
    } finally {
      await share.close();
      await closed.close();
    }
  });
});

describe('rate-limit headers', () => {
  /** The header fields of a decision, by name. */
  const fields = (headers: (d: Decision) => [string, string][], d: Decision) => Object.fromEntries(headers(d));

  /** RateLimit names a policy of RateLimit-Policy; X-RateLimit-Limit is that policy's q=. */
  function expectConsistent(f: Record<string, string>): void {
    const named = /^"([^"]+)";r=(\d+);t=(\d+)$/.exec(f['RateLimit']!);
    expect(named).not.toBeNull();
    const quotas = new Map([...f['RateLimit-Policy']!.matchAll(/"([^"]+)";q=(\d+)/g)].map((m) => [m[1]!, m[2]!]));
    expect(f['X-RateLimit-Limit']).toBe(quotas.get(named![1]!));
    expect(f['X-RateLimit-Remaining']).toBe(named![2]);
    expect(f['X-RateLimit-Reset']).toBe(named![3]);
  }

  it('name the binding gate by its index, even among gates of equal capacity', () => {
    let now = Math.ceil(1_700_000_000_000 / 60_000) * 60_000;
    const limiter = new Limiter({ policy: [fixedWindow({ limit: 5, window: '1s' }), fixedWindow({ limit: 5, window: '1m' })], clock: () => now });
    const headers = rateLimitHeaders(limiter.policies, 'both');
    for (let i = 0; i < 3; i++) limiter.limitSync('k');
    now += 1000;
    const f = fields(headers, limiter.limitSync('k'));
    expect(f['RateLimit-Policy']).toBe('"fixedWindow";q=5;w=1, "fixedWindow-2";q=5;w=60');
    expect(f['RateLimit']).toBe('"fixedWindow-2";r=1;t=59');
    expectConsistent(f);
    limiter.limitSync('k');
    const denied = fields(headers, limiter.limitSync('k'));
    expect(denied['RateLimit']).toBe('"fixedWindow-2";r=0;t=59');
    expect(denied['Retry-After']).toBe('59');
    expectConsistent(denied);
  });

  it('X-RateLimit-Limit is the configured limit (q=), Remaining what passes now out of the burst', () => {
    const limiter = new Limiter({ policy: gcra({ limit: 5, period: '1s' }), clock: () => 0 });
    const f = fields(rateLimitHeaders(limiter.policies, 'both'), limiter.limitSync('k'));
    expect(f).toMatchObject({ 'RateLimit-Policy': '"gcra";q=5;w=1', RateLimit: '"gcra";r=0;t=1', 'X-RateLimit-Limit': '5', 'X-RateLimit-Remaining': '0' });
    expectConsistent(f);
  });

  it('stay consistent over stacked gates of every kind', () => {
    let now = 1_700_000_000_000;
    const limiter = new Limiter({
      policy: [gcra({ limit: 10, period: '1s', burst: 3 }), tokenBucket({ capacity: 40, refill: 5, period: '1s' }), slidingWindow({ limit: 25, window: '10s' }), fixedWindow({ limit: 30, window: '1m' })],
      clock: () => now,
    });
    const headers = rateLimitHeaders(limiter.policies, 'both');
    const named = new Set<string>();
    for (let i = 0; i < 400; i++) {
      now += (i * 7919) % 250; // uneven steps, some bursts
      const f = fields(headers, limiter.limitSync('k'));
      expectConsistent(f);
      named.add(/^"([^"]+)"/.exec(f['RateLimit']!)![1]!);
    }
    // More than one gate took its turn to bind.
    expect(named.size).toBeGreaterThan(1);
  });
});
