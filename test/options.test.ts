// Strict options: every factory, constructor and call that takes an options
// object names an unknown option (and the one probably meant), and every
// accepted policy keeps its arithmetic finite and within its limit.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  EmbeddedStore,
  Limiter,
  MAX_DURATION_MS,
  MIN_INTERVAL_MS,
  Scheduler,
  UnknownOptionError,
  fixedWindow,
  gcra,
  linearWindow,
  parseDuration,
  rateLimited,
  slidingWindow,
  concurrency,
  tokenBucket,
  type Decision,
  type Policy,
} from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';

/** Construction only validates and registers the scripts: a client with defineCommand is enough. */
function scriptable() {
  return { defineCommand() {} } as never;
}

const sink = { count() {}, record() {} };
const retry = { attempts: 3, baseMs: 10, maxMs: 100, jitter: 0.5 };
let now = 1_700_000_000_000;
const clock = () => now;
const limiter = () => new Limiter({ policy: gcra({ limit: 1000, period: '1s', burst: 100 }), clock });

/**
 * One entry point: `call(extra)` calls it with its full, valid options plus
 * `extra` (at the level the entry point reads), `typo` is a misspelling of
 * the option `meant`, and `check` tells what the valid call returned.
 */
interface Entry {
  where: string;
  call: (extra: Record<string, unknown>) => unknown;
  typo: string;
  meant: string;
  check: (result: unknown) => void;
}

const isPolicy = (kind: string, fields: Record<string, unknown>) => (p: unknown) => expect(p).toMatchObject({ kind, ...fields });
const isAllowed = (d: unknown) => expect((d as Decision).allowed).toBe(true);
const areAllowed = (ds: unknown) => expect((ds as Decision[]).map((d) => d.allowed)).toEqual([true, true]);

const storeOptions = {
  client: scriptable(),
  prefix: 'opt:',
  shards: 8,
  time: 'client',
  batch: { maxDelayMs: 1, maxSize: 10 },
  maxMirrorKeys: 100,
  negativeCache: false,
  timeoutMs: 50,
  probeIntervalMs: 100,
  fallback: { nodes: 2 },
  reconcile: false,
  mode: 'leased',
  lease: { maxShare: 0.2, ttlMs: 100 },
  metrics: sink,
} as const;
const newStore = (o: Record<string, unknown>) => new RedisStore(o as never);
const isStore = (s: unknown) => expect((s as RedisStore).shards).toBe(8);

const schedulerOptions = () => ({ limiter: limiter(), concurrency: 2, retry, clock, timers: { setTimeout, clearTimeout }, onError() {} });
const isScheduler = (s: unknown) => expect(s).toBeInstanceOf(Scheduler);
const task = () => 'done';
/** Schedules `task` with `options` on a new scheduler, which is closed after. */
async function schedule(options: Record<string, unknown>) {
  const s = new Scheduler(schedulerOptions());
  try {
    return await s.schedule('k', task, options as never);
  } finally {
    await s.close();
  }
}
const ranOnce = (r: unknown) => expect(r).toMatchObject({ attempts: 1, value: 'done' });

const entries: Entry[] = [
  { where: 'gcra()', call: (x) => gcra({ limit: 5, period: '1s', burst: 3, ...x }), typo: 'brust', meant: 'burst', check: isPolicy('gcra', { burst: 3 }) },
  {
    where: 'tokenBucket()',
    call: (x) => tokenBucket({ capacity: 10, refill: 5, period: '1s', mode: 'interval', ...x }),
    typo: 'mdoe',
    meant: 'mode',
    check: isPolicy('tokenBucket', { mode: 'interval', refill: 5 }),
  },
  { where: 'fixedWindow()', call: (x) => fixedWindow({ limit: 5, window: '1m', ...x }), typo: 'widnow', meant: 'window', check: isPolicy('fixedWindow', { windowMs: 60_000 }) },
  { where: 'linearWindow()', call: (x) => linearWindow({ limit: 2, within: '3s', ...x }), typo: 'whithin', meant: 'within', check: isPolicy('linearWindow', { windowMs: 3000 }) },
  { where: 'slidingWindow()', call: (x) => slidingWindow({ limit: 5, window: 100, ...x }), typo: 'limt', meant: 'limit', check: isPolicy('slidingWindow', { limit: 5 }) },
  {
    where: 'new Limiter()',
    call: (x) => new Limiter({ policy: gcra({ limit: 1, period: 1 }), store: new EmbeddedStore(), clock, metrics: sink, ...x }),
    typo: 'stroe',
    meant: 'store',
    check: (l) => expect((l as Limiter).inProcess).toBe(true),
  },
  {
    where: 'new EmbeddedStore()',
    call: (x) => new EmbeddedStore({ maxKeys: 1000, whenFull: 'evict', hashSeed: new Uint8Array(16), metrics: sink, ...x }),
    typo: 'maxkeys',
    meant: 'maxKeys',
    check: (st) => expect((st as EmbeddedStore).stats(0)).toMatchObject({ keys: 0, evictions: 0 }),
  },
  {
    where: 'new EmbeddedStore()',
    call: (x) => new EmbeddedStore({ whenFull: 'deny', ...x }),
    typo: 'whenfull',
    meant: 'whenFull',
    check: (st) => expect((st as EmbeddedStore).stats(0).refusals).toBe(0),
  },
  { where: 'new RedisStore()', call: (x) => newStore({ ...storeOptions, ...x }), typo: 'tiemoutMs', meant: 'timeoutMs', check: isStore },
  { where: 'new RedisStore({ batch })', call: (x) => newStore({ ...storeOptions, batch: { ...storeOptions.batch, ...x } }), typo: 'maxSzie', meant: 'maxSize', check: isStore },
  { where: 'new RedisStore({ lease })', call: (x) => newStore({ ...storeOptions, lease: { ...storeOptions.lease, ...x } }), typo: 'ttl', meant: 'ttlMs', check: isStore },
  { where: 'new RedisStore({ fallback })', call: (x) => newStore({ ...storeOptions, fallback: { nodes: 2, ...x } }), typo: 'node', meant: 'nodes', check: isStore },
  { where: 'new Scheduler()', call: (x) => new Scheduler({ ...schedulerOptions(), ...x }), typo: 'concurency', meant: 'concurrency', check: isScheduler },
  { where: 'new Scheduler({ retry })', call: (x) => new Scheduler({ ...schedulerOptions(), retry: { ...retry, ...x } }), typo: 'atempts', meant: 'attempts', check: isScheduler },
  { where: 'schedule()', call: (x) => schedule({ delayMs: 0, retry, ...x }), typo: 'delay', meant: 'delayMs', check: ranOnce },
  { where: 'schedule({ retry })', call: (x) => schedule({ retry: { ...retry, ...x } }), typo: 'jiter', meant: 'jitter', check: ranOnce },
  {
    where: 'close()',
    call: async (x) => {
      const s = new Scheduler(schedulerOptions());
      await s.close({ drain: false, ...x });
      return s;
    },
    typo: 'drian',
    meant: 'drain',
    check: async (s) => await expect((s as Scheduler).schedule('k', task)).rejects.toThrow('closed'),
  },
  {
    where: 'rateLimited()',
    call: (x) => rateLimited({ key: (id: string) => id, limit: 2, within: '3s', store: new EmbeddedStore(), clock, maxWaitMs: 10, ...x }),
    typo: 'maxWait',
    meant: 'maxWaitMs',
    check: (decorate) => expect(typeof decorate).toBe('function'),
  },
  { where: 'limit()', call: (x) => limiter().limit('k', { cost: 2, ...x }), typo: 'cots', meant: 'cost', check: isAllowed },
  { where: 'limitSync()', call: (x) => limiter().limitSync('k', { cost: 2, ...x }), typo: 'Cost', meant: 'cost', check: isAllowed },
  { where: 'peek()', call: (x) => limiter().peek('k', { cost: 2, ...x }), typo: 'cst', meant: 'cost', check: isAllowed },
  { where: 'limitMany()', call: (x) => limiter().limitMany(['a', 'b'], { cost: 2, ...x }), typo: 'costs', meant: 'cost', check: areAllowed },
  { where: 'limitManySync()', call: (x) => limiter().limitManySync(['a', 'b'], { cost: 2, ...x }), typo: 'coast', meant: 'cost', check: areAllowed },
  {
    where: 'reserve()',
    call: (x) => limiter().reserve('k', { cost: 2, maxWaitMs: 100, ...x }),
    typo: 'maxWaitMS',
    meant: 'maxWaitMs',
    check: (r) => expect(r).toMatchObject({ allowed: true, waitMs: 0 }),
  },
  {
    where: 'acquire()',
    call: (x) => limiter().acquire('k', { cost: 2, maxWaitMs: 100, signal: new AbortController().signal, ...x }),
    typo: 'singal',
    meant: 'signal',
    check: isAllowed,
  },
];

/** What `fn` threw or rejected with (undefined if neither). */
async function failure(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('unknown option names', () => {
  it.each(entries)('$where: a misspelt option is an UnknownOptionError naming it and the nearest one', async ({ where, call, typo, meant }) => {
    const error = await failure(() => call({ [typo]: 1 }));
    expect(error).toBeInstanceOf(UnknownOptionError);
    expect(error).toBeInstanceOf(ConfigError);
    const e = error as UnknownOptionError;
    expect(e.parameter).toBe(typo);
    expect(e.suggestion).toBe(meant);
    expect(e.message).toBe(`unknown option '${typo}' for ${where}: did you mean '${meant}'?`);
  });

  it.each(entries)('$where: an unrelated name gets no suggestion', async ({ where, call }) => {
    const error = await failure(() => call({ zzz: 1 }));
    expect(error).toBeInstanceOf(UnknownOptionError);
    expect((error as UnknownOptionError).parameter).toBe('zzz');
    expect((error as UnknownOptionError).suggestion).toBeUndefined();
    expect((error as Error).message).toBe(`unknown option 'zzz' for ${where}`);
  });

  it.each(entries)('$where: the full valid options still work', async ({ call, check }) => {
    await check(await call({}));
  });

  it('names own properties only, and an inherited name is not an option', () => {
    const options = Object.assign(Object.create({ brust: 3 }) as object, { limit: 5, period: '1s' });
    expect(gcra(options as never).burst).toBe(1);
  });

  it('a fallback object takes one form: both names at once are rejected', () => {
    expect(() => newStore({ client: scriptable(), fallback: { nodes: 2, policy: gcra({ limit: 1, period: 1 }) } })).toThrow(ConfigError);
  });
});

/** The ConfigError `fn` throws (failing the test if it throws nothing or something else). */
function configError(fn: () => unknown): ConfigError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(ConfigError);
  return thrown as ConfigError;
}

describe('ranges', () => {
  const cases: [label: string, fn: () => unknown, parameter: string, message: string][] = [
    ['a window of 1e-300 ms', () => fixedWindow({ limit: 1e9, window: 1e-300 }), 'window', 'at least 1 ms'],
    ['a sliding window under 1 ms', () => slidingWindow({ limit: 1, window: 0.999 }), 'window', 'at least 1 ms'],
    ['a linear window of 0.5 ms', () => linearWindow({ limit: 1, within: '0.5ms' }), 'within', 'at least 1 ms'],
    ['a period under 1 ms', () => gcra({ limit: 1, period: 0.5 }), 'period', 'at least 1 ms'],
    ['a bucket period of 1e-9 ms', () => tokenBucket({ capacity: 1, period: 1e-9 }), 'period', 'at least 1 ms'],
    ['1e9 requests per second', () => gcra({ limit: 1e9, period: '1s' }), 'limit', 'at most 100000 for a period of 1000 ms'],
    ['one more than 100 000 per second', () => gcra({ limit: 100_001, period: 1000 }), 'limit', 'at most 100000'],
    ['a continuous bucket refilled 1e6 per second', () => tokenBucket({ capacity: 10, refill: 1e6, period: '1s' }), 'refill', 'at least 0.01 ms'],
    ['a continuous bucket whose refill defaults to a huge capacity', () => tokenBucket({ capacity: 1e6, period: '1s' }), 'capacity', 'at most 100000'],
    ['a burst taking 2000 days to come back', () => gcra({ limit: 1, period: '1000d', burst: 2 }), 'burst', 'at most 1'],
    ['a burst of 1e9 at one a second', () => gcra({ limit: 1, period: '1s', burst: 1e9 }), 'burst', 'at most 86400000 ('],
    ['a continuous bucket taking 1e9 days to fill', () => tokenBucket({ capacity: 1e9, refill: 1, period: '1d' }), 'capacity', 'at most 1000 ('],
    ['an interval bucket taking 2000 days to fill', () => tokenBucket({ capacity: 2, refill: 1, period: '1000d', mode: 'interval' }), 'capacity', 'at most 1 ('],
    ['an interval bucket taking 1001 days to fill', () => tokenBucket({ capacity: 3003, refill: 3, period: '1d', mode: 'interval' }), 'capacity', 'at most 3000 ('],
  ];

  it.each(cases)('%s is a ConfigError naming the parameter and the bound', (_label, fn, parameter, message) => {
    const e = configError(fn);
    expect(e.parameter).toBe(parameter);
    expect(e.message.startsWith(`${parameter} must be`)).toBe(true);
    expect(e.message).toContain(message);
  });

  it('accepts the bounds themselves', () => {
    expect(gcra({ limit: 100_000, period: 1000 }).core.p0).toBe(MIN_INTERVAL_MS);
    expect(tokenBucket({ capacity: 1e6, period: '1s', mode: 'interval' }).capacity).toBe(1e6);
    expect(tokenBucket({ capacity: 3000, refill: 3, period: '1d', mode: 'interval' }).capacity).toBe(3000);
    expect(gcra({ limit: 1, period: '1000d' }).core.p2).toBe(MAX_DURATION_MS);
    expect(gcra({ limit: 1, period: '1s', burst: 86_400_000 }).core.p2).toBe(MAX_DURATION_MS);
    expect(fixedWindow({ limit: 1e9, window: 1 }).windowMs).toBe(1);
    expect(parseDuration('1ms', 'window')).toBe(1);
  });

  it('accepts a drain time that equals the bound but rounds a hair above it', () => {
    // capacity * (period / capacity) is the period; in doubles it can come out 1 ulp more.
    for (let capacity = 39_258_600; capacity < 39_258_650; capacity++) {
      expect(tokenBucket({ capacity, period: '1000d', mode: 'continuous' }).capacity).toBe(capacity);
    }
  });

  it('every count bound a message names is accepted, and one more is not', () => {
    let bounds = 0;
    fc.assert(
      fc.property(rawPolicyArb, (raw) => {
        let error: unknown;
        try {
          build(raw);
        } catch (e) {
          error = e;
        }
        fc.pre(error instanceof ConfigError);
        const e = error as ConfigError;
        // A rejection names one of the options it was given.
        expect(Object.keys(raw.options)).toContain(e.parameter);
        const most = /must be at most (\d+)/.exec(e.message);
        if (most === null || typeof raw.options[e.parameter] !== 'number') return;
        bounds++;
        const n = Number(most[1]);
        expect(n).toBeLessThan(raw.options[e.parameter] as number);
        const failsOn = (value: number) => {
          try {
            build({ ...raw, options: { ...raw.options, [e.parameter]: value } });
            return undefined;
          } catch (again) {
            return (again as ConfigError).parameter;
          }
        };
        expect(failsOn(n)).not.toBe(e.parameter);
        expect(failsOn(n + 1)).toBe(e.parameter);
      }),
      { numRuns: 2000 },
    );
    // The runs that return early check no bound: some must not.
    expect(bounds).toBeGreaterThan(0);
  });
});

// Policies drawn from far wider ranges than the factories accept: tiny and
// huge periods, limits, bursts and capacities.
const countArb = fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 1e9 }), fc.constantFrom(1, 99_999, 100_000, 100_001, 86_400_000, 1e9));
const durationArb = fc.oneof(
  fc.double({ min: 0.5, max: 2 * MAX_DURATION_MS, noNaN: true }),
  fc.integer({ min: 1, max: 5000 }),
  fc.constantFrom<number | string>(1e-300, 0.999, 1, 1000, '1s', '1m', '1h', '1d', '1000d', MAX_DURATION_MS),
);

interface RawPolicy {
  kind: 'gcra' | 'tokenBucket' | 'fixedWindow' | 'linearWindow' | 'slidingWindow' | 'concurrency';
  options: Record<string, unknown>;
}

const rawPolicyArb: fc.Arbitrary<RawPolicy> = fc.oneof(
  fc.record({ limit: countArb, period: durationArb, burst: countArb }).map((options) => ({ kind: 'gcra' as const, options })),
  fc
    .record(
      { capacity: countArb, refill: countArb, period: durationArb, mode: fc.constantFrom('continuous', 'interval') },
      { requiredKeys: ['capacity', 'period', 'mode'] },
    )
    .map((options) => ({ kind: 'tokenBucket' as const, options })),
  fc.record({ limit: countArb, window: durationArb }).map((options) => ({ kind: 'fixedWindow' as const, options })),
  fc.record({ limit: countArb, within: durationArb }).map((options) => ({ kind: 'linearWindow' as const, options })),
  fc.record({ limit: countArb, window: durationArb }).map((options) => ({ kind: 'slidingWindow' as const, options })),
  fc.record({ limit: countArb, leaseMs: durationArb }, { requiredKeys: ['limit'] }).map((options) => ({ kind: 'concurrency' as const, options })),
);

function build({ kind, options }: RawPolicy): Policy {
  const factories = { gcra, tokenBucket, fixedWindow, linearWindow, slidingWindow, concurrency } as Record<string, (o: never) => Policy>;
  return factories[kind]!(options as never);
}

function tryBuild(raw: RawPolicy): Policy | undefined {
  try {
    return build(raw);
  } catch (error) {
    if (error instanceof ConfigError) return undefined;
    throw error;
  }
}

const acceptedPolicyArb = rawPolicyArb.map(tryBuild).filter((p): p is Policy => p !== undefined);

/** The time one unit takes to come back: the scale of the steps between requests. */
function unitMs(p: Policy): number {
  if (p.kind === 'gcra' || (p.kind === 'tokenBucket' && p.mode === 'continuous')) return p.core.p0;
  if (p.kind === 'tokenBucket') return p.periodMs / p.refill;
  if (p.kind === 'concurrency') return p.leaseMs / p.limit;
  return p.windowMs / p.limit;
}

/** Half the spacing of doubles from 2^40 to 2^41 ms (2004 to 2039), where every time of the run lies. */
const ROUNDING_MS = 2 ** -13;
/** Drift of period and window starts added up over a run, relative (durations are at least 1 ms). */
const DRIFT = 1 + 4 * ROUNDING_MS;

/**
 * The most cost units `p` can admit to a fresh key from `first` to `last`,
 * `admissions` being how many requests it admitted.
 */
function allowance(p: Policy, first: number, last: number, admissions: number): number {
  const d = last - first;
  if (p.kind === 'gcra' || (p.kind === 'tokenBucket' && p.mode === 'continuous')) {
    const { p0: interval, p1: burst } = p.core;
    // Each admission moves the key's next admission time on by cost * interval,
    // rounded by up to ROUNDING_MS (and the burst's offset twice more): at
    // most 1.23 % of an interval of MIN_INTERVAL_MS or longer, as documented.
    return burst + d / interval + (admissions + 3) * Math.min(ROUNDING_MS / interval, 0.0123);
  }
  if (p.kind === 'tokenBucket') return p.capacity + p.refill * Math.floor((d / p.periodMs + 1) * DRIFT);
  if (p.kind === 'linearWindow') return p.limit * (Math.floor((d / p.windowMs + 1) * DRIFT) + 1);
  // Never released: `limit` holders at once, each counted for at least a lease
  // epoch, so at most `limit` more in each epoch the run touches.
  if (p.kind === 'concurrency') return p.limit * (Math.floor(last / p.leaseMs) - Math.floor(first / p.leaseMs) + 1);
  // Aligned windows: at most `limit` in each one the run touches (a sliding
  // window's previous count weighs up to ROUNDING_MS / window too little at
  // the very end of a window).
  const windows = Math.floor(last / p.windowMs) - Math.floor(first / p.windowMs) + 1;
  return p.limit * windows * (p.kind === 'slidingWindow' ? 1 + ROUNDING_MS / p.windowMs : 1);
}

describe('every accepted policy stays finite and within its limit', () => {
  it('the rounding of times is a small part of any accepted emission interval', () => {
    let intervals = 0;
    fc.assert(
      fc.property(acceptedPolicyArb, (p) => {
        if (p.core.code !== 0) return;
        intervals++;
        expect(ROUNDING_MS / p.core.p0).toBeLessThanOrEqual(0.0123);
      }),
      { numRuns: 2000 },
    );
    expect(intervals).toBeGreaterThan(0); // GCRAs and continuous buckets were drawn
  });

  it('on random policies, costs and times (manual clock)', async () => {
    await fc.assert(
      fc.asyncProperty(
        acceptedPolicyArb,
        // 2020 to 2033: with a key's state up to 1000 days ahead and runs of
        // at most 50 000 s, every time stays below 2^41 ms.
        fc.double({ min: 1.6e12, max: 2.0e12, noNaN: true }),
        fc.array(
          fc.record({
            cost: fc.double({ min: 0, max: 1, noNaN: true }),
            // In units (of the policy's time per unit) per unit of cost: mostly
            // less than one, so that the key runs full and denials are common.
            gap: fc.oneof(
              { arbitrary: fc.constant(0), weight: 3 },
              { arbitrary: fc.double({ min: 0, max: 1.1, noNaN: true }), weight: 3 },
              { arbitrary: fc.double({ min: 0, max: 3, noNaN: true }), weight: 1 },
            ),
            peek: fc.boolean(),
          }),
          { minLength: 1, maxLength: 150 },
        ),
        async (policy, start, steps) => {
          let t = start;
          const limiter = new Limiter({ policy, store: new EmbeddedStore({ maxKeys: 16 }), clock: () => t });
          const unit = unitMs(policy);
          let admitted = 0;
          let admissions = 0;
          for (const step of steps) {
            // Costs from 1 to the capacity, weighted toward small ones.
            const cost = Math.max(1, Math.min(policy.core.capacity, Math.round(step.cost ** 4 * policy.core.capacity)));
            const d = step.peek ? await limiter.peek('k', { cost }) : limiter.limitSync('k', { cost });
            check(d, cost);
            if (!step.peek && d.allowed) {
              admitted += cost;
              admissions++;
              expect(admitted, `${admitted} admitted by ${policy.kind} ${policy.core.p0}/${policy.core.p1}/${policy.core.p2} over ${t - start} ms`).toBeLessThanOrEqual(
                allowance(policy, start, t, admissions) * (1 + 1e-12) + 1e-6,
              );
            }
            t = Math.min(t + step.gap * unit * cost, start + 5e7);
          }
        },
      ),
      { numRuns: 1500 },
    );
  });
});

function check(d: Decision, cost: number): void {
  for (const field of ['retryAfterMs', 'resetAfterMs', 'remaining', 'limit', 'capacity'] as const) {
    expect(Number.isFinite(d[field]), `${field} ${d[field]}`).toBe(true);
    expect(d[field]).toBeGreaterThanOrEqual(0);
  }
  if (d.allowed) {
    expect(d.retryAfterMs).toBe(0);
  } else {
    expect(d.retryAfterMs).toBeGreaterThan(0);
    // What an HTTP adapter sends as Retry-After: whole seconds, a plain integer.
    const seconds = Math.max(1, Math.ceil(d.retryAfterMs / 1000));
    expect(Number.isSafeInteger(seconds), `Retry-After ${seconds}`).toBe(true);
    expect(String(seconds)).toMatch(/^\d+$/);
  }
  expect(d.remaining).toBeLessThanOrEqual(d.capacity);
  expect(cost).toBeLessThanOrEqual(d.capacity);
}
