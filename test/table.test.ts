// The state table: decay, eviction, sizing, sharing, the batch path and key hashing.
import { describe, expect, it } from 'vitest';
import { ConfigError, EmbeddedStore, Limiter, MAX_KEYS, fixedWindow, gcra, linearWindow, slidingWindow, tokenBucket } from '../build/lib/src/index.js';

const hashes = new EmbeddedStore({ hashSeed: Uint8Array.from({ length: 16 }, (_, i) => i * 17) });

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

  it("at its cap with whenFull: 'evict', evicts the soonest to expire and counts it", () => {
    const store = new EmbeddedStore({ maxKeys: 16, whenFull: 'evict' });
    let now = 0;
    const limiter = new Limiter({ policy: linearWindow({ limit: 1, within: '1h' }), store, clock: () => now });
    const n = 200;
    for (let i = 0; i < n; i++) {
      now = i; // later keys expire later
      expect(limiter.limitSync(`k${i}`).allowed).toBe(true);
    }
    const { keys, evictions, slots, growths } = store.stats(now);
    expect(growths).toBe(0); // a cap of 16 keys is the first size already
    expect(keys).toBeLessThanOrEqual(slots);
    expect(evictions).toBe(n - keys);
    // Each eviction takes the oldest of the key's candidate slots, so the newest key always survives.
    expect(limiter.limitSync(`k${n - 1}`).allowed).toBe(false);
  });

  it("at its cap with whenFull: 'deny' (the default), refuses new keys and keeps every debt", async () => {
    const store = new EmbeddedStore({ maxKeys: 16 });
    const events: unknown[] = [];
    store.addEventListener('full', (e) => events.push((e as CustomEvent).detail));
    let now = 1_000;
    const limiter = new Limiter({ policy: fixedWindow({ limit: 1, window: '1h' }), store, clock: () => now });
    const admitted: string[] = [];
    let refused = 0;
    for (let i = 0; i < 500; i++) {
      const d = limiter.limitSync(`k${i}`);
      if (d.allowed) admitted.push(`k${i}`);
      else {
        refused++;
        // Told to come back when a record in its reach runs out: within the hour, finite.
        expect(d.retryAfterMs).toBeGreaterThan(0);
        expect(d.retryAfterMs).toBeLessThanOrEqual(3_600_000);
        expect(d.remaining).toBe(0);
      }
    }
    const { keys, slots, refusals, evictions } = store.stats(now);
    expect(admitted.length).toBe(keys);
    expect(keys).toBeGreaterThanOrEqual(16);
    expect(keys).toBeLessThanOrEqual(slots);
    expect(refusals).toBe(refused);
    expect(evictions).toBe(0);
    expect(events.length).toBe(0); // dispatched after the decision, not inside it
    await Promise.resolve();
    expect(events.length).toBe(1); // at most one event a second, with the counts
    expect(events[0]).toMatchObject({ evictions: 0, slots });
    // Every admitted key still owes its window: none got a fresh budget.
    for (const k of admitted) expect(limiter.limitSync(k).allowed, k).toBe(false);
    // The window ends, records decay, and room comes back.
    now += 3_600_000;
    expect(limiter.limitSync('newcomer').allowed).toBe(true);
  });

  it('grows instead of forgetting: 1M live keys keep their state by default, in at most 48 bytes each', () => {
    const store = new EmbeddedStore();
    const start = store.stats(0);
    expect(start.tableBytes).toBe(256 * 1024); // it starts small
    const limiter = new Limiter({ policy: fixedWindow({ limit: 1, window: '1h' }), store, clock: () => 0 });
    const n = 1_000_000;
    for (let i = 0; i < n; i++) if (!limiter.limitSync(`user:${i}`).allowed) throw new Error(`user:${i} was denied on its first request`);
    const { keys, evictions, refusals, tableBytes, growths } = store.stats(0);
    expect(keys).toBe(n);
    expect(evictions).toBe(0);
    expect(refusals).toBe(0);
    expect(growths).toBeGreaterThan(0);
    expect(tableBytes / keys).toBeLessThanOrEqual(48);
    // Every sampled key still owes its window (the old default table lost 876 of 1000).
    let forgot = 0;
    for (let i = 0; i < n; i += 997) if (limiter.limitSync(`user:${i}`).allowed) forgot++;
    expect(forgot).toBe(0);
    expect(() => new EmbeddedStore({ maxKeys: MAX_KEYS + 1 })).toThrow(ConfigError);
  }, 60_000);

  it('keeps its memory to the live keys under a flood of 10M distinct keys over a short policy', () => {
    const store = new EmbeddedStore();
    let now = 0;
    const limiter = new Limiter({ policy: fixedWindow({ limit: 5, window: '10ms' }), store, clock: () => now });
    const n = 10_000_000;
    let admitted = 0;
    for (let i = 0; i < n; i++) {
      if (limiter.limitSync(`flood:${i}`).allowed) admitted++;
      if (i % 2000 === 1999) now += 1; // 2000 new keys a millisecond: ~20k live at once
    }
    const after = store.stats(now);
    expect(admitted).toBe(n); // every key is new: each first request passes
    expect(after.evictions).toBe(0);
    expect(after.refusals).toBe(0);
    // Records that came back to full were reused: the table fits the ~22k live keys, not the 10M seen.
    expect(after.slots).toBeLessThanOrEqual(65_536);
    expect(after.memoryBytes).toBeLessThan(4 * 1024 * 1024);
  }, 120_000);

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
      const h = hashes.hashOf(`user:${i}`);
      seen.add(h);
      shards[Number(h >> 56n)]!++;
    }
    expect(seen.size).toBe(n);
    const expected = n / 256;
    for (const count of shards) expect(Math.abs(count - expected)).toBeLessThan(expected * 0.1);
  });

  it('distinguishes keys that differ only in order or length', () => {
    const ids = ['ab', 'ba', 'a', 'a\0', '\0a', 'aa', 'aaa', 'k'.repeat(512)].map((k) => {
      return hashes.hashOf(k);
    });
    expect(new Set(ids).size).toBe(ids.length);
  });
});
