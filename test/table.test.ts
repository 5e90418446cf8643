// The state table: decay, eviction, sizing, sharing, the batch path and key hashing.
import { describe, expect, it } from 'vitest';
import { EmbeddedStore, Limiter, MAX_KEYS, fixedWindow, gcra, linearWindow, slidingWindow, tokenBucket } from '../src/index.js';
import { hashKey, keyHi, keyLo } from '../src/key-hash.js';

describe('table', () => {
  it('drops records that decayed to "never seen" for free', () => {
    const store = new EmbeddedStore({ maxKeys: 100 });
    let now = 0;
    const limiter = new Limiter({ policy: gcra({ limit: 100, period: '1s' }), store, clock: () => now });
    for (let i = 0; i < 100; i++) expect(limiter.limitSync(`a${i}`).allowed).toBe(true);
    expect(store.stats(now).keys).toBe(100);
    now = 10; // every record's TAT (t + 10 ms) has passed
    expect(store.stats(now).keys).toBe(0);
    for (let round = 0; round < 50; round++) {
      now += 10;
      for (let i = 0; i < 100; i++) limiter.limitSync(`r${round}-${i}`);
    }
    expect(store.stats(now).evictions).toBe(0);
  });

  it('when full of live records, evicts the soonest to expire and counts it', () => {
    const store = new EmbeddedStore({ maxKeys: 16 });
    const { slots } = store.stats(0);
    let now = 0;
    const limiter = new Limiter({ policy: linearWindow({ limit: 1, within: '1h' }), store, clock: () => now });
    const n = slots * 4;
    for (let i = 0; i < n; i++) {
      now = i; // later keys expire later
      expect(limiter.limitSync(`k${i}`).allowed).toBe(true);
    }
    const { keys, evictions } = store.stats(now);
    expect(keys).toBeLessThanOrEqual(slots);
    expect(evictions).toBe(n - keys);
    // Each eviction takes the oldest of 16 candidate slots, so the newest 16 keys always survive.
    for (let i = n - 16; i < n; i++) expect(limiter.limitSync(`k${i}`).allowed, `k${i}`).toBe(false);
  });

  it('sizes memory by maxKeys: 1M keys fit in at most 64 MiB', () => {
    const store = new EmbeddedStore({ maxKeys: 1_000_000 });
    const { slots, tableBytes } = store.stats(0);
    expect(slots).toBeGreaterThanOrEqual(1_000_000);
    expect(tableBytes).toBe(slots * 32);
    expect(tableBytes).toBeLessThanOrEqual(64 * 1024 * 1024);
    expect(new EmbeddedStore({ maxKeys: 1000 }).stats(0).tableBytes).toBeLessThan(64 * 1024);
    expect(() => new EmbeddedStore({ maxKeys: MAX_KEYS + 1 })).toThrow(RangeError);
  });

  it('holds maxKeys live keys without evicting', () => {
    const maxKeys = 200_000;
    const store = new EmbeddedStore({ maxKeys });
    const limiter = new Limiter({ policy: fixedWindow({ limit: 1, window: '1h' }), store, clock: () => 0 });
    for (let i = 0; i < maxKeys; i++) limiter.limitSync(`user:${i}`);
    const { keys, evictions } = store.stats(0);
    expect(evictions).toBe(0);
    expect(keys).toBe(maxKeys);
  });

  it('stays within its table under a flood of 10M distinct keys, counting evictions, never growing', () => {
    const store = new EmbeddedStore({ maxKeys: 100_000 });
    let now = 0;
    const limiter = new Limiter({ policy: fixedWindow({ limit: 5, window: '1h' }), store, clock: () => now });
    const before = store.stats(now);
    const n = 10_000_000;
    let admitted = 0;
    for (let i = 0; i < n; i++) {
      if (limiter.limitSync(`flood:${i}`).allowed) admitted++;
      if ((i & 0xffff) === 0) now += 1; // time moves, records stay live (1 h windows)
    }
    const after = store.stats(now);
    expect(admitted).toBe(n); // every key is new: each first request passes
    expect(after.memoryBytes).toBe(before.memoryBytes);
    expect(after.tableBytes).toBe(before.tableBytes);
    expect(after.keys).toBeLessThanOrEqual(after.slots);
    expect(after.keys).toBeGreaterThan(100_000);
    expect(after.evictions).toBe(n - after.keys);
  }, 60_000);

  it('keeps limiters sharing one store apart', () => {
    const store = new EmbeddedStore();
    const a = new Limiter({ policy: fixedWindow({ limit: 1, window: '1s' }), store, clock: () => 0 });
    const b = new Limiter({ policy: fixedWindow({ limit: 1, window: '1s' }), store, clock: () => 0 });
    expect(a.limitSync('k').allowed).toBe(true);
    expect(a.limitSync('k').allowed).toBe(false);
    expect(b.limitSync('k').allowed).toBe(true);
  });
});

describe('batch path', () => {
  it('decides like limitSync called for each key in order, across chunk boundaries', () => {
    const policies = [
      gcra({ limit: 3, period: '1s', burst: 2 }),
      tokenBucket({ capacity: 3, period: '1s', mode: 'interval' }),
      slidingWindow({ limit: 4, window: '1s' }),
      [gcra({ limit: 10, period: '1s' }), fixedWindow({ limit: 2, window: '1s' })],
    ];
    for (const policy of policies) {
      let now = 5_000;
      const one = new Limiter({ policy, clock: () => now });
      const many = new Limiter({ policy, clock: () => now });
      const keys = Array.from({ length: 3000 }, (_, i) => `k${(i * 7) % 900}`);
      for (let round = 0; round < 3; round++) {
        const expected = keys.map((k) => one.limitSync(k, { cost: 1 }));
        expect(many.limitManySync(keys)).toEqual(expected);
        now += 333;
      }
    }
  });

  it('has an async form with the same answers', async () => {
    const now = 0;
    const a = new Limiter({ policy: gcra({ limit: 1, period: '1s' }), clock: () => now });
    const d = await a.limitMany(['x', 'x', 'y']);
    expect(d.map((x) => x.allowed)).toEqual([true, false, true]);
  });
});

describe('key hashing', () => {
  it('gives 1M distinct keys distinct 64-bit hashes, spread evenly over shards', () => {
    const seen = new Set<bigint>();
    const shards = new Uint32Array(256);
    const n = 1_000_000;
    for (let i = 0; i < n; i++) {
      hashKey(`user:${i}`);
      seen.add((BigInt(keyHi >>> 0) << 32n) | BigInt(keyLo >>> 0));
      shards[keyHi >>> 24]!++;
    }
    expect(seen.size).toBe(n);
    const expected = n / 256;
    for (const count of shards) expect(Math.abs(count - expected)).toBeLessThan(expected * 0.1);
  });

  it('distinguishes keys that differ only in order or length', () => {
    const ids = ['ab', 'ba', 'a', 'a\0', '\0a', 'aa', 'aaa', 'k'.repeat(512)].map((k) => {
      hashKey(k);
      return `${keyLo}:${keyHi}`;
    });
    expect(new Set(ids).size).toBe(ids.length);
  });
});
