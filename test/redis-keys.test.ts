// Keys a client picks, through a real Redis store: odd strings in one batch,
// lone surrogates, a collision built against the unkeyed hash, and a custom
// limiter's keys. Each test fails if one key's state reaches another.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Limiter, fixedWindow, type RateLimiter } from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { shardHash } from '../build/lib/src/stores/redis/shard-hash.js';
import { keyBytes } from '../build/lib/src/stores/redis/key-bytes.js';
import { useRedis } from './helpers/use-redis.js';

const patient = { timeoutMs: 10_000 } as const;
const db = useRedis();
/** Any UTF-16 string: lone surrogates, NULs, astral pairs, separators. */
const anyString = (maxLength: number) =>
  fc.array(fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(0xd800, 0xdbff, 0xdc00, 0xfffd, 0x7c, 0x2c, 0x7b, 0x7d)), { minLength: 1, maxLength }).map((units) => String.fromCharCode(...units));

describe('keys through Redis', () => {
  it('a key with a lone surrogate does not shift the other keys of its batch (the byte count once came out 2 short)', async () => {
    const store = new RedisStore({ ...patient, client: db.client, prefix: 'shift:', shards: 1, negativeCache: false });
    const limiter = new Limiter({ policy: fixedWindow({ limit: 1, window: '1h' }), store });
    // First, as another pod would, use up user:5.
    expect((await limiter.limit('user:5')).allowed).toBe(true);
    // Then a batch with the odd key in front of it: user:5 must stay denied, 50 times over.
    for (let round = 0; round < 50; round++) {
      const [odd, victim] = await Promise.all([limiter.limit(`\uD800€${round}`), limiter.limit('user:5')]);
      expect(odd.allowed).toBe(true);
      expect(victim.allowed, `round ${round}`).toBe(false);
    }
  });

  it('keeps any distinct strings apart in one batch, and gives each a Redis key of its own', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(anyString(24), { minLength: 2, maxLength: 12 }), async (keys) => {
        const prefix = `any${run++}:`;
        const store = new RedisStore({ ...patient, client: db.client, prefix, shards: 16, negativeCache: false });
        const limiter = new Limiter({ policy: fixedWindow({ limit: 1, window: '1h' }), store });
        const first = await Promise.all(keys.map((k) => limiter.limit(k)));
        expect(first.map((d) => d.allowed)).toEqual(keys.map(() => true));
        const second = await Promise.all(keys.map((k) => limiter.limit(k)));
        expect(second.map((d) => d.allowed)).toEqual(keys.map(() => false));
        // Each key charged exactly its own Redis key: <prefix>{<shard>}:<the key's WTF-8>|<gate id>.
        const gate = fixedWindow({ limit: 1, window: '1h' }).core;
        const expected = keys.map((k) => Buffer.concat([Buffer.from(`${store.shardKey(store.shardOf(k))}:`), keyBytes(k), Buffer.from(`|${gate.code}:${gate.p0}:${gate.p1}:${gate.p2}`)]).toString('hex'));
        const stored = (await db.client.keysBuffer(`${prefix}*`)).map((b) => b.toString('hex')).filter((k) => k !== Buffer.from(`${prefix}{fleet}`).toString('hex'));
        expect(stored.sort()).toEqual(expected.sort());
      }),
      { numRuns: 60 },
    );
  }, 60_000);

  it('on a single server one script call carries the keys of every shard, each stored under its own shard', async () => {
    const store = new RedisStore({ ...patient, client: db.client, prefix: 'route=a,b:', negativeCache: false });
    const limiter = new Limiter({ policy: fixedWindow({ limit: 1, window: '1h' }), store });
    const keys = Array.from({ length: 1000 }, (_, i) => `user:${i}`);
    const shards = new Set(keys.map((k) => store.shardOf(k)));
    expect(shards.size).toBe(store.shards);
    await limiter.limit('warm-up'); // the script loaded, the clock offset learned
    const evalsha = async () => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await db.client.info('commandstats'))?.[1] ?? 0);
    const before = await evalsha();
    const first = await Promise.all(keys.map((k) => limiter.limit(k)));
    const calls = (await evalsha()) - before;
    expect(first.every((d) => d.allowed && d.source === 'redis')).toBe(true);
    // Split over the (at most 3) batches in flight, never one per shard (64 before).
    expect(calls).toBeLessThanOrEqual(3);
    const second = await Promise.all(keys.map((k) => limiter.limit(k)));
    expect(second.filter((d) => d.allowed)).toEqual([]);
    const gate = fixedWindow({ limit: 1, window: '1h' }).core;
    for (const k of [keys[0]!, keys[1]!, keys[999]!]) {
      expect(await db.client.exists(`${store.shardKey(store.shardOf(k))}:${k}|${gate.code}:${gate.p0}:${gate.p1}:${gate.p2}`), k).toBe(1);
    }
    await store.close();
  });

  it('tells apart keys that UTF-8 would spell alike (lone surrogates against U+FFFD)', async () => {
    const store = new RedisStore({ ...patient, client: db.client, prefix: 'fffd:', negativeCache: false });
    const limiter = new Limiter({ policy: fixedWindow({ limit: 2, window: '1h' }), store });
    for (let i = 0; i < 2; i++) expect((await limiter.limit('login:\uFFFD')).allowed).toBe(true);
    expect((await limiter.limit('login:\uFFFD')).allowed).toBe(false);
    for (const k of ['login:\uD800', 'login:\uDBFF', 'login:\uDC00']) expect((await limiter.limit(k)).allowed, JSON.stringify(k)).toBe(true);
  });

  it('keeps the victim of a collision built against the unkeyed hash free, with the mirror answering denials', async () => {
    const victim = 'login:admin';
    const attacker = 'login:aᛨm亝n';
    expect(shardHash(attacker)).toBe(shardHash(victim)); // same shard: one batch, one mirror
    const limiter = new Limiter({ policy: fixedWindow({ limit: 5, window: '3m' }), store: new RedisStore({ ...patient, client: db.client, prefix: 'collide:' }) });
    for (let i = 0; i < 8; i++) await limiter.limit(attacker);
    expect(await limiter.limit(attacker)).toMatchObject({ allowed: false, source: 'local' }); // the mirror denies the attacker
    expect(await limiter.limit(victim)).toMatchObject({ allowed: true, source: 'redis', remaining: 4 });
  });

  it('gives a custom limiter one Redis key per distinct string', async () => {
    const once: RateLimiter<number> = {
      name: 'once',
      capacity: 1,
      initial: () => 0,
      decide: (used, _now, cost) => (used + cost > 1 ? { allowed: false, retryAfterMs: 60_000 } : { allowed: true, state: used + cost, ttlMs: 60_000 }),
    };
    const limiter = new Limiter({ policy: once, store: new RedisStore({ ...patient, client: db.client, prefix: 'custom-keys:' }) });
    const keys = ['c:\uD800', 'c:\uDBFF', 'c:\uFFFD', 'c:|custom:once', 'c:'];
    for (const k of keys) expect((await limiter.limit(k)).allowed, JSON.stringify(k)).toBe(true);
    for (const k of keys) expect((await limiter.limit(k)).allowed, JSON.stringify(k)).toBe(false);
  });
});
