// The public surface: what each entry point exports at run time (so that an
// internal leaking out, or a public name going missing, fails here), and the
// errors users catch: one base class, a stable code per class.
import { afterAll, describe, expect, it } from 'vitest';
import * as cellgate from '../build/lib/src/index.js';
import * as redis from '../build/lib/src/stores/redis/index.js';
import * as http from '../build/lib/src/http/index.js';
import * as errors from '../build/lib/src/errors.js';
import { ArgumentError, CellgateError, ConfigError, Limiter, UnknownOptionError, gcra, type CellgateErrorCode } from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';

describe('entry points export what users construct, call or catch, and nothing else', () => {
  it("'cellgate'", () => {
    expect(Object.keys(cellgate).sort()).toEqual([
      'AcquireTimeoutError',
      'ArgumentError',
      'CellgateError',
      'ConfigError',
      'DEFAULT_CONCURRENCY',
      'DEFAULT_LEASE_MS',
      'DEFAULT_RETRY',
      'EmbeddedStore',
      'LeaseLostError',
      'Limiter',
      'MAX_CLOCK_MS',
      'MAX_COUNT',
      'MAX_DURATION_MS',
      'MAX_GATES',
      'MAX_KEYS',
      'MAX_KEY_LENGTH',
      'MAX_LEASE_MS',
      'MAX_PLANS',
      'MAX_POLICIES',
      'MAX_VERSION',
      'MIN_DURATION_MS',
      'MIN_INTERVAL_MS',
      'MIN_LEASE_MS',
      'PLAN_CACHE_KEYS',
      'Scheduler',
      'SchedulerClosedError',
      'StoreFullError',
      'UnknownOptionError',
      'concurrency',
      'fixedWindow',
      'gcra',
      'linearWindow',
      'otelMetrics',
      'parseDuration',
      'promMetrics',
      'rateLimited',
      'slidingWindow',
      'systemClock',
      'taskClock',
      'tokenBucket',
    ]);
  });

  it("'cellgate/redis'", () => {
    // No binding classes, no breaker constructor, no script names, no fallback internals.
    expect(Object.keys(redis).sort()).toEqual([
      'RedisContentionError',
      'RedisStateError',
      'RedisStore',
      'RedisTimeoutError',
      'RedisUnavailableError',
      'StoreClosedError',
      'TIMEOUTS_TO_OPEN',
    ]);
  });

  it("'cellgate/http'", () => {
    expect(Object.keys(http).sort()).toEqual([
      'AdaptivePacer',
      'DEFAULT_PACING',
      'canonicalIp',
      'clientAddress',
      'fastifyRateLimit',
      'ipKey',
      'keyDigest',
      'limitedFetch',
      'nodeRateLimit',
      'parseQuotaHeaders',
      'parseRetryAfter',
      'rateLimit',
      'rateLimitHeaders',
    ]);
  });
});

describe('errors', () => {
  // Typed as a Record over the code union: a code without a class (or a class
  // without its code here) fails the typecheck, a wrong code fails the test.
  const classes: Record<CellgateErrorCode, [cls: new (...args: never[]) => CellgateError, sample: CellgateError, entry: Record<string, unknown>]> = {
    CONFIG: [errors.ConfigError, new errors.ConfigError('limit', 0, 'a positive integer'), cellgate],
    UNKNOWN_OPTION: [errors.UnknownOptionError, new errors.UnknownOptionError('brust', 'gcra()', 'burst'), cellgate],
    ARGUMENT: [errors.ArgumentError, new errors.ArgumentError('key', '', 'a non-empty string'), cellgate],
    ACQUIRE_TIMEOUT: [errors.AcquireTimeoutError, new errors.AcquireTimeoutError('k', 200, 100), cellgate],
    SCHEDULER_CLOSED: [errors.SchedulerClosedError, new errors.SchedulerClosedError('k'), cellgate],
    REDIS_TIMEOUT: [errors.RedisTimeoutError, new errors.RedisTimeoutError(100), redis],
    REDIS_STATE: [errors.RedisStateError, new errors.RedisStateError('rl:{3}', 'k'), redis],
    REDIS_UNAVAILABLE: [errors.RedisUnavailableError, new errors.RedisUnavailableError('localhost:6379', 2000, undefined), redis],
    REDIS_CONTENTION: [errors.RedisContentionError, new errors.RedisContentionError('k', 16), redis],
    STORE_CLOSED: [errors.StoreClosedError, new errors.StoreClosedError(), redis],
    LEASE_LOST: [errors.LeaseLostError, new errors.LeaseLostError('k'), cellgate],
    STORE_FULL: [errors.StoreFullError, new errors.StoreFullError(), cellgate],
  };

  it.each(Object.entries(classes))('%s: a CellgateError named after its class, exported where its users import from', (code, [cls, sample, entry]) => {
    expect(sample).toBeInstanceOf(CellgateError);
    expect(sample).toBeInstanceOf(Error);
    expect(sample).toBeInstanceOf(cls);
    expect(sample.code).toBe(code);
    expect(sample.name).toBe(cls.name);
    expect(entry[cls.name]).toBe(cls);
  });

  it('every error class of src/errors.ts is in the table above', () => {
    const exported = Object.entries(errors)
      .filter(([, v]) => typeof v === 'function' && v.prototype instanceof CellgateError)
      .map(([name]) => name)
      .filter((name) => name !== 'InputError') // the shared base of ConfigError and ArgumentError
      .sort();
    expect(exported).toEqual(Object.values(classes).map(([cls]) => cls.name).sort());
  });

  it('a bad option is a ConfigError, a bad value at call time an ArgumentError; both say parameter, value and expected', () => {
    const badLimit = () => gcra({ limit: 0, period: '1s' });
    expect(badLimit).toThrow(ConfigError);
    expect(badLimit).toThrow(
      expect.objectContaining({
        code: 'CONFIG',
        parameter: 'limit',
        value: 0,
        expected: 'a positive integer up to 1000000000',
        message: 'limit must be a positive integer up to 1000000000, got 0',
      }),
    );
    expect(badLimit).not.toThrow(ArgumentError);

    const typo = () => gcra({ limit: 1, period: '1s', brust: 2 } as never);
    expect(typo).toThrow(UnknownOptionError);
    expect(typo).toThrow(ConfigError);
    expect(typo).toThrow(expect.objectContaining({ code: 'UNKNOWN_OPTION', parameter: 'brust', suggestion: 'burst' }));

    const badKey = () => new Limiter({ policy: gcra({ limit: 1, period: '1s' }) }).limitSync('');
    expect(badKey).toThrow(ArgumentError);
    expect(badKey).not.toThrow(ConfigError);
    expect(badKey).toThrow(expect.objectContaining({ code: 'ARGUMENT', parameter: 'key', value: '' }));
  });

  describe('limitSync on a store that decides only asynchronously', () => {
    // Construction only validates and registers the scripts: a client with defineCommand is enough.
    const store = new RedisStore({ client: { defineCommand() {} } });
    const limiter = new Limiter({ policy: gcra({ limit: 1, period: '1s' }), store });
    afterAll(() => store.close());

    it.each([
      ['limitSync', () => limiter.limitSync('k')],
      ['limitManySync', () => limiter.limitManySync(['k'])],
    ])('%s is an ArgumentError naming the store, and decides nothing', (method, call) => {
      expect(call).toThrow(ArgumentError);
      expect(call).toThrow(expect.objectContaining({ code: 'ARGUMENT', parameter: 'store', value: store }));
      expect(call).toThrow(new RegExp(`^store must be .* for ${method}\\(\\); use await .*, got a RedisStore$`));
      expect(store.stats().decisions).toEqual({ redis: 0, local: 0, fallback: 0, lease: 0, leases: 0, reconciled: 0 });
    });
  });
});
