// Every option (and argument) holding a duration takes the library's
// Duration: milliseconds, or a string such as '250ms' or '3s', parsed to the
// same number; out of its range, or unparseable, it is a typed error naming
// the parameter, thrown before anything changes.
import { describe, expect, it } from 'vitest';
import {
  AcquireTimeoutError,
  ArgumentError,
  ConfigError,
  Limiter,
  Scheduler,
  UnknownOptionError,
  gcra,
  rateLimited,
  type SchedulerTimers,
} from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { AdaptivePacer, limitedFetch } from '../build/lib/src/http/index.js';
import { retryPolicy } from '../build/lib/src/scheduler/backoff.js';

/** Construction only validates and registers the scripts: a client with defineCommand is enough. */
const client = { defineCommand() {} };
/** A store built from `options`, closed at once (its heartbeat timer stopped). */
function store(options: Record<string, unknown>): RedisStore {
  const s = new RedisStore({ client, ...options } as never);
  void s.close();
  return s;
}

type ErrorClass = typeof ConfigError | typeof ArgumentError;

/** Every duration option: how to pass it a value, whether it is a call's (ArgumentError), and a string in range. */
const options: [parameter: string, pass: (value: unknown) => unknown, errorClass: ErrorClass, valid: string][] = [
  ['timeoutMs', (v) => store({ timeoutMs: v }), ConfigError, '250ms'],
  ['connectTimeoutMs', (v) => store({ connectTimeoutMs: v }), ConfigError, '5s'],
  ['probeIntervalMs', (v) => store({ probeIntervalMs: v }), ConfigError, '1s'],
  ['batch.maxDelayMs', (v) => store({ batch: { maxDelayMs: v } }), ConfigError, '5ms'],
  ['lease.ttlMs', (v) => store({ mode: 'leased', lease: { ttlMs: v } }), ConfigError, '1.5s'],
  ['maxWaitMs', (v) => new Limiter({ policy: gcra({ limit: 1, period: '1s' }) }).reserve('k', { maxWaitMs: v as never }), ArgumentError, '100ms'],
  ['maxWaitMs', (v) => rateLimited({ limit: 1, within: '1s', key: () => 'k', maxWaitMs: v as never }), ConfigError, '1m'],
  ['retry.baseMs', (v) => new Scheduler({ limiter: new Limiter({ policy: gcra({ limit: 1, period: 1 }) }), retry: { baseMs: v as never } }), ConfigError, '50ms'],
  ['retry.maxMs', (v) => retryPolicy({ maxMs: v }), ConfigError, '2m'],
  ['initialSpacingMs', (v) => new AdaptivePacer({ initialSpacingMs: v as never }), ConfigError, '250ms'],
  ['maxSpacingMs', (v) => new AdaptivePacer({ maxSpacingMs: v as never }), ConfigError, '10m'],
  ['maxRetryAfterMs', (v) => limitedFetch(fetch, { limiter: new Limiter({ policy: gcra({ limit: 1, period: 1 }) }), maxRetryAfterMs: v as never }), ConfigError, '1h'],
  ['retryAfterMs', (v) => new AdaptivePacer().pushback('k', 0, v as never), ArgumentError, '2s'],
  ['delayMs', (v) => new AdaptivePacer().pause('k', v as never), ArgumentError, '30s'],
];

describe('duration options take a Duration and name themselves when it is bad', () => {
  it.each(options)('%s accepts %s', async (_parameter, pass, _errorClass, valid) => {
    await pass(valid);
  });

  it.each(options)('%s rejects what is no duration, or out of range', async (parameter, pass, errorClass) => {
    for (const bad of ['soon', '3 weeks', '-1s', '1e3s', '', 'Infinity', null, {}, NaN, -1]) {
      let thrown: unknown;
      try {
        await pass(bad);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, String(bad)).toBeInstanceOf(errorClass);
      expect((thrown as ConfigError).parameter).toBe(parameter);
      expect((thrown as Error).message.startsWith(`${parameter} must be`)).toBe(true);
    }
  });
});

describe('a duration string means what the number does', () => {
  it("RedisStore: timeoutMs, connectTimeoutMs (at least timeoutMs: the bound names it)", () => {
    expect(store({ connectTimeoutMs: '3s' }).breaker.timeoutNow).toBe(3000); // before Redis has answered once
    const s = store({ timeoutMs: '250ms' });
    s.breaker.succeeded(-1);
    expect(s.breaker.timeoutNow).toBe(250);
    expect(() => store({ timeoutMs: '2s', connectTimeoutMs: '1s' })).toThrow('connectTimeoutMs must be at least timeoutMs (2000 ms), got "1s"');
  });

  it('maxWaitMs: reserve and acquire bound the wait by it', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 1, period: '1s' }), clock: () => 1_000_000 });
    limiter.limitSync('k'); // the next unit comes in 1 s
    expect(await limiter.reserve('k', { maxWaitMs: '999ms' })).toMatchObject({ allowed: false, waitMs: 1000 });
    await expect(limiter.acquire('k', { maxWaitMs: '0.5s' })).rejects.toThrow(AcquireTimeoutError);
    expect(await limiter.reserve('k', { maxWaitMs: '1s' })).toMatchObject({ allowed: true, waitMs: 1000 });
  });

  it('@rateLimited maxWaitMs', async () => {
    const decorate = rateLimited({ limit: 1, within: '1h', key: () => 'k', maxWaitMs: '10ms' });
    const method = decorate(async () => 'ran', { kind: 'method', name: 'm' } as never);
    expect(await method.call({})).toBe('ran');
    await expect(method.call({})).rejects.toThrow(AcquireTimeoutError);
  });

  it('Scheduler: delayMs, retry.baseMs and retry.maxMs', async () => {
    const armed: number[] = [];
    const timers: SchedulerTimers = { setTimeout: (_fn, ms) => armed.push(ms), clearTimeout: () => {} };
    const scheduler = new Scheduler({ limiter: new Limiter({ policy: gcra({ limit: 1, period: 1 }) }), clock: () => 0, timers });
    void scheduler.schedule('k', () => {}, { delayMs: '30s' });
    expect(armed).toEqual([30_000]);
    void scheduler.close({ drain: false });
    expect(retryPolicy({ baseMs: '50ms', maxMs: '2m' })).toMatchObject({ baseMs: 50, maxMs: 120_000 });
    expect(() => retryPolicy({ baseMs: '2s', maxMs: '1s' })).toThrow('retry.maxMs must be at least baseMs (2000 ms), got "1s"');
    expect(() => new Scheduler({ limiter: new Limiter({ policy: gcra({ limit: 1, period: 1 }) }), retry: { baseMs: 'soon' as never } })).toThrow(ConfigError);
  });

  it('AdaptivePacer: initialSpacingMs, maxSpacingMs, pushback and pause', () => {
    const pacer = new AdaptivePacer({ initialSpacingMs: '250ms', maxSpacingMs: '0.6s', clock: () => 0 });
    for (let i = 0; i < 3; i++) pacer.pushback('k', i);
    expect(pacer.stats('k')?.spacingMs).toBe(600); // 250, 500, then capped at 600
    pacer.pause('p', '2s');
    expect(pacer.stats('p')?.waitMs).toBe(2000);
    pacer.pushback('q', 0, '1.5s');
    expect(pacer.stats('q')?.waitMs).toBe(1500);
  });
});

it("RedisStore's mirror cap is maxMirrorKeys; the old name is suggested away", () => {
  expect(() => store({ maxMirrorKeys: 100 })).not.toThrow();
  expect(() => store({ maxMirrorKeys: 0 })).toThrow(expect.objectContaining({ parameter: 'maxMirrorKeys' }));
  expect(() => store({ mirrorKeys: 100 })).toThrow(UnknownOptionError);
  expect(() => store({ mirrorKeys: 100 })).toThrow("unknown option 'mirrorKeys' for new RedisStore(): did you mean 'maxMirrorKeys'?");
});
