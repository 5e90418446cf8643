// Every error the library throws or rejects with, in one place: callers catch
// one base class, tell the cases apart by a stable `code`, and read what each
// case carries.

/**
 * The stable `code` of a {@link CellgateError}: one per class, safe to
 * switch on and to log (it does not change with the message's wording).
 *
 * @example
 * ```ts
 * const code: CellgateErrorCode = 'CONFIG';
 * ```
 */
export type CellgateErrorCode =
  | 'CONFIG'
  | 'UNKNOWN_OPTION'
  | 'ARGUMENT'
  | 'ACQUIRE_TIMEOUT'
  | 'STORE_FULL'
  | 'SCHEDULER_CLOSED'
  | 'REDIS_TIMEOUT'
  | 'REDIS_STATE'
  | 'REDIS_UNAVAILABLE'
  | 'REDIS_CONTENTION'
  | 'STORE_CLOSED'
  | 'LEASE_LOST';

/**
 * The base of every error the library throws or rejects with. `code` tells
 * the case ({@link CellgateErrorCode}), `name` the class; an error that is
 * not a `CellgateError` came from elsewhere (a task, a key function, the
 * Redis client).
 *
 * @example
 * ```ts
 * try { gcra({ limit: 0, period: '1s' }); }
 * catch (e) { if (e instanceof CellgateError) console.log(e.code); } // "CONFIG"
 * ```
 */
export abstract class CellgateError extends Error {
  /** What went wrong, as a stable string: see {@link CellgateErrorCode}. */
  abstract readonly code: CellgateErrorCode;
}

/**
 * What {@link ConfigError} and {@link ArgumentError} share: the parameter at
 * fault, the value it was given and what it should have been.
 * @internal
 *
 * @example
 * ```ts
 * if (e instanceof ConfigError || e instanceof ArgumentError) console.log(e.parameter, e.expected);
 * ```
 */
export abstract class InputError extends CellgateError {
  /** The parameter at fault, e.g. `"limit"` or `"key"`. */
  readonly parameter: string;
  /** The value it was given. */
  readonly value: unknown;
  /** What it must be, in words, e.g. `"a positive integer up to 1000000000"`. */
  readonly expected: string;

  constructor(parameter: string, value: unknown, expected: string) {
    super(`${parameter} must be ${expected}, got ${describe(value)}`);
    this.parameter = parameter;
    this.value = value;
    this.expected = expected;
  }
}

/**
 * Thrown when a policy or an option is invalid, when it is built or
 * constructed: zero, negative, NaN or infinite numbers, unparseable
 * durations, unknown modes. A value passed to a call is an
 * {@link ArgumentError} instead. Names the parameter, the value it was given
 * and what it should be. Nothing is changed when it is thrown.
 *
 * @example
 * ```ts
 * try { gcra({ limit: 0, period: '1s' }); }
 * catch (e) { if (e instanceof ConfigError) console.log(e.parameter); } // "limit"
 * ```
 */
export class ConfigError extends InputError {
  override readonly name: string = 'ConfigError';
  override readonly code: 'CONFIG' | 'UNKNOWN_OPTION' = 'CONFIG';
}

/**
 * Thrown when an options object has a name its factory, constructor or call
 * does not know, most often a typo: the option would otherwise be ignored and
 * its default used. `parameter` is the unknown name; `suggestion` the nearest
 * known one, if any is close. A `ConfigError`, also for the options of a call.
 *
 * @example
 * ```ts
 * try { gcra({ limit: 5, period: '1s', brust: 3 } as never); }
 * catch (e) { if (e instanceof UnknownOptionError) console.log(e.message); }
 * // unknown option 'brust' for gcra(): did you mean 'burst'?
 * ```
 */
export class UnknownOptionError extends ConfigError {
  override readonly name: string = 'UnknownOptionError';
  override readonly code = 'UNKNOWN_OPTION' as const;
  /** The nearest known option name, when one is close enough to be meant. */
  readonly suggestion: string | undefined;

  constructor(option: string, where: string, suggestion: string | undefined) {
    super(option, undefined, 'a known option');
    this.message = `unknown option '${option}' for ${where}` + (suggestion === undefined ? '' : `: did you mean '${suggestion}'?`);
    this.suggestion = suggestion;
  }
}

/**
 * Thrown when a call is given an invalid value, when it is called: an empty,
 * non-string or over-long key, a cost that is not a positive integer or that
 * exceeds what the policy can ever admit, a bad `maxWaitMs`, or a call its
 * limiter's store cannot serve (`limitSync` on a store that decides only
 * asynchronously). Options fixed at construction are a {@link ConfigError}
 * instead. Names the parameter, the value and what it should be; nothing is
 * charged when it is thrown.
 *
 * @example
 * ```ts
 * try { limiter.limitSync(''); }
 * catch (e) { if (e instanceof ArgumentError) console.log(e.parameter); } // "key"
 * ```
 */
export class ArgumentError extends InputError {
  override readonly name = 'ArgumentError';
  override readonly code = 'ARGUMENT' as const;
}

/**
 * The rejection of `acquire` when admission would take longer than its
 * `maxWaitMs`. Nothing is charged.
 *
 * @example
 * ```ts
 * await limiter.acquire('k', { maxWaitMs: 100 }).catch((e) => {
 *   if (e instanceof AcquireTimeoutError) console.log(e.waitMs); // the wait it would have needed
 * });
 * ```
 */
export class AcquireTimeoutError extends CellgateError {
  override readonly name = 'AcquireTimeoutError';
  override readonly code = 'ACQUIRE_TIMEOUT' as const;
  /** How long admission would have taken, in milliseconds. */
  readonly waitMs: number;

  constructor(key: string, waitMs: number, maxWaitMs: number) {
    super(`admission of ${JSON.stringify(key)} needs ${waitMs.toFixed(3)} ms, more than maxWaitMs ${maxWaitMs}`);
    this.waitMs = waitMs;
  }
}

/**
 * The rejection of requests a `Scheduler` will not run: scheduled after
 * `close()`, or cancelled by `close({ drain: false })`. For an execution that
 * was running and failed after being aborted, `cause` is the task's error.
 *
 * @example
 * ```ts
 * await scheduler.schedule(key, task).catch((e) => {
 *   if (e instanceof SchedulerClosedError) return; // shutting down
 *   throw e;
 * });
 * ```
 */
export class SchedulerClosedError extends CellgateError {
  override readonly name = 'SchedulerClosedError';
  override readonly code = 'SCHEDULER_CLOSED' as const;
  /** The key of the request. */
  readonly key: string;

  constructor(key: string, options?: { cause?: unknown }) {
    super(`the scheduler is closed: ${JSON.stringify(key)} will not run`, options);
    this.key = key;
  }
}

/**
 * What a `RedisStore`'s breaker reports (the `error` of its `'open'` event)
 * when Redis did not answer within the store's `timeoutMs`; the calls of
 * that batch were decided by the fallback, not rejected.
 *
 * @example
 * ```ts
 * store.breaker.addEventListener('open', (e) => {
 *   if ((e as CustomEvent).detail.error instanceof RedisTimeoutError) console.warn('redis slow');
 * });
 * ```
 */
export class RedisTimeoutError extends CellgateError {
  override readonly name = 'RedisTimeoutError';
  override readonly code = 'REDIS_TIMEOUT' as const;
  constructor(timeoutMs: number) {
    super(`Redis did not answer within ${timeoutMs} ms`);
  }
}

/**
 * The rejection of a call whose key, in Redis, holds something that is not
 * this library's state (a value another program wrote under the store's
 * prefix). The foreign value is left alone and nothing is admitted for the
 * key; other keys of the same batch are decided as usual.
 *
 * @example
 * ```ts
 * await limiter.limit('k').catch((e) => { if (e instanceof RedisStateError) console.log(e.key); });
 * ```
 */
export class RedisStateError extends CellgateError {
  override readonly name = 'RedisStateError';
  override readonly code = 'REDIS_STATE' as const;
  /** The user's key. */
  readonly key: string;

  constructor(shardKey: string, key: string) {
    super(`Redis key ${shardKey}:${key}|... holds a value that is not cellgate state; nothing is admitted for ${JSON.stringify(key)}`);
    this.key = key;
  }
}

/**
 * The rejection of `RedisStore.ready()` when Redis did not answer within
 * `connectTimeoutMs`: a wrong URL, a closed port, a server still starting.
 * Names what the client was pointed at, so that a misconfiguration is said,
 * not silently decided by the fallback.
 *
 * @example
 * ```ts
 * await store.ready().catch((e) => { if (e instanceof RedisUnavailableError) console.error(e.target); });
 * ```
 */
export class RedisUnavailableError extends CellgateError {
  override readonly name = 'RedisUnavailableError';
  override readonly code = 'REDIS_UNAVAILABLE' as const;
  /** `host:port` of the server (a Cluster's startup nodes, comma-separated), as the client was given it. */
  readonly target: string;

  constructor(target: string, timeoutMs: number, cause: unknown) {
    super(`Redis at ${target} did not answer within ${timeoutMs} ms`, { cause });
    this.target = target;
  }
}

/**
 * The rejection of a call on a custom limiter's key that other clients kept
 * changing while this one decided, as many times in a row as the store tries
 * (16). Nothing was admitted for the call.
 *
 * @example
 * ```ts
 * await limiter.limit('hot').catch((e) => { if (e instanceof RedisContentionError) retryLater(); });
 * ```
 */
export class RedisContentionError extends CellgateError {
  override readonly name = 'RedisContentionError';
  override readonly code = 'REDIS_CONTENTION' as const;
  /** The user's key. */
  readonly key: string;

  constructor(key: string, attempts: number) {
    super(`the state of ${JSON.stringify(key)} changed under ${attempts} attempts in a row to decide it; nothing was admitted`);
    this.key = key;
  }
}

/**
 * The rejection of a call on a `RedisStore` after `close()`: its probes,
 * batches and reconciliation have stopped, so it would decide nothing
 * faithfully. Close a store when its process is done with it, after its last
 * call.
 *
 * @example
 * ```ts
 * await store.close();
 * await limiter.limit('k').catch((e) => { if (e instanceof StoreClosedError) console.log('closed'); });
 * ```
 */
export class StoreClosedError extends CellgateError {
  override readonly name = 'StoreClosedError';
  override readonly code = 'STORE_CLOSED' as const;
  constructor() {
    super('the RedisStore is closed');
  }
}

/**
 * The rejection of `limiter.block()` on an {@link EmbeddedStore} whose table
 * is full at its cap (`maxKeys`, `whenFull: 'deny'`) when the key has no
 * record there: the block is not recorded (no other key's state is evicted
 * for it). New keys are refused while the table is full, so such a key is
 * denied anyway; raise `maxKeys`, or block again once the table has room.
 *
 * @example
 * ```ts
 * await limiter.block(ip, '1h').catch((e) => { if (e instanceof StoreFullError) console.warn('block not recorded'); });
 * ```
 */
export class StoreFullError extends CellgateError {
  override readonly name = 'StoreFullError';
  override readonly code = 'STORE_FULL' as const;
  constructor() {
    super('the store\'s table is full at its cap: the block was not recorded');
  }
}

/**
 * Why a {@link Permit}'s `signal` aborted: a renewal found that its lease had
 * run out (the process stalled for more than half the lease, or Redis lost its
 * state) and the slot was taken meanwhile, so the permit no longer counts.
 * Work still running under it is over the concurrency limit: stop it.
 *
 * @example
 * ```ts
 * await using permit = await limiter.acquire('tenant:7');
 * await fetch(url, { signal: permit.signal }); // aborted with LeaseLostError if the slot is lost
 * ```
 */
export class LeaseLostError extends CellgateError {
  override readonly name = 'LeaseLostError';
  override readonly code = 'LEASE_LOST' as const;
  constructor(key: string) {
    super(`the concurrency permit of ${JSON.stringify(key)} lost its lease and its slot was taken`);
  }
}

/** A value as an error message shows it: short strings and numbers as they are, others by their type. */
function describe(value: unknown): string {
  if (typeof value === 'string') {
    return value.length > 40 ? `a string of length ${value.length}` : JSON.stringify(value);
  }
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (value === null || value === undefined) return String(value);
  // An instance of a class by its class (a store, a pacer), plain objects and arrays by their type.
  const name = typeof value === 'object' ? (value as object).constructor?.name : undefined;
  if (name !== undefined && name !== '' && name !== 'Object' && name !== 'Array') return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
  return `a value of type ${Array.isArray(value) ? 'array' : typeof value}`;
}
