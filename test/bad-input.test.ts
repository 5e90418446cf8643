// Every public entry point, fed wrong types, NaN, infinities, negatives, zero,
// huge numbers and bad keys: each throws a typed error naming the parameter,
// and nothing changes.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ArgumentError,
  CellgateError,
  ConfigError,
  EmbeddedStore,
  Limiter,
  MAX_CLOCK_MS,
  MAX_KEY_LENGTH,
  fixedWindow,
  gcra,
  linearWindow,
  parseDuration,
  slidingWindow,
  tokenBucket,
} from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { startRedis, type RedisServer } from '../build/lib/src/cli/redis-server.js';

const badNumbers: unknown[] = [0, -1, -0.5, 0.5, 1.5, NaN, Infinity, -Infinity, 1e300, 2 ** 53, '5', null, true, {}, [], 10n];
const badDurations: unknown[] = [0, -1, NaN, Infinity, -Infinity, 1e300, '', 'soon', '3 weeks', '-1s', '1e3s', 's', null, {}, [], true];
const badKeys: unknown[] = ['', 'x'.repeat(MAX_KEY_LENGTH + 1), 42, null, undefined, {}, ['k'], Symbol('k')];
const badCosts: unknown[] = [0, -1, 1.5, NaN, Infinity, -Infinity, 1e300, 2 ** 53, '1', null, true];

type Case = [label: string, fn: () => unknown, errorClass: typeof ConfigError | typeof ArgumentError, parameter: string];

const factoryCases: Case[] = [
  ...badNumbers.map((v): Case => [`gcra limit ${String(v)}`, () => gcra({ limit: v as number, period: '1s' }), ConfigError, 'limit']),
  ...badNumbers.map((v): Case => [`gcra burst ${String(v)}`, () => gcra({ limit: 1, period: '1s', burst: v as number }), ConfigError, 'burst']),
  ...badDurations.map((v): Case => [`gcra period ${String(v)}`, () => gcra({ limit: 1, period: v as never }), ConfigError, 'period']),
  ...badNumbers.map((v): Case => [`tokenBucket capacity ${String(v)}`, () => tokenBucket({ capacity: v as number, period: '1s' }), ConfigError, 'capacity']),
  ...badNumbers.map((v): Case => [`tokenBucket refill ${String(v)}`, () => tokenBucket({ capacity: 1, refill: v as number, period: '1s' }), ConfigError, 'refill']),
  ...badDurations.map((v): Case => [`tokenBucket period ${String(v)}`, () => tokenBucket({ capacity: 1, period: v as never }), ConfigError, 'period']),
  [`tokenBucket mode`, () => tokenBucket({ capacity: 1, period: '1s', mode: 'bursty' as never }), ConfigError, 'mode'],
  ...badNumbers.map((v): Case => [`fixedWindow limit ${String(v)}`, () => fixedWindow({ limit: v as number, window: '1s' }), ConfigError, 'limit']),
  ...badDurations.map((v): Case => [`fixedWindow window ${String(v)}`, () => fixedWindow({ limit: 1, window: v as never }), ConfigError, 'window']),
  ...badNumbers.map((v): Case => [`linearWindow limit ${String(v)}`, () => linearWindow({ limit: v as number, within: '1s' }), ConfigError, 'limit']),
  ...badDurations.map((v): Case => [`linearWindow within ${String(v)}`, () => linearWindow({ limit: 1, within: v as never }), ConfigError, 'within']),
  ...badNumbers.map((v): Case => [`slidingWindow limit ${String(v)}`, () => slidingWindow({ limit: v as number, window: '1s' }), ConfigError, 'limit']),
  ...badDurations.map((v): Case => [`slidingWindow window ${String(v)}`, () => slidingWindow({ limit: 1, window: v as never }), ConfigError, 'window']),
  ...badDurations.map((v): Case => [`parseDuration ${String(v)}`, () => parseDuration(v, 'timeout'), ConfigError, 'timeout']),
  [`gcra without options`, () => (gcra as (o?: unknown) => unknown)(), ConfigError, 'gcra() options'],
  [`Limiter without options`, () => new (Limiter as new (o?: unknown) => Limiter)(), ConfigError, 'new Limiter() options'],
  ...[undefined, null, 5, {}, { core: null }, [], new Array(17).fill(gcra({ limit: 1, period: 1 })), [gcra({ limit: 1, period: 1 }), 'x']].map(
    (v): Case => [`Limiter policy ${JSON.stringify(v)?.slice(0, 30)}`, () => new Limiter({ policy: v as never }), ConfigError, 'policy'],
  ),
  ...[5, 'now', null].map((v): Case => [`Limiter clock ${String(v)}`, () => new Limiter({ policy: gcra({ limit: 1, period: 1 }), clock: v as never }), ConfigError, 'clock']),
  ...[5, 'redis', {}].map((v): Case => [`Limiter store ${String(v)}`, () => new Limiter({ policy: gcra({ limit: 1, period: 1 }), store: v as never }), ConfigError, 'store']),
  ...[0, -1, 1.5, NaN, Infinity, 2 ** 40, '100'].map((v): Case => [`EmbeddedStore maxKeys ${String(v)}`, () => new EmbeddedStore({ maxKeys: v as number }), ConfigError, 'maxKeys']),
  ...['drop', 'DENY', '', null, 1, true].map((v): Case => [`EmbeddedStore whenFull ${String(v)}`, () => new EmbeddedStore({ whenFull: v as 'deny' }), ConfigError, 'whenFull']),
  ...[new Uint8Array(15), new Uint8Array(17), new Uint16Array(8), 'seed', 42, [1, 2]].map((v): Case => [
    `EmbeddedStore hashSeed ${Object.prototype.toString.call(v)}`,
    () => new EmbeddedStore({ hashSeed: v as Uint8Array }),
    ConfigError,
    'hashSeed',
  ]),
  // Construction only validates and registers the script: a client with defineCommand is enough.
  ...[undefined, null, {}, 'redis://localhost'].map((v): Case => [`RedisStore client ${String(v)}`, () => new RedisStore({ client: v as never }), ConfigError, 'client']),
  ...[5, 'a{b}', 'x'.repeat(300)].map((v): Case => [`RedisStore prefix ${String(v).slice(0, 10)}`, () => new RedisStore({ client: scriptable(), prefix: v as never }), ConfigError, 'prefix']),
  ...[0, 3, 1.5, 32768, NaN, '64'].map((v): Case => [`RedisStore shards ${String(v)}`, () => new RedisStore({ client: scriptable(), shards: v as never }), ConfigError, 'shards']),
  [`RedisStore time`, () => new RedisStore({ client: scriptable(), time: 'local' as never }), ConfigError, 'time'],
  ...[-1, NaN, 5000, '1'].map((v): Case => [`RedisStore batch.maxDelayMs ${String(v)}`, () => new RedisStore({ client: scriptable(), batch: { maxDelayMs: v as never } }), ConfigError, 'batch.maxDelayMs']),
  ...[0, 1.5, 1e6].map((v): Case => [`RedisStore batch.maxSize ${String(v)}`, () => new RedisStore({ client: scriptable(), batch: { maxSize: v } }), ConfigError, 'batch.maxSize']),
  ...[0, -5, 2 ** 40].map((v): Case => [`RedisStore maxMirrorKeys ${String(v)}`, () => new RedisStore({ client: scriptable(), maxMirrorKeys: v }), ConfigError, 'maxMirrorKeys']),
  [`RedisStore negativeCache`, () => new RedisStore({ client: scriptable(), negativeCache: 'yes' as never }), ConfigError, 'negativeCache'],
  ...[0, -1, NaN, Infinity, 1e9, '100'].map((v): Case => [`RedisStore timeoutMs ${String(v)}`, () => new RedisStore({ client: scriptable(), timeoutMs: v as never }), ConfigError, 'timeoutMs']),
  ...[0, NaN, 1e9].map((v): Case => [`RedisStore probeIntervalMs ${String(v)}`, () => new RedisStore({ client: scriptable(), probeIntervalMs: v }), ConfigError, 'probeIntervalMs']),
  ...['half', 5, null, {}].map((v): Case => [`RedisStore fallback ${String(v)}`, () => new RedisStore({ client: scriptable(), fallback: v as never }), ConfigError, 'fallback']),
  ...[0, 1.5, -2, NaN].map((v): Case => [`RedisStore fallback.nodes ${String(v)}`, () => new RedisStore({ client: scriptable(), fallback: { nodes: v } }), ConfigError, 'fallback.nodes']),
  [`RedisStore fallback.policy`, () => new RedisStore({ client: scriptable(), fallback: { policy: 'gcra' as never } }), ConfigError, 'fallback.policy'],
  [`RedisStore reconcile`, () => new RedisStore({ client: scriptable(), reconcile: 1 as never }), ConfigError, 'reconcile'],
  ...['fast', 1, null].map((v): Case => [`RedisStore mode ${String(v)}`, () => new RedisStore({ client: scriptable(), mode: v as never }), ConfigError, 'mode']),
  ...[5, 'big', null].map((v): Case => [`RedisStore lease ${String(v)}`, () => new RedisStore({ client: scriptable(), mode: 'leased', lease: v as never }), ConfigError, 'lease']),
  ...[0, -1, 1.5, NaN, Infinity, '0.1'].map((v): Case => [`RedisStore lease.maxShare ${String(v)}`, () => new RedisStore({ client: scriptable(), mode: 'leased', lease: { maxShare: v as never } }), ConfigError, 'lease.maxShare']),
  ...[0, 5, NaN, Infinity, 1e10, '5ms'].map((v): Case => [`RedisStore lease.ttlMs ${String(v)}`, () => new RedisStore({ client: scriptable(), mode: 'leased', lease: { ttlMs: v as never } }), ConfigError, 'lease.ttlMs']),
];

function scriptable() {
  return { defineCommand() {} };
}

describe('policies and constructors reject bad configuration', () => {
  it.each(factoryCases)('%s', (_label, fn, errorClass, parameter) => {
    expectTypedError(fn, errorClass, parameter);
  });
});

/**
 * Every call, fed bad arguments: `sync` adds the calls only an embedded
 * store serves.
 */
function callCases(limiter: Limiter, sync: boolean): Case[] {
  const cases: Case[] = [
    ...badKeys.flatMap((k): Case[] => [
      [`limit key ${String(k).slice(0, 20)}`, () => limiter.limit(k as string), ArgumentError, 'key'],
      [`peek key`, () => limiter.peek(k as string), ArgumentError, 'key'],
      [`reserve key`, () => limiter.reserve(k as string), ArgumentError, 'key'],
      [`acquire key`, () => limiter.acquire(k as string), ArgumentError, 'key'],
      [`refund key`, () => limiter.refund(k as string, 1), ArgumentError, 'key'],
      [`reset key`, () => limiter.reset(k as string), ArgumentError, 'key'],
      [`limitMany keys[1]`, () => limiter.limitMany(['ok', k as string]), ArgumentError, 'keys[1]'],
    ]),
    ...[...badCosts, 5].flatMap((c): Case[] => [
      [`limit cost ${String(c)}`, () => limiter.limit('k', { cost: c as number }), ArgumentError, 'cost'],
      [`peek cost ${String(c)}`, () => limiter.peek('k', { cost: c as number }), ArgumentError, 'cost'],
      [`reserve cost ${String(c)}`, () => limiter.reserve('k', { cost: c as number }), ArgumentError, 'cost'],
      [`acquire cost ${String(c)}`, () => limiter.acquire('k', { cost: c as number }), ArgumentError, 'cost'],
      [`limitMany cost ${String(c)}`, () => limiter.limitMany(['k'], { cost: c as number }), ArgumentError, 'cost'],
    ]),
    ...badCosts.map((c): Case => [`refund cost ${String(c)}`, () => limiter.refund('k', c as number), ArgumentError, 'cost']),
    ...[-1, NaN, '10', null].flatMap((w): Case[] => [
      [`reserve maxWaitMs ${String(w)}`, () => limiter.reserve('k', { maxWaitMs: w as number }), ArgumentError, 'maxWaitMs'],
      [`acquire maxWaitMs ${String(w)}`, () => limiter.acquire('k', { maxWaitMs: w as number }), ArgumentError, 'maxWaitMs'],
    ]),
    [`acquire signal`, () => limiter.acquire('k', { signal: 'stop' as never }), ArgumentError, 'signal'],
    [`limit options`, () => limiter.limit('k', 5 as never), ArgumentError, 'options'],
    [`limitMany keys`, () => limiter.limitMany('k' as never), ArgumentError, 'keys'],
  ];
  if (!sync) return cases;
  return [
    ...cases,
    ...badKeys.flatMap((k): Case[] => [
      [`limitSync key ${String(k).slice(0, 20)}`, () => limiter.limitSync(k as string), ArgumentError, 'key'],
      [`limitManySync keys[1]`, () => limiter.limitManySync(['ok', k as string]), ArgumentError, 'keys[1]'],
    ]),
    ...[...badCosts, 5].flatMap((c): Case[] => [
      [`limitSync cost ${String(c)}`, () => limiter.limitSync('k', { cost: c as number }), ArgumentError, 'cost'],
      [`limitManySync cost ${String(c)}`, () => limiter.limitManySync(['k'], { cost: c as number }), ArgumentError, 'cost'],
    ]),
    [`limitSync options`, () => limiter.limitSync('k', 5 as never), ArgumentError, 'options'],
    [`limitManySync keys`, () => limiter.limitManySync('k' as never), ArgumentError, 'keys'],
  ];
}

// Burst 4, so that a cost of 5 exceeds what the policy can ever admit.
const policy = [gcra({ limit: 4, period: '1s', burst: 4 }), fixedWindow({ limit: 10, window: '1s' })];

describe('calls reject bad arguments and change nothing (embedded store)', () => {
  let now = 1_000;
  const store = new EmbeddedStore({ maxKeys: 1000 });
  const limiter = new Limiter({ policy, store, clock: () => now });

  // What a charge, a refund or a reset of 'k' would change.
  const snapshot = async () => ({ k: await limiter.peek('k'), other: await limiter.peek('other'), stats: store.stats(now) });

  it.each(callCases(limiter, true))('%s', async (_label, fn, errorClass, parameter) => {
    now += 1000;
    limiter.limitSync('k', { cost: 2 }); // 'k' holds state that a charge, refund or reset would change
    const before = await snapshot();
    expect(before.k.remaining).toBe(1); // 4 - 2, less the 1 that peek would take
    await expectTypedErrorAsync(fn, errorClass, parameter);
    expect(await snapshot()).toEqual(before);
  });

  it('a clock returning garbage is a typed error, not a decision', async () => {
    // NaN, a string, and times too large to pace by: at 1e20 (or a clock in
    // nanoseconds, 1.8e18) neighbouring doubles are 16 s (256 ms) apart, every
    // shorter interval rounds away, and a limit of 1 per second would admit all.
    for (const reading of [NaN, Infinity, '1000', 1e20, -1e20, 1.8e18, MAX_CLOCK_MS * 1.001]) {
      const store = new EmbeddedStore();
      const broken = new Limiter({ policy: gcra({ limit: 1, period: '1s' }), store, clock: () => reading as number });
      expectTypedError(() => broken.limitSync('k'), ConfigError, 'clock');
      await expectTypedErrorAsync(() => broken.limit('k'), ConfigError, 'clock');
      expect(store.stats(0).keys).toBe(0);
    }
    // The bound itself is fine: the year 2109.
    const edge = new Limiter({ policy: gcra({ limit: 1, period: '1s' }), clock: () => MAX_CLOCK_MS });
    expect(edge.limitSync('k').allowed).toBe(true);
    expect(edge.limitSync('k').allowed).toBe(false);
  });
});

describe('calls reject bad arguments and change nothing (Redis store)', () => {
  let server: RedisServer | undefined;
  let client: Redis | undefined;
  let now = 1_000;
  const limiter = new Limiter({
    policy,
    // A lazy client: nothing is sent before beforeAll has started the server.
    store: new RedisStore({ client: (client = new Redis({ lazyConnect: true })), prefix: 'bad:', time: 'client', timeoutMs: 10_000 }),
    clock: () => now,
  });

  beforeAll(async () => {
    server = await startRedis();
    client!.options.host = server.host;
    client!.options.port = server.port;
    await client!.connect();
  }, 30_000);

  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  // Every byte the store keeps in Redis, key by key.
  const snapshot = async () => {
    // The fleet's membership set ({fleet}) changes with every heartbeat: not the limiter's state.
    const keys = (await client!.keys('bad:*')).filter((k) => !k.endsWith('{fleet}')).sort();
    return { keys, values: await Promise.all(keys.map((k) => client!.getBuffer(k))), k: await limiter.peek('k') };
  };

  it.each(callCases(limiter, false))('%s', async (_label, fn, errorClass, parameter) => {
    now += 1000;
    await limiter.limit('k', { cost: 2 });
    const before = await snapshot();
    expect(before.keys.length).toBeGreaterThan(0);
    expect(before.k.remaining).toBe(1);
    await expectTypedErrorAsync(fn, errorClass, parameter);
    expect(await snapshot()).toEqual(before);
  });
});

function check(error: unknown, errorClass: typeof ConfigError | typeof ArgumentError, parameter: string): void {
  expect(error).toBeInstanceOf(errorClass);
  expect(error).toBeInstanceOf(CellgateError);
  const e = error as ConfigError;
  expect(e.parameter).toBe(parameter);
  expect(e.message.startsWith(`${parameter} must be`)).toBe(true);
}

function expectTypedError(fn: () => unknown, errorClass: typeof ConfigError | typeof ArgumentError, parameter: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  check(thrown, errorClass, parameter);
}

async function expectTypedErrorAsync(fn: () => unknown, errorClass: typeof ConfigError | typeof ArgumentError, parameter: string): Promise<void> {
  let thrown: unknown;
  try {
    await fn();
  } catch (error) {
    thrown = error;
  }
  check(thrown, errorClass, parameter);
}
