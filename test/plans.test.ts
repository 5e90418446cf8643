// Plans and changes (issue #17, parts 1 and 2): per-key policies (a
// resolver), setPolicy and invalidate, each key carrying its used capacity
// into its new plan ('proportional', 'as-is', 'reset'), in the embedded
// store and through Redis, where every node applies the newest plan
// recorded for a key; attacked with chosen keys, plan floods and stale nodes.
import { fileURLToPath } from 'node:url';
import { Cluster, Redis } from 'ioredis';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ArgumentError, ConfigError, EmbeddedStore, Limiter, MAX_PLANS, UnknownOptionError,
  concurrency, fixedWindow, gcra, linearWindow, slidingWindow, tokenBucket, type Carry, type Decision, type Policy,
} from '../build/lib/src/index.js';
import { RedisStore, RedisStateError } from '../build/lib/src/stores/redis/index.js';
import { carriedState, carriedUse, usedOf } from '../build/lib/src/policies/carry.js';
import { rateLimit } from '../build/lib/src/http/index.js';
import { startRedisCluster, type RedisCluster } from '../build/lib/src/cli/redis-server.js';
import { runPods } from '../support/pods.js';
import { useRedis } from './helpers/use-redis.js';
import { modelClock, policyArb } from './helpers/agreement.js';

const worker = fileURLToPath(new URL('../support/plans-worker.mjs', import.meta.url));

/** A clock the test moves by hand (at a window boundary: windows of a minute start at 0). */
function manualClock(start = 1_700_000_040_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

/** How many of `n` calls of `key` are allowed now. */
function admitted(limiter: Limiter, key: string, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (limiter.limitSync(key).allowed) ok++;
  return ok;
}

async function admittedAsync(limiter: Limiter, key: string, n: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if ((await limiter.limit(key)).allowed) ok++;
  return ok;
}

const free = fixedWindow({ limit: 10, window: '1m' });
const pro = fixedWindow({ limit: 100, window: '1m' });

describe('per-key policies (a resolver), embedded', () => {
  it('each key gets its plan, exactly, resolved once per key', () => {
    const clock = manualClock();
    const asked: string[] = [];
    const limiter = new Limiter({
      policy: (key) => {
        asked.push(key);
        return key.startsWith('pro') ? pro : free;
      },
      clock: clock.now,
    });
    expect(admitted(limiter, 'free:1', 30)).toBe(10);
    expect(admitted(limiter, 'pro:1', 300)).toBe(100);
    expect(admitted(limiter, 'free:2', 30)).toBe(10);
    expect(limiter.limitSync('pro:1')).toMatchObject({ allowed: false, limit: 100 });
    expect(limiter.limitSync('free:1')).toMatchObject({ allowed: false, limit: 10 });
    expect(asked).toEqual(['free:1', 'pro:1', 'free:2']);
    expect(limiter.policies).toEqual([]);
  });

  it('stacked gates per plan, a cost checked against the key\'s own plan, and limitManySync by each key\'s plan', () => {
    const clock = manualClock();
    const limiter = new Limiter({
      policy: (key) => (key === 'big' ? [gcra({ limit: 50, period: '1s', burst: 50 }), fixedWindow({ limit: 60, window: '1m' })] : gcra({ limit: 5, period: '1s', burst: 5 })),
      clock: clock.now,
    });
    expect(limiter.limitSync('big', { cost: 40 }).allowed).toBe(true);
    expect(() => limiter.limitSync('small', { cost: 6 })).toThrow(ArgumentError);
    expect(limiter.limitSync('small', { cost: 5 }).allowed).toBe(true);
    const ds = limiter.limitManySync(['big', 'small', 'big']);
    expect(ds.map((d) => d.allowed)).toEqual([true, false, true]);
  });

  it('invalidate(key) moves the key to its new answer, carrying its use (upgrade and downgrade, each strategy)', () => {
    const cases: [Carry, number, number][] = [
      // [carry, after 5 of 10 used: allowed on pro, after 90 of 100 used: allowed on free]
      ['proportional', 50, 1],
      ['as-is', 5, 10],
      ['reset', 100, 10],
    ];
    for (const [carry, upgraded, downgraded] of cases) {
      const clock = manualClock();
      const tiers = new Map([['a', free], ['b', pro]]);
      let version = 0;
      const limiter = new Limiter({ policy: (key) => ({ policy: tiers.get(key)!, version }), carry, clock: clock.now });
      expect(admitted(limiter, 'a', 5)).toBe(5);
      expect(admitted(limiter, 'b', 90)).toBe(90);
      tiers.set('a', pro);
      tiers.set('b', free);
      version = 1;
      // Without invalidate the cache keeps each key's plan.
      expect(limiter.limitSync('a').limit).toBe(10);
      limiter.refund('a', 1);
      limiter.invalidate('a');
      limiter.invalidate('b');
      expect([carry, admitted(limiter, 'a', 200)]).toEqual([carry, upgraded]);
      expect([carry, admitted(limiter, 'b', 200)]).toEqual([carry, downgraded]);
      clock.advance(60_000);
      expect(admitted(limiter, 'a', 200)).toBe(100);
      expect(admitted(limiter, 'b', 200)).toBe(10);
    }
  });

  it('a resolver answering an older version than the key\'s recorded plan does not move it back', () => {
    const clock = manualClock();
    let answer: { policy: Policy; version: number } = { policy: pro, version: 2 };
    const limiter = new Limiter({ policy: () => answer, clock: clock.now });
    expect(admitted(limiter, 'k', 50)).toBe(50);
    answer = { policy: free, version: 1 };
    limiter.invalidate();
    expect(limiter.limitSync('k').limit).toBe(100);
    expect(admitted(limiter, 'k', 100)).toBe(49);
    answer = { policy: free, version: 3 };
    limiter.invalidate('k');
    expect(admitted(limiter, 'k', 10)).toBe(0);
  });

  it('a key evicted from the plan cache still carries: its record knows its plan', () => {
    const clock = manualClock();
    let tier = free;
    const limiter = new Limiter({ policy: () => tier, clock: clock.now });
    expect(admitted(limiter, 'target', 10)).toBe(10);
    // 70,000 other keys push 'target' out of the cache (65,536 keys).
    for (let i = 0; i < 70_000; i++) limiter.limitSync(`other${i}`);
    tier = pro;
    // Resolved again (pro), its record says free: all 10 of 10 used carry into 100 of 100.
    expect(admitted(limiter, 'target', 10)).toBe(0);
    expect(admitted(limiter, 'fresh', 200)).toBe(100);
  });
});

describe('setPolicy, embedded', () => {
  it('keeps usage within the new limit with no reset, for each carry strategy and every rate algorithm', () => {
    const policies: [Policy, Policy][] = [
      [gcra({ limit: 10, period: '10s', burst: 10 }), gcra({ limit: 20, period: '10s', burst: 20 })],
      [tokenBucket({ capacity: 10, refill: 1, period: '1s' }), tokenBucket({ capacity: 4, refill: 1, period: '1s' })],
      [tokenBucket({ capacity: 10, refill: 10, period: '1m', mode: 'interval' }), tokenBucket({ capacity: 30, refill: 30, period: '1m', mode: 'interval' })],
      [fixedWindow({ limit: 10, window: '1m' }), slidingWindow({ limit: 40, window: '1m' })],
      [linearWindow({ limit: 10, within: '1m' }), fixedWindow({ limit: 5, window: '1m' })],
      [slidingWindow({ limit: 10, window: '1m' }), gcra({ limit: 10, period: '1m', burst: 10 })],
    ];
    for (const [before, after] of policies) {
      for (const carry of ['proportional', 'as-is', 'reset'] as const) {
        const clock = manualClock();
        const limiter = new Limiter({ name: 'plans', policy: before, clock: clock.now });
        expect(admitted(limiter, 'k', 6)).toBe(6);
        limiter.setPolicy(after, { carry });
        const cap = after.core.capacity;
        // (GCRA carries a fraction of a unit: what is left admits its whole units.)
        const expected = Math.floor(cap - carriedUse(6, before.core, after.core, carry) + 1e-9);
        // Exactly what the carry leaves, at the same instant: never a burst, never a silent reset.
        expect([before.kind, after.kind, carry, admitted(limiter, 'k', cap + 5)]).toEqual([before.kind, after.kind, carry, expected]);
        expect(limiter.policies).toEqual([after]);
      }
    }
  });

  it('a key untouched since the constructor\'s plan carries from it after several changes; one used in between from its own', () => {
    const clock = manualClock();
    const limiter = new Limiter({ name: 'chain', policy: linearWindow({ limit: 10, within: '1m' }), clock: clock.now });
    expect(admitted(limiter, 'old', 6)).toBe(6);
    limiter.setPolicy(linearWindow({ limit: 20, within: '1m' }));
    expect(admitted(limiter, 'mid', 5)).toBe(5);
    limiter.setPolicy(linearWindow({ limit: 40, within: '1m' }));
    // old: 6 of 10 used is 24 of 40; mid: 5 of 20 is 10 of 40.
    expect(admitted(limiter, 'old', 50)).toBe(16);
    expect(admitted(limiter, 'mid', 50)).toBe(30);
    expect(admitted(limiter, 'new', 50)).toBe(40);
  });

  it('a gate both plans have keeps its state; a new gate takes the use of the nearest old one in time scale, not of its position', () => {
    const clock = manualClock();
    const day = fixedWindow({ limit: 5, window: '1d' });
    const perSecond = gcra({ limit: 100, period: '1s', burst: 100 });
    const limiter = new Limiter({ name: 'pos', policy: day, clock: clock.now });
    expect(admitted(limiter, 'k', 10)).toBe(5);
    for (let round = 0; round < 3; round++) {
      limiter.setPolicy([perSecond, day]);
      clock.advance(2000);
      expect(admitted(limiter, 'k', 10)).toBe(0);
      limiter.setPolicy(day);
      clock.advance(2000);
      expect(admitted(limiter, 'k', 10)).toBe(0);
    }
    // Two gates into two: the hour's use goes to the new hour gate, the second's to the new second's.
    const hourly = new Limiter({ name: 'h', policy: [gcra({ limit: 10, period: '1s', burst: 10 }), fixedWindow({ limit: 100, window: '1h' })], clock: clock.now });
    expect(admitted(hourly, 'k', 10)).toBe(10);
    clock.advance(1000);
    expect(admitted(hourly, 'k', 10)).toBe(10);
    hourly.setPolicy([fixedWindow({ limit: 200, window: '1h' }), gcra({ limit: 20, period: '1s', burst: 20 })], { carry: 'as-is' });
    clock.advance(1000);
    // 20 of 100 used this hour: 80 available stay 80 of 200; the second's gate is refilled.
    expect(admitted(hourly, 'k', 100)).toBe(20);
  });

  it('a table full at its cap keeps a key whole on its old plan rather than drop its use', () => {
    const clock = manualClock();
    const store = new EmbeddedStore({ maxKeys: 8, whenFull: 'deny' });
    const limiter = new Limiter({ name: 'full', policy: linearWindow({ limit: 10, within: '1h' }), store, clock: clock.now });
    for (let i = 0; i < 200; i++) limiter.limitSync(`filler${i}`);
    void limiter.reset('filler0');
    clock.advance(30 * 60_000);
    expect(admitted(limiter, 'attacker', 30)).toBe(10);
    clock.advance(10 * 60_000);
    limiter.setPolicy(linearWindow({ limit: 20, within: '1h' }));
    expect(limiter.limitSync('attacker').allowed).toBe(false);
    clock.advance(21 * 60_000 + 1000);
    // The fillers' windows are over; the attacker's (to t0 + 90 min) is not.
    expect(admitted(limiter, 'attacker', 30)).toBe(0);
  });

  it('bookings made ahead under GCRA, carried into a window, fill the windows they reach', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ name: 'book', policy: gcra({ limit: 1, period: '1m', burst: 1 }), clock: clock.now });
    const booked: number[] = [];
    for (let i = 0; i < 10; i++) booked.push((await limiter.reserve('k')).waitMs);
    expect(booked).toEqual(booked.map((_, i) => i * 60_000));
    limiter.setPolicy(fixedWindow({ limit: 1, window: '1m' }));
    // The 10 booked callers go at their minutes: no one else for those 10 minutes.
    const perMinute: number[] = [];
    for (let m = 0; m < 12; m++) {
      perMinute.push(admitted(limiter, 'k', 3));
      clock.advance(60_000);
    }
    expect(perMinute.slice(0, 10)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(perMinute.slice(10)).toEqual([1, 1]);
  });

  it('carries a penalty\'s debt and a block into the new plan', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ name: 'p', policy: gcra({ limit: 1, period: '1s', burst: 5 }), clock: clock.now, blockAfter: { denials: 3, within: '1m', duration: '1m' } });
    await limiter.penalize('debtor', 20);
    await limiter.block('banned', '10m');
    for (let i = 0; i < 2; i++) limiter.limitSync('debtor'); // 2 denials counted of 3
    limiter.setPolicy(gcra({ limit: 2, period: '1s', burst: 10 }));
    // 20 units owed of 5 is 400% used: 40 of 10 owed under the new plan (proportional), 15 s to wait off.
    const d = limiter.limitSync('debtor');
    expect(d.allowed).toBe(false);
    expect(d.retryAfterMs).toBeCloseTo(15_500, -2);
    // That denial was the third of blockAfter's count, carried: the key is blocked now.
    expect(limiter.limitSync('debtor').reason).toBe('blocked');
    expect(limiter.limitSync('banned')).toMatchObject({ allowed: false, reason: 'blocked' });
    clock.advance(10 * 60_000);
    expect(limiter.limitSync('banned').allowed).toBe(true);
  });

  it('a version changes nothing of the state when the gates are the same; versions count up by default', () => {
    const clock = manualClock();
    const policy = gcra({ limit: 10, period: '10s', burst: 10 });
    const limiter = new Limiter({ name: 'v', policy, clock: clock.now, version: 4 });
    clock.advance(0.3);
    expect(admitted(limiter, 'k', 3)).toBe(3);
    limiter.setPolicy(policy, { carry: 'reset' });
    // Same gates, same state: 7 left, not 10 (reset moves nothing that need not move).
    expect(admitted(limiter, 'k', 20)).toBe(7);
  });

  it('plans of a custom RateLimiter or a concurrency gate, too many plans, bad options: typed errors, nothing changed', () => {
    const clock = manualClock();
    expect(() => new Limiter({ name: 'c', policy: concurrency({ limit: 2 }) })).toThrow(ConfigError);
    expect(() => new Limiter({ policy: () => concurrency({ limit: 2 }) }).limitSync('k')).toThrow(ConfigError);
    expect(() => new Limiter({ policy: free, version: 1 })).toThrow(expect.objectContaining({ parameter: 'version' }));
    expect(() => new Limiter({ policy: free, carry: 'as-is' })).toThrow(expect.objectContaining({ parameter: 'carry' }));
    expect(() => new Limiter({ name: 'no|pipes', policy: free })).toThrow(expect.objectContaining({ parameter: 'name' }));
    expect(() => new Limiter({ name: '', policy: free })).toThrow(expect.objectContaining({ parameter: 'name' }));
    expect(() => new Limiter({ name: 'x', policy: free, carry: 'half' as Carry })).toThrow(expect.objectContaining({ parameter: 'carry' }));
    expect(() => new Limiter({ name: 'x', policy: free, version: -1 })).toThrow(expect.objectContaining({ parameter: 'version' }));
    expect(() => new Limiter({ name: 'x', policy: free, version: 1.5 })).toThrow(expect.objectContaining({ parameter: 'version' }));

    const plain = new Limiter({ policy: free, clock: clock.now });
    expect(() => plain.setPolicy(pro)).toThrow(expect.objectContaining({ parameter: 'name' }));
    expect(() => plain.invalidate('k')).toThrow(ConfigError);

    const limiter = new Limiter({ name: 'x', policy: free, clock: clock.now });
    expect(admitted(limiter, 'k', 4)).toBe(4);
    expect(() => limiter.setPolicy(pro, { carri: 'as-is' } as never)).toThrow(UnknownOptionError);
    expect(() => limiter.setPolicy(pro, { version: 2 ** 31 })).toThrow(expect.objectContaining({ parameter: 'version' }));
    expect(() => limiter.setPolicy(pro, { carry: 'none' as Carry })).toThrow(expect.objectContaining({ parameter: 'carry' }));
    expect(() => limiter.setPolicy([] as never)).toThrow(expect.objectContaining({ parameter: 'policy' }));
    expect(() => limiter.setPolicy({ core: 'x' } as never)).toThrow(expect.objectContaining({ parameter: 'policy' }));
    // Shaped like a policy, but built by no factory: its numbers would reach the core unchecked.
    const forged = { ...free, core: { ...free.core, code: 99 } };
    expect(() => limiter.setPolicy(forged as never)).toThrow(expect.objectContaining({ parameter: 'policy' }));
    expect(() => limiter.setPolicy({ ...free, core: { ...free.core, p1: NaN } } as never)).toThrow(expect.objectContaining({ parameter: 'policy' }));
    expect(() => new Limiter({ policy: forged as never })).toThrow(expect.objectContaining({ parameter: 'policy' }));
    expect(() => new Limiter({ policy: [free, { ...free }] as never })).toThrow(expect.objectContaining({ parameter: 'policy' }));
    expect(() => limiter.setPolicy(() => pro, { version: 1 })).toThrow(expect.objectContaining({ parameter: 'version' }));
    expect(() => limiter.invalidate(42 as never)).toThrow(ArgumentError);
    // None of it changed the plan or the key.
    expect(limiter.policies).toEqual([free]);
    expect(admitted(limiter, 'k', 10)).toBe(6);

    // A resolver answering a new plan per key meets the cap of distinct plans.
    const flood = new Limiter({ policy: (key) => fixedWindow({ limit: Number(key), window: '1m' }), clock: clock.now });
    for (let i = 1; i <= MAX_PLANS; i++) flood.limitSync(String(i));
    expect(() => flood.limitSync(String(MAX_PLANS + 1))).toThrow(expect.objectContaining({ parameter: 'policy' }));
    expect(flood.limitSync('1').allowed).toBe(false);
    const bad = new Limiter({ policy: (key) => (key === 'x' ? ({ policy: free, version: 'new' } as never) : free) });
    expect(() => bad.limitSync('x')).toThrow(expect.objectContaining({ parameter: 'version' }));
    const extra = new Limiter({ policy: () => ({ policy: free, version: 1, plan: 'pro' }) as never });
    expect(() => extra.limitSync('x')).toThrow(UnknownOptionError);
    const thrower = new Limiter({ policy: () => { throw new RangeError('no such tenant'); } });
    expect(() => thrower.limitSync('x')).toThrow(RangeError);
  });

  it('setPolicy called again and again: plans of the same gates share their states, and no cap is met', () => {
    const clock = manualClock();
    const limiter = new Limiter({ name: 'often', policy: free, clock: clock.now });
    for (let i = 0; i < 3 * MAX_PLANS; i++) {
      limiter.setPolicy(i % 2 === 0 ? pro : free);
      limiter.limitSync('k');
    }
    // 192 calls, all in one window: the last plan is free (10), every unit carried.
    expect(admitted(limiter, 'k', 10)).toBe(0);
  });

  it('two limiters with plans on one store keep their own states and records', () => {
    const clock = manualClock();
    const store = new EmbeddedStore();
    const a = new Limiter({ name: 'same', policy: free, store, clock: clock.now });
    const b = new Limiter({ name: 'same', policy: free, store, clock: clock.now });
    expect(admitted(a, 'k', 10)).toBe(10);
    b.setPolicy(pro);
    expect(admitted(b, 'k', 200)).toBe(100);
    expect(admitted(a, 'k', 5)).toBe(0);
  });
});

describe('HTTP middleware with plans', () => {
  it('answers each key by its plan, with headers; setPolicy changes the headers', async () => {
    const clock = manualClock();
    const limiter = new Limiter({ policy: (key) => (key === 'pro' ? pro : free), clock: clock.now });
    const handler = rateLimit(() => new Response('ok'), { limiter, key: (request: Request) => request.headers.get('x-tenant')! });
    const statuses = async (tenant: string, n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push((await handler(new Request('http://x.test/', { headers: { 'x-tenant': tenant } }))).status);
      return out;
    };
    expect((await statuses('free', 11)).filter((c) => c === 200).length).toBe(10);
    const denied = await handler(new Request('http://x.test/', { headers: { 'x-tenant': 'free' } }));
    expect([denied.status, denied.headers.get('RateLimit'), denied.headers.get('Retry-After')]).toEqual([429, '"default";r=0;t=60', '60']);
    expect((await statuses('pro', 101)).filter((c) => c === 200).length).toBe(100);

    const named = new Limiter({ name: 'http', policy: free, clock: clock.now });
    const h2 = rateLimit(() => new Response('ok'), { limiter: named, key: () => 'k' });
    expect((await h2(new Request('http://x.test/'))).headers.get('RateLimit-Policy')).toBe('"fixedWindow";q=10;w=60');
    named.setPolicy(pro);
    expect((await h2(new Request('http://x.test/'))).headers.get('RateLimit-Policy')).toBe('"fixedWindow";q=100;w=60');
  });
});

describe('the carry arithmetic', () => {
  it('rounds a count up to whole units, keeps GCRA\'s fraction, keeps a debt', () => {
    const g = gcra({ limit: 10, period: '1s', burst: 10 }).core;
    const w = fixedWindow({ limit: 10, window: '1s' }).core;
    expect(usedOf(g, [1000 + 250, 0, 0, 1250], 1000)).toBeCloseTo(2.5);
    expect(carriedUse(2.5, g, w, 'proportional')).toBe(3);
    expect(carriedUse(2.5, g, g, 'proportional')).toBe(2.5);
    expect(carriedUse(25, g, gcra({ limit: 1, period: '1s', burst: 2 }).core, 'as-is')).toBe(17);
    expect(carriedUse(0, g, g, 'as-is')).toBe(0);
    expect(carriedUse(9.9999999999, g, w, 'proportional')).toBe(10);
  });

  it('a carried state is rid of its use no later than the old state would have been', () => {
    const now = 1_700_000_030_000;
    // A linear window that would have ended in 10 s ends in 10 s under the new one too.
    expect(carriedState(linearWindow({ limit: 20, within: '1m' }).core, 12, now + 10_000, now)).toEqual([now - 50_000, 12, 0, now + 10_000]);
    // An interval bucket refills by then.
    const [anchor, tokens, , full] = carriedState(tokenBucket({ capacity: 10, refill: 10, period: '1m', mode: 'interval' }).core, 4, now + 5000, now);
    expect([anchor + 60_000, tokens, full]).toEqual([now + 5000, 6, now + 5000]);
    // 25 units at 10 a minute take 3 refills: the first within a minute, not at once.
    const [a2, t2, , f2] = carriedState(tokenBucket({ capacity: 10, refill: 10, period: '1m', mode: 'interval' }).core, 25, now + 5000, now);
    expect([a2, t2, f2]).toEqual([now - 59_999, -15, now - 59_999 + 180_000]);
    // A sliding window puts a use that ends within this window in the previous count, weighted.
    // (now is 50 s into its window: 3 used of the previous count's last sixth are 18 of it.)
    const s = carriedState(slidingWindow({ limit: 10, window: '1m' }).core, 3, now + 5000, now);
    expect(s).toEqual([Math.floor(now / 60_000), 0, 18, now + 10_000]);
    expect(carriedState(slidingWindow({ limit: 10, window: '1m' }).core, 3, now + 20_000, now)).toEqual([Math.floor(now / 60_000), 3, 0, now + 70_000]);
  });
});

describe('through Redis', () => {
  const redis = useRedis();
  let run = 0;
  const storeOf = (options: Record<string, unknown> = {}, client: Redis = redis.client) => new RedisStore({ client, prefix: `plans${run++}`, ...options } as never);

  /** Two nodes of one fleet: two stores on one prefix, each with its own connection, on the client's clock. */
  async function twoNodes(prefix: string, body: (a: RedisStore, b: RedisStore) => Promise<void>): Promise<void> {
    const other = new Redis({ host: redis.server.host, port: redis.server.port, maxRetriesPerRequest: 1 });
    const a = new RedisStore({ client: redis.client, prefix, ...modelClock });
    const b = new RedisStore({ client: other, prefix, ...modelClock });
    try {
      await body(a, b);
    } finally {
      await a.close();
      await b.close();
      other.disconnect();
    }
  }

  it('per-key plans exact; setPolicy carries; a stale node is decided by the newer plan and resolves again', async () => {
    const clock = manualClock();
    await twoNodes(`plans${run++}`, async (nodeA, nodeB) => {
      const a = new Limiter({ name: 'api', policy: free, store: nodeA, clock: clock.now });
      const b = new Limiter({ name: 'api', policy: free, store: nodeB, clock: clock.now });
      expect(await admittedAsync(a, 'k', 4)).toBe(4);
      expect(await admittedAsync(b, 'k', 4)).toBe(4);
      a.setPolicy(pro);
      // 8 of 10 used: 80 of 100 (proportional).
      expect(await admittedAsync(a, 'k', 15)).toBe(15);
      // Node b still has version 0: Redis decides its calls by version 1, with the 5 left.
      expect(await admittedAsync(b, 'k', 10)).toBe(5);
      expect(await admittedAsync(a, 'k', 10)).toBe(0);

      const tiers = new Map([['t1', free]]);
      const resolver = (key: string) => ({ policy: tiers.get(key) ?? free, version: tiers.get(key) === pro ? 1 : 0 });
      const ra = new Limiter({ name: 'tiers', policy: resolver, store: nodeA, clock: clock.now });
      const rb = new Limiter({ name: 'tiers', policy: resolver, store: nodeB, clock: clock.now });
      expect(await admittedAsync(ra, 't1', 3)).toBe(3);
      expect(await admittedAsync(rb, 't1', 20)).toBe(7);
      tiers.set('t1', pro);
      ra.invalidate('t1');
      expect(await admittedAsync(ra, 't1', 10)).toBe(0); // 10 of 10 used: 100 of 100
      clock.advance(60_000);
      // rb's cache still says free (version 0); Redis records pro (version 1) and decides by it; rb resolves again.
      expect(await admittedAsync(rb, 't1', 60)).toBe(60);
      expect((await rb.limit('t1')).limit).toBe(100);
    });
  });

  it('each carry strategy through Redis matches the embedded store, decision for decision', async () => {
    const rate = policyArb.filter((p) => p.kind !== 'concurrency');
    type PlanOp = { op: 'limit' | 'peek' | 'penalize' | 'set' | 'reset' | 'block' | 'reserve'; key: number; n: number; dt: number; carry: Carry };
    const opArb: fc.Arbitrary<PlanOp> = fc.record({
      op: fc.constantFrom('limit', 'limit', 'limit', 'limit', 'peek', 'penalize', 'set', 'set', 'reset', 'block', 'reserve') as fc.Arbitrary<PlanOp['op']>,
      key: fc.integer({ min: 0, max: 2 }),
      n: fc.integer({ min: 0, max: 5000 }),
      dt: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 6000 })),
      carry: fc.constantFrom('proportional' as const, 'as-is' as const, 'reset' as const),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(rate, { minLength: 1, maxLength: 2 }), { minLength: 2, maxLength: 4 }),
        fc.boolean(),
        fc.array(opArb, { minLength: 1, maxLength: 40 }),
        async (plans, blocks, ops) => {
          let t = 1_700_000_000_000;
          const clock = () => t;
          const extra = blocks ? { blockAfter: { denials: 3, within: 2000, duration: 3000 } } : {};
          const local = new Limiter({ name: 'prop', policy: plans[0]!, clock, ...extra });
          const store = storeOf({ negativeCache: false, ...modelClock });
          const remote = new Limiter({ name: 'prop', policy: plans[0]!, clock, store, ...extra });
          let current = plans[0]!;
          try {
            for (const { op, key, n, dt, carry } of ops) {
              t += dt;
              const k = `k${key}`;
              const cost = 1 + (n % Math.min(...current.map((p) => p.core.capacity)));
              if (op === 'limit' || op === 'peek') {
                const [x, y] = [await local[op](k, { cost }), await remote[op](k, { cost })];
                expect({ ...y, source: 'local' }).toEqual(x);
              } else if (op === 'reserve') {
                const [x, y] = [await local.reserve(k, { cost, maxWaitMs: n }), await remote.reserve(k, { cost, maxWaitMs: n })];
                expect({ ...y, at: x.at, source: 'local' }).toEqual(x);
              } else if (op === 'set') {
                current = plans[n % plans.length]!;
                local.setPolicy(current, { carry });
                remote.setPolicy(current, { carry });
              } else if (op === 'penalize') {
                await local.penalize(k, cost);
                await remote.penalize(k, cost);
              } else if (op === 'block') {
                await local.block(k, n + 1);
                await remote.block(k, n + 1);
              } else {
                await local.reset(k);
                await remote.reset(k);
              }
            }
          } finally {
            await store.close();
          }
        },
      ),
      { numRuns: 150 },
    );
  }, 120_000);

  it('3 OS processes at once: per-plan limits exact across the fleet, and pods of an older version decided by the newer', async () => {
    const prefix = `plansfleet${run++}`;
    const port = String(redis.server.port);
    const tiers = await runPods(worker, [0, 1, 2].map(() => [port, prefix, '60', 'tiers', 'pro:acme', 'free:bob']));
    const t = (await Promise.all(tiers.map((p) => p.result))) as Record<string, number>[];
    expect(t.every((r) => r !== undefined)).toBe(true);
    const sum = (rs: Record<string, number>[], key: string) => rs.reduce((n, r) => n + r[key]!, 0);
    console.log(`3 pods x 60 calls per key, a resolver: pro ${sum(t, 'pro:acme')} of 100 allowed, free ${sum(t, 'free:bob')} of 10`);
    expect(sum(t, 'pro:acme')).toBe(100);
    expect(sum(t, 'free:bob')).toBe(10);

    // One pod of version 1 (30 a minute) records the key first; then two of version 0 (10 a minute) and it fire together.
    const first = await runPods(worker, [[port, prefix, '1', 'v1:30', 'shared']]);
    expect(await first[0]!.result).toEqual({ shared: 1 });
    const fleet = await runPods(worker, [[port, prefix, '40', 'v1:30', 'shared'], [port, prefix, '40', 'v0:10', 'shared'], [port, prefix, '40', 'v0:10', 'shared']]);
    const f = (await Promise.all(fleet.map((p) => p.result))) as Record<string, number>[];
    expect(f.every((r) => r !== undefined)).toBe(true);
    console.log(`1 pod of version 1 (30/min) and 2 of version 0 (10/min), 40 calls each on one key: allowed ${f.map((r) => r.shared).join(' + ')} + 1 earlier`);
    expect(1 + sum(f, 'shared')).toBe(30);
  }, 60_000);

  it('3 OS processes calling setPolicy mid-run: the limit before, then the new one, exactly (each carry)', async () => {
    const port = String(redis.server.port);
    for (const [carry, after] of [['reset', 30], ['proportional', 0], ['as-is', 0]] as const) {
      const prefix = `plansswitch${run++}`;
      const pods = await runPods(worker, [0, 1, 2].map(() => [port, prefix, '40', `switch:${carry}`, 'k']));
      const rs = (await Promise.all(pods.map((p) => p.result))) as Record<string, number>[];
      expect(rs.every((r) => r !== undefined)).toBe(true);
      const total = rs.reduce((n, r) => n + r.k!, 0);
      console.log(`3 pods x 40 calls, setPolicy(10/min -> 30/min, carry '${carry}') after 20 each: allowed ${total} (${rs.map((r) => r.k).join(' + ')})`);
      // Each pod's first 20 calls alone use the old plan's 10; the first pod to change moves the key.
      expect([carry, total]).toEqual([carry, 10 + after]);
    }
  }, 90_000);

  it('nodes that disagree (a rolling deploy, equal versions) move a key at every call: never a lockout, never past the larger plan', async () => {
    const pairs: [Policy, Policy][] = [
      [gcra({ limit: 10, period: '1h', burst: 10 }), gcra({ limit: 20, period: '1h', burst: 20 })],
      [linearWindow({ limit: 10, within: '1h' }), linearWindow({ limit: 20, within: '1h' })],
      [fixedWindow({ limit: 3, window: '1h' }), fixedWindow({ limit: 7, window: '1h' })],
      [tokenBucket({ capacity: 10, refill: 10, period: '1h', mode: 'interval' }), slidingWindow({ limit: 20, window: '1h' })],
    ];
    for (const [a, b, carry] of [...pairs.map(([x, y]) => [x, y, 'proportional'] as const), [pairs[1]![0], pairs[1]![1], 'reset'] as const]) {
      const clock = manualClock();
      await twoNodes(`flip${run++}`, async (s1, s2) => {
        // (A reset is a newer version's: at one version the key's use is carried, whatever `carry` says.)
        const n1 = new Limiter({ name: 'flip', policy: a, store: s1, clock: clock.now, carry });
        const n2 = new Limiter({ name: 'flip', policy: b, store: s2, clock: clock.now, carry });
        const perHour: number[] = [];
        for (let h = 0; h < 4; h++) {
          let ok = 0;
          for (let m = 0; m < 60; m++) {
            if ((await (m % 2 === 0 ? n1 : n2).limit('k')).allowed) ok++;
            clock.advance(60_000);
          }
          perHour.push(ok);
        }
        console.log(`${a.kind} ${a.core.capacity} <-> ${b.kind} ${b.core.capacity} (carry ${carry}), one call a minute alternating nodes: admitted per hour ${perHour.join(', ')}`);
        // Every hour admits again, and never more than the larger plan could in an hour (its capacity and an hour's refill).
        const most = 2 * Math.max(a.core.capacity, b.core.capacity);
        expect([a.kind, b.kind, perHour.every((n) => n >= Math.min(a.core.capacity, b.core.capacity) / 2 && n <= most)]).toEqual([a.kind, b.kind, true]);
      });
    }
  });

  it('hostile keys: a key spelling another key\'s record or state, unicode, a foreign record value', async () => {
    const clock = manualClock();
    const store = storeOf(modelClock);
    try {
      const limiter = new Limiter({ name: 'x', policy: free, store, clock: clock.now });
      const keys = ['a', 'a|@x', 'a|x/2:60000:10:0', '|@x', '@x', 'a|', 'ключ', '🔑\uD800'];
      for (const k of keys) expect([k, await admittedAsync(limiter, k, 3)]).toEqual([k, 3]);
      limiter.setPolicy(pro);
      // Each kept its own 3 used of 10 (30 of 100 after the change): none read another's record.
      for (const k of keys) expect([k, await admittedAsync(limiter, k, 100)]).toEqual([k, 70]);
      // A key never called has no record.
      expect(await redis.client.keys('*:victim|@x')).toEqual([]);
      // A foreign value where a record lives: the key's calls are refused with a typed error, nothing else touched.
      await limiter.limit('victim');
      const [recordKey] = await redis.client.keys('*:victim|@x');
      await redis.client.del(recordKey!);
      await redis.client.hset(recordKey!, 'f', 'v');
      await expect(limiter.limit('victim')).rejects.toThrow(RedisStateError);
      expect(await redis.client.hget(recordKey!, 'f')).toBe('v');
      expect((await limiter.limit('a')).allowed).toBe(false);
    } finally {
      await store.close();
    }
  });

  it('setPolicy called again and again through Redis lets the replaced plans go: no cap is met', async () => {
    const clock = manualClock();
    const store = storeOf(modelClock);
    try {
      const limiter = new Limiter({ name: 'often', policy: free, store, clock: clock.now });
      for (let i = 0; i < 2 * MAX_PLANS; i++) {
        limiter.setPolicy(i % 2 === 0 ? pro : free);
        await limiter.limit('k');
      }
      expect(await admittedAsync(limiter, 'k', 10)).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('a 3-master Cluster and one server: plans on many shards, carried through another store, a stale store corrected', async () => {
    let cluster: RedisCluster | undefined;
    let clusterClient: Cluster | undefined;
    try {
      cluster = await startRedisCluster({ masters: 3 });
      clusterClient = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 } });
      const server = () => new Redis({ host: redis.server.host, port: redis.server.port, maxRetriesPerRequest: 1 });
      for (const [label, makeClient] of [['cluster', () => clusterClient!], ['one server', server]] as const) {
        const keys = Array.from({ length: 200 }, (_, i) => `tenant:${i}:\u00e9`);
        const [ca, cb] = [makeClient(), makeClient()];
        const prefix = `plansmany${run++}`;
        const a = new RedisStore({ client: ca, prefix, timeoutMs: 10_000 });
        const b = new RedisStore({ client: cb, prefix, timeoutMs: 10_000 });
        const tier = (key: string) => (Number(key.split(':')[1]) % 2 === 0 ? linearWindow({ limit: 4, within: '1h' }) : linearWindow({ limit: 2, within: '1h' }));
        const first = new Limiter({ name: 'many', policy: tier, store: a });
        expect((await first.limitMany(keys)).every((d) => d.allowed)).toBe(true);
        // Another store's limiter answers version 1, 8 an hour, for every key: 1 of 4 used is 2 of 8, 1 of 2 is 4 of 8.
        const second = new Limiter({ name: 'many', policy: () => ({ policy: linearWindow({ limit: 8, within: '1h' }), version: 1 }), store: b });
        const allowed = keys.map(() => 0);
        for (let round = 0; round < 8; round++) (await second.limitMany(keys)).forEach((d, i) => d.allowed && allowed[i]!++);
        expect([label, allowed]).toEqual([label, keys.map((_, i) => (i % 2 === 0 ? 6 : 4))]);
        // The first store still answers version 0: Redis decides by version 1, all used.
        expect([label, (await first.limitMany(keys)).filter((d) => d.allowed).length]).toEqual([label, 0]);
        await Promise.all([a.close(), b.close()]);
        for (const c of [ca, cb]) if (c !== clusterClient) c.disconnect();
      }
    } finally {
      clusterClient?.disconnect();
      await cluster?.stop();
    }
  }, 90_000);

  it('through Redis: revisions of one tier share a binding (no cap met), and a tenant toggling tiers keeps its day quota', async () => {
    const clock = manualClock();
    const store = storeOf(modelClock);
    try {
      const tier = fixedWindow({ limit: 2, window: '1d' });
      const revisions = new Limiter({ name: 'rev', policy: (key) => ({ policy: tier, version: Number(key.slice(1)) }), store, clock: clock.now });
      const ds = await Promise.all(Array.from({ length: 3 * MAX_PLANS }, (_, i) => revisions.limit(`t${i}`)));
      expect(ds.every((d) => d.allowed)).toBe(true);

      const freeDay = fixedWindow({ limit: 100, window: '1d' });
      const proPlan = [gcra({ limit: 50, period: '1s', burst: 50 }), fixedWindow({ limit: 1000, window: '1d' })];
      let onPro = false;
      let version = 0;
      const tenant = new Limiter({ name: 'toggle', policy: () => ({ policy: onPro ? proPlan : freeDay, version }), store, clock: clock.now });
      let underFree = await admittedAsync(tenant, 'acme', 150);
      for (let round = 0; round < 5; round++) {
        onPro = true;
        version++;
        tenant.invalidate('acme');
        await tenant.limit('acme');
        onPro = false;
        version++;
        tenant.invalidate('acme');
        clock.advance(3000);
        underFree += await admittedAsync(tenant, 'acme', 150);
      }
      // A day's 100 under free, however often the tier went up and down.
      expect(underFree).toBe(100);
    } finally {
      await store.close();
    }
  });

  it('Redis frozen, then emptied: a limiter with plans falls back within its limit, never throws, and starts afresh no wider than its plan', async () => {
    const client = new Redis({ host: redis.server.host, port: redis.server.port, maxRetriesPerRequest: 1 });
    const store = new RedisStore({ client, prefix: `plansdown${run++}`, timeoutMs: 100, fallback: { nodes: 1 } });
    try {
      const tiers = { pro: linearWindow({ limit: 20, within: '1h' }), free: linearWindow({ limit: 10, within: '1h' }) };
      const limiter = new Limiter({ name: 'down', policy: (key) => (key.startsWith('pro') ? tiers.pro : tiers.free), store });
      expect(await admittedAsync(limiter, 'free:a', 15)).toBe(10);
      expect(await admittedAsync(limiter, 'pro:a', 5)).toBe(5);
      await redis.client.client('PAUSE', 2000, 'ALL');
      const during: Decision[] = [];
      try {
        for (let i = 0; i < 10; i++) during.push(await limiter.limit('free:a'), await limiter.limit('pro:a'));
      } finally {
        await redis.client.client('UNPAUSE');
      }
      const fallback = during.filter((d) => d.source === 'fallback');
      expect(fallback.length).toBeGreaterThan(0);
      // The fallback knew each key's use from Redis's answers: free had none left, pro 15 of 20.
      expect(during.filter((d, i) => i % 2 === 0 && d.allowed).length).toBe(0);
      expect(during.filter((d, i) => i % 2 === 1 && d.allowed).length).toBeLessThanOrEqual(15);
      // Redis restarted empty: states and records gone together, so a key starts afresh under its own plan, no wider.
      await new Promise((r) => setTimeout(r, 1500));
      await redis.client.flushall();
      let strict = 0;
      let allowed = 0;
      for (let i = 0; i < 30; i++) {
        const d = await limiter.limit('free:a');
        if (d.source === 'redis') strict++;
        if (d.allowed && d.source === 'redis') allowed++;
      }
      expect(strict).toBeGreaterThan(0);
      expect(allowed).toBeLessThanOrEqual(10);
    } finally {
      await store.close();
      client.disconnect();
    }
  }, 30_000);

  it('a resolver limiter on Redis needs a name; leased mode refuses plans', async () => {
    const store = storeOf();
    const leased = storeOf({ mode: 'leased' });
    try {
      expect(() => new Limiter({ policy: () => free, store })).toThrow(expect.objectContaining({ parameter: 'name' }));
      expect(() => new Limiter({ name: 'l', policy: free, store: leased })).toThrow(expect.objectContaining({ parameter: 'store' }));
    } finally {
      await store.close();
      await leased.close();
    }
  });
});
