// Attacks on the embedded table, as a client that picks its own keys would
// try them: computed collisions, floods of fresh keys, floods aimed at one
// key's buckets, odd strings. Each test fails if the limit can be exceeded or
// another key's state touched.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError, EmbeddedStore, Limiter, MAX_KEY_LENGTH, fixedWindow, gcra, linearWindow, slidingWindow, tokenBucket, type Policy } from '../build/lib/src/index.js';
import { shardHash } from '../build/lib/src/stores/redis/shard-hash.js';
import { ReferenceLimiter } from '../support/reference-model.js';
import { sipHash, tableHash } from './helpers/siphash-reference.js';

const seedA = Uint8Array.from({ length: 16 }, (_, i) => i);
const seedB = Uint8Array.from({ length: 16 }, (_, i) => 255 - i);
const stores = new Map<Uint8Array, EmbeddedStore>();
/** The key's hash in a store seeded with `seed`: the table's own SipHash, in the core. */
const hash = (key: string, seed: Uint8Array): bigint => {
  let store = stores.get(seed);
  if (store === undefined) stores.set(seed, (store = new EmbeddedStore({ hashSeed: seed })));
  return store.hashOf(key);
};
/** Any UTF-16 string: lone surrogates, NULs, astral pairs, everything. */
const anyString = (maxLength: number) =>
  fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength }).map((units) => String.fromCharCode(...units));

describe('keyed hashing', () => {
  it('is SipHash-1-3 over the key\'s UTF-16 code units, or its UTF-8 under a second key (the paper\'s 2-4 vector checks the reference)', () => {
    const key = Uint8Array.from({ length: 16 }, (_, i) => i);
    const message = Uint8Array.from({ length: 15 }, (_, i) => i);
    expect(sipHash(key, message, 2, 4)).toBe(0xa129ca6149be45e5n);
    const seedC = Uint8Array.from({ length: 16 }, (_, i) => (i * 73 + 5) & 0xff);
    const anyKey = fc.oneof(anyString(64), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 200 }), fc.string({ unit: 'binary', minLength: 30, maxLength: 200 }));
    fc.assert(
      fc.property(anyKey, fc.constantFrom(seedA, seedB, seedC), (s, seed) => {
        fc.pre(s.length <= MAX_KEY_LENGTH);
        expect(hash(s, seed)).toBe(tableHash(seed, s));
      }),
      { numRuns: 3000 },
    );
    // The core's key area holds the longest key in either encoding (both sized
    // from abi/abi.mjs); a longer key never reaches it.
    expect(() => new EmbeddedStore().hashOf('k'.repeat(MAX_KEY_LENGTH + 1))).toThrow(ArgumentError);
    // Every length up to the longest key, either side of the switch to UTF-8, with 3-byte characters too.
    for (let n = 1; n <= MAX_KEY_LENGTH; n++) {
      for (const s of ['k'.repeat(n - 1) + String.fromCharCode(n * 97), '€'.repeat(n), '\uD800'.repeat(n)]) {
        expect(hash(s, seedC), `length ${n}`).toBe(tableHash(seedC, s));
      }
    }
    fc.assert(
      fc.property(anyString(48), fc.uint8Array({ minLength: 16, maxLength: 16 }), (s, seed) => {
        expect(new EmbeddedStore({ hashSeed: seed }).hashOf(s)).toBe(tableHash(seed, s));
      }),
      { numRuns: 40 },
    );
  });

  it('keeps apart a short key and a long one whose UTF-8 is the short one\'s UTF-16 (the same bytes, hashed under two keys)', () => {
    const short = 'a'.repeat(20); // 20 units: hashed as UTF-16, 61 00 61 00 ...
    const long = 'a\0'.repeat(20); // 40 units, well-formed: hashed as UTF-8, 61 00 61 00 ...
    const utf16OfShort = new Uint8Array(40);
    for (let i = 0; i < 20; i++) utf16OfShort[2 * i] = 0x61;
    expect(new TextEncoder().encode(long)).toEqual(utf16OfShort);
    expect(hash(long, seedA)).not.toBe(hash(short, seedA));
    const limiter = new Limiter({ policy: fixedWindow({ limit: 1, window: '1h' }), clock: () => 0 });
    expect(limiter.limitSync(short).allowed).toBe(true);
    expect(limiter.limitSync(long).allowed).toBe(true);
    expect(limiter.limitSync(short).allowed).toBe(false);
  });

  it('changes every key\'s hash and bucket with the seed', () => {
    const a = new EmbeddedStore({ hashSeed: seedA });
    const b = new EmbeddedStore({ hashSeed: seedB });
    const again = new EmbeddedStore({ hashSeed: seedA });
    let sameBucket = 0;
    const n = 10_000;
    for (let i = 0; i < n; i++) {
      const key = `user:${i}`;
      expect(hash(key, seedA)).not.toBe(hash(key, seedB));
      expect(again.bucketOf(key)).toBe(a.bucketOf(key));
      if (a.bucketOf(key) === b.bucketOf(key)) sameBucket++;
    }
    // 1024 buckets: chance alone puts ~10 of 10k keys in the same bucket under both seeds.
    expect(sameBucket).toBeLessThan(40);
    // A random seed per store by default.
    expect(new EmbeddedStore().bucketOf('x') === new EmbeddedStore().bucketOf('x') && new EmbeddedStore().bucketOf('y') === new EmbeddedStore().bucketOf('y')).toBe(false);
  });

  it('no longer lets a collision built against the unkeyed hash lock the victim out', () => {
    const victim = 'login:admin';
    const attacker = 'login:aᛨm亝n'; // found in 1.5 s against cellgate 0.1's unkeyed 64-bit hash
    expect(shardHash(attacker)).toBe(shardHash(victim)); // the unkeyed construction (still used for Redis shards) collides
    expect(hash(attacker, seedA)).not.toBe(hash(victim, seedA));
    const limiter = new Limiter({ policy: fixedWindow({ limit: 5, window: '3m' }), clock: () => 0 });
    for (let i = 0; i < 6; i++) limiter.limitSync(attacker);
    expect(limiter.limitSync(attacker).allowed).toBe(false);
    expect(limiter.limitSync(victim)).toMatchObject({ allowed: true, remaining: 4 });
  });

  it('keeps any two distinct strings apart, lone surrogates included', () => {
    fc.assert(
      fc.property(anyString(40), anyString(40), (a, b) => {
        fc.pre(a !== b);
        const limiter = new Limiter({ policy: fixedWindow({ limit: 1, window: '1h' }), clock: () => 0 });
        expect(limiter.limitSync(a).allowed).toBe(true);
        expect(limiter.limitSync(a).allowed).toBe(false);
        expect(limiter.limitSync(b).allowed).toBe(true);
      }),
      { numRuns: 500 },
    );
    const limiter = new Limiter({ policy: fixedWindow({ limit: 1, window: '1h' }), clock: () => 0 });
    const odd = ['a\uD800', 'a\uDBFF', 'a\uFFFD', 'a\uDC00', 'a\uD800\uDC00', 'a\uDC00\uD800', 'a\0', 'a'];
    for (const k of odd) expect(limiter.limitSync(k).allowed, JSON.stringify(k)).toBe(true);
  });
});

describe('a key being denied stays denied', () => {
  it('through a flood of 10x the table\'s initial capacity in fresh keys', () => {
    const store = new EmbeddedStore();
    const initialSlots = store.stats(0).slots;
    let now = 1_000;
    const limiter = new Limiter({ policy: fixedWindow({ limit: 5, window: '1h' }), store, clock: () => now });
    let victimPassed = 0;
    for (let i = 0; i < 5; i++) limiter.limitSync('login:victim');
    for (let i = 0; i < initialSlots * 10; i++) {
      limiter.limitSync(`flood:${i}`);
      if (i % 1000 === 0 && limiter.limitSync('login:victim').allowed) victimPassed++;
      if (i % 10_000 === 0) now += 1;
    }
    expect(victimPassed).toBe(0);
    expect(limiter.limitSync('login:victim').allowed).toBe(false);
    const { evictions, refusals } = store.stats(now);
    expect(evictions + refusals).toBe(0);
  });

  it('through a flood aimed at its buckets by a client who knows the seed', () => {
    // The strongest attacker: the seed is known (in production it is not), so
    // keys can be picked that land in the victim's first-choice bucket.
    const store = new EmbeddedStore({ hashSeed: seedA });
    let now = 1_000;
    const limiter = new Limiter({ policy: gcra({ limit: 5, period: '1m', burst: 5 }), store, clock: () => now });
    for (let i = 0; i < 5; i++) expect(limiter.limitSync('login:victim').allowed).toBe(true);
    const target = store.bucketOf('login:victim');
    let aimed = 0;
    let victimPassed = 0;
    for (let i = 0; aimed < 5_000; i++) {
      const key = `aim:${i}`;
      if (store.bucketOf(key) !== target) continue; // the first-choice bucket, at the table's current size
      aimed++;
      for (let r = 0; r < 6; r++) limiter.limitSync(key);
      if (limiter.limitSync('login:victim').allowed) victimPassed++;
      now += 0.01;
    }
    expect(victimPassed).toBe(0);
    expect(store.stats(now).evictions).toBe(0);
  });

  it("through a flood against a capped table (whenFull: 'deny'): new keys wait, debts stay", () => {
    const store = new EmbeddedStore({ maxKeys: 1000 });
    const limiter = new Limiter({ policy: tokenBucket({ capacity: 3, refill: 3, period: '1h' }), store, clock: () => 5 });
    for (let i = 0; i < 3; i++) limiter.limitSync('victim');
    let flooders = 0;
    for (let i = 0; i < 100_000; i++) if (limiter.limitSync(`f${i}`).allowed) flooders++;
    expect(limiter.limitSync('victim').allowed).toBe(false);
    expect(flooders).toBeLessThanOrEqual(store.stats(5).slots);
    expect(store.stats(5).refusals).toBe(100_000 - flooders);
  });
});

describe("a capped table in deny mode evicts nothing, whatever the gates", () => {
  it('refuses a stacked-gate key that cannot get a slot for every gate, instead of evicting for the last one', async () => {
    // One bucket of 8 slots (maxKeys: 1): a new key's first gate could take
    // the last slot and its second gate evict a record that still owes.
    const store = new EmbeddedStore({ maxKeys: 1 });
    let now = Date.UTC(2030, 0, 1);
    const clock = () => now;
    const login = new Limiter({ policy: [linearWindow({ limit: 1, within: '1h' }), gcra({ limit: 1, period: '2h', burst: 10 })], store, clock });
    const other = new Limiter({ policy: linearWindow({ limit: 5, within: '3h' }), store, clock });
    expect(login.limitSync('login:admin').allowed).toBe(true);
    expect(login.limitSync('login:admin').allowed).toBe(false);
    now += 1000;
    login.limitSync('login:a');
    login.limitSync('login:b');
    other.limitSync('session:c'); // 7 of 8 slots
    now += 1000;
    const fresh = login.limitSync('login:x'); // needs two slots, one is left
    expect(fresh.allowed).toBe(false);
    expect(Number.isFinite(fresh.retryAfterMs) && fresh.retryAfterMs > 0).toBe(true);
    expect(store.stats(now)).toMatchObject({ evictions: 0, refusals: 1 });
    expect((await login.peek('login:admin')).allowed).toBe(false);
    await other.reset('session:c'); // a slot frees
    now += 1000;
    expect(login.limitSync('login:admin').allowed).toBe(false); // still owes its hour
    expect(store.checkTable(now)).toBe(-1);
  });

  it('admits nothing an uncapped model would deny, under random traffic on stacked gates', () => {
    const configs: Policy[][] = [
      [gcra({ limit: 1, period: '1s', burst: 60 }), gcra({ limit: 10, period: '1s', burst: 600 })],
      [linearWindow({ limit: 3, within: '30s' }), gcra({ limit: 100, period: '1s', burst: 100 })],
      [fixedWindow({ limit: 2, window: '10s' }), fixedWindow({ limit: 5, window: '20s' }), fixedWindow({ limit: 8, window: '40s' })],
    ];
    for (const [c, policies] of configs.entries()) {
      let seed = 7 + c;
      const random = () => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return seed / 2 ** 32;
      };
      const store = new EmbeddedStore({ maxKeys: 500, hashSeed: new Uint8Array(16).fill(c + 1) });
      let now = 1.8e12;
      const limiter = new Limiter({ policy: policies, store, clock: () => now });
      const model = new ReferenceLimiter(policies); // charged only with what the store admitted
      const capacity = Math.min(...policies.map((p) => p.core.capacity));
      let over = 0;
      let refused = 0;
      for (let i = 0; i < 100_000; i++) {
        now += random() * 2;
        const key = `k${Math.floor(random() * 3000)}`;
        const cost = 1 + Math.floor(random() * Math.min(capacity, 8));
        const d = limiter.limitSync(key, { cost });
        if (!d.allowed) {
          refused++;
          continue;
        }
        if (!model.limit(key, cost, now, true).allowed) over++;
        model.limit(key, cost, now, false);
      }
      const { evictions, refusals } = store.stats(now);
      expect(over, `config ${c}`).toBe(0);
      expect(evictions, `config ${c}`).toBe(0);
      expect(refusals).toBeGreaterThan(0); // the cap was reached
      expect(refusals).toBeLessThanOrEqual(refused); // counted once per request, not per gate
      expect(store.checkTable(now)).toBe(-1);
    }
  }, 60_000);
});

describe('a capped table with stacked gates leaves no claim behind', () => {
  it("in evict mode, evicting a record another gate of the same request holds does not strand a claim (a lockout of ~1.9e8 years once)", () => {
    const store = new EmbeddedStore({ maxKeys: 1, whenFull: 'evict', hashSeed: new Uint8Array(16) });
    let now = 1.7e12;
    const clock = () => now;
    const victim = new Limiter({ policy: [fixedWindow({ limit: 5, window: 10 }), fixedWindow({ limit: 100, window: '1h' })], store, clock });
    const other = new Limiter({ policy: linearWindow({ limit: 100, within: '2h' }), store, clock });
    expect(victim.limitSync('K').allowed).toBe(true);
    now += 20;
    for (let i = 0; i < 7; i++) other.limitSync(`f${i}`);
    expect(victim.limitSync('K').allowed).toBe(true);
    expect(store.checkTable(now)).toBe(-1);
    now += 3 * 86_400_000; // every window long over
    expect(store.stats(now).keys).toBe(0); // nothing left that never expires
    const later = victim.limitSync('K');
    expect(later.allowed).toBe(true);
    expect(later.retryAfterMs).toBe(0);
  });

  it('keeps its invariants under random traffic on stacked gates, in both modes (no claim leaks, no duplicate)', async () => {
    for (const whenFull of ['deny', 'evict'] as const) {
      for (let trial = 0; trial < 6; trial++) {
        let seed = 99 + trial;
        const random = () => {
          seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
          return seed / 2 ** 32;
        };
        const store = new EmbeddedStore({ maxKeys: 1 + Math.floor(random() * 60), whenFull, hashSeed: new Uint8Array(16).fill(trial) });
        let now = 1.8e12;
        const clock = () => now;
        const limiters = [
          new Limiter({ policy: [fixedWindow({ limit: 5, window: 10 }), fixedWindow({ limit: 100, window: '1h' })], store, clock }),
          new Limiter({ policy: [gcra({ limit: 10, period: '1s', burst: 3 }), linearWindow({ limit: 4, within: '2s' }), slidingWindow({ limit: 6, window: '3s' })], store, clock }),
          new Limiter({ policy: linearWindow({ limit: 100, within: '2h' }), store, clock }),
        ];
        for (let i = 0; i < 4000; i++) {
          now += random() * 20;
          const limiter = limiters[Math.floor(random() * limiters.length)]!;
          const key = `k${Math.floor(random() * 200)}`;
          const op = random();
          if (op < 0.6) limiter.limitSync(key);
          else if (op < 0.7) await limiter.peek(key);
          else if (op < 0.8) await limiter.reserve(key, { maxWaitMs: random() < 0.5 ? 50 : Infinity });
          else if (op < 0.9) await limiter.refund(key, 1);
          else if (op < 0.95) await limiter.reset(key);
          else limiter.limitManySync([key, `k${Math.floor(random() * 200)}`, key]);
          if (i % 500 === 0) expect(store.checkTable(now), `${whenFull} trial ${trial} op ${i}`).toBe(-1);
        }
        expect(store.checkTable(now)).toBe(-1);
        expect(store.stats(now + 1e12).keys, `${whenFull} trial ${trial}: records that never expire`).toBe(0);
        if (whenFull === 'deny') expect(store.stats(now).evictions).toBe(0);
      }
    }
  }, 60_000);

  it('tells a key with more gates than its buckets have slots a finite wait, in both modes', async () => {
    for (const whenFull of ['deny', 'evict'] as const) {
      for (const [maxKeys, gates] of [[1, 9], [1, 16], [6, 9]] as const) {
        const store = new EmbeddedStore({ maxKeys, whenFull, hashSeed: new Uint8Array(16) });
        let now = 1.7e12;
        const limiter = new Limiter({ policy: Array.from({ length: gates }, (_, i) => fixedWindow({ limit: 10, window: 1000 * (i + 1) })), store, clock: () => now });
        const d = limiter.limitSync('fresh');
        const where = `${whenFull}, maxKeys ${maxKeys}, ${gates} gates`;
        // Its gates cannot all be held: denied, and told when to come back.
        expect(d.allowed, where).toBe(false);
        expect(Number.isFinite(d.retryAfterMs) && d.retryAfterMs > 0, where).toBe(true);
        const r = await limiter.reserve('fresh', { maxWaitMs: 10_000 });
        expect(Number.isFinite(r.waitMs), where).toBe(true);
        expect(store.checkTable(now), where).toBe(-1);
        now += 1e9;
        expect(store.stats(now + 1e12).keys, where).toBe(0); // no claim stranded with exp +Infinity
      }
    }
  });
});

describe('growing keeps every state', () => {
  it('stacked gates agree with the reference model while records move and the table doubles under them', () => {
    // The third seed once lost a record: a moved record left a dead copy of its key behind.
    const policies: Policy[] = [gcra({ limit: 3, period: '1s', burst: 2 }), fixedWindow({ limit: 4, window: '2s' }), slidingWindow({ limit: 5, window: '3s' })];
    for (const hashSeed of [seedA, seedB, Uint8Array.from(Buffer.from('5c3fc9d58773539c7d23e6d5b81e03bd', 'hex'))]) {
      const store = new EmbeddedStore({ hashSeed });
      let now = 1_700_000_000_000;
      const limiter = new Limiter({ policy: policies, store, clock: () => now });
      const model = new ReferenceLimiter(policies);
      let seed = 12345;
      const random = (n: number) => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return seed % n;
      };
      for (let i = 0; i < 120_000; i++) {
        const key = `k${random(40_000)}`;
        const cost = 1 + random(2);
        now += random(3) === 0 ? 0.5 : 0;
        const { source: _s, ...got } = limiter.limitSync(key, { cost });
        const expected = model.limit(key, cost, now, false);
        if (JSON.stringify(got) !== JSON.stringify(expected)) expect(got, `op ${i} ${key}`).toEqual(expected);
        if (i % 5000 === 0) expect(store.checkTable(now), `table invariants after op ${i}`).toBe(-1);
      }
      expect(store.checkTable(now)).toBe(-1);
      const { growths, evictions, refusals } = store.stats(now);
      expect(growths).toBeGreaterThanOrEqual(2);
      expect(evictions + refusals).toBe(0);
    }
  }, 60_000);

  it('answers the same whether a table grew or started large enough', () => {
    const keys = Array.from({ length: 60_000 }, (_, i) => `user:${(i * 7919) % 20_000}`);
    const run = (store: EmbeddedStore) => {
      const limiter = new Limiter({ policy: fixedWindow({ limit: 2, window: '1h' }), store, clock: () => 0 });
      return limiter.limitManySync(keys).map((d) => d.allowed);
    };
    const grown = new EmbeddedStore({ hashSeed: seedA });
    const small = run(grown);
    expect(grown.stats(0).growths).toBeGreaterThan(0);
    const expected = keys.map((_, i) => i < 40_000); // each key thrice: twice admitted, then denied
    expect(small).toEqual(expected);
  });
});
