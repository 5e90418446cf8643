import { ConfigError, type ArgumentError } from '../errors.js';
import { optionNames, strictOptions } from '../core/options.js';
import { checkDuration, DELAY_BOUNDS, MAX_DURATION_MS, type Duration } from '../core/duration.js';

/**
 * How failed work is retried: exponential backoff with jitter, up to a number
 * of attempts. Every field is optional; what is left out is inherited (from
 * {@link DEFAULT_RETRY}, or from the scheduler's own retry options).
 *
 * @example
 * ```ts
 * const retry: RetryOptions = { attempts: 10, baseMs: 500, maxMs: 60_000, jitter: 0.5 };
 * ```
 */
export interface RetryOptions {
  /** Executions in all, the first one included: 1 never retries; `Infinity` retries for ever. */
  attempts?: number;
  /** Backoff after the first failure, from 0 to 1000 days; it doubles after each further failure. */
  baseMs?: Duration;
  /** Longest backoff, from `baseMs` to 1000 days (default: the inherited one, or `baseMs` if that is longer). */
  maxMs?: Duration;
  /**
   * Fraction of each backoff drawn at random, from 0 (none: exactly
   * `baseMs * 2^(n-1)`) to 1 (anywhere between 0 and that). Spreads the
   * retries of work that failed together, so they do not return as a herd.
   */
  jitter?: number;
}

/**
 * A validated, complete {@link RetryOptions}, as built by {@link retryPolicy}.
 *
 * @example
 * ```ts
 * const policy: RetryPolicy = retryPolicy({ attempts: 3 });
 * policy.baseMs; // 1000, from DEFAULT_RETRY
 * ```
 */
export interface RetryPolicy {
  readonly attempts: number;
  readonly baseMs: number;
  readonly maxMs: number;
  readonly jitter: number;
}

/**
 * The retry policy used when none is given: 5 attempts in all, backoffs of
 * about 1 s, 2 s, 4 s, 8 s (each between half and all of that: jitter 0.5),
 * never more than 60 s.
 *
 * @example
 * ```ts
 * new Scheduler({ limiter, retry: { ...DEFAULT_RETRY, attempts: Infinity } });
 * ```
 */
export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ attempts: 5, baseMs: 1000, maxMs: 60_000, jitter: 0.5 });

const RETRY_OPTIONS = optionNames<keyof RetryOptions>({ attempts: true, baseMs: true, maxMs: true, jitter: true });

/** The error class a caller wants bad input reported with: ConfigError for options, ArgumentError for call arguments. */
type InputError = typeof ConfigError | typeof ArgumentError;

/**
 * Validates `options` (`undefined` = inherit everything) and completes it
 * from `inherited`. Throws `errorClass`, naming the field as
 * `parameter.field` (e.g. `retry.attempts`), before anything is built; an
 * unknown field is an UnknownOptionError for `where`.
 *
 * @example
 * ```ts
 * const base = retryPolicy({ attempts: 3 }, DEFAULT_RETRY, 'retry', ConfigError);
 * const call = retryPolicy({ baseMs: 50 }, base, 'retry', ArgumentError); // attempts 3, baseMs 50
 * ```
 */
export function retryPolicy(
  options: unknown,
  inherited: RetryPolicy = DEFAULT_RETRY,
  parameter = 'retry',
  errorClass: InputError = ConfigError,
  where = `{ ${parameter} }`,
): RetryPolicy {
  const fail = (field: string, value: unknown, expected: string): never => {
    throw new errorClass(`${parameter}.${field}`, value, expected);
  };
  if (options === undefined) return inherited;
  const o = strictOptions(options, where, RETRY_OPTIONS, parameter, errorClass);
  const attempts = o.attempts === undefined ? inherited.attempts : o.attempts;
  if (typeof attempts !== 'number' || !(attempts === Infinity || (Number.isInteger(attempts) && attempts >= 1))) {
    fail('attempts', attempts, 'a positive integer (1 = no retry) or Infinity');
  }
  const baseMs = o.baseMs === undefined ? inherited.baseMs : checkDuration(o.baseMs, `${parameter}.baseMs`, DELAY_BOUNDS, errorClass);
  // A longer baseMs given alone raises the inherited cap rather than failing on a value the caller never wrote.
  const maxMs =
    o.maxMs === undefined
      ? Math.max(inherited.maxMs, baseMs)
      : checkDuration(o.maxMs, `${parameter}.maxMs`, { min: baseMs, minName: 'baseMs', max: MAX_DURATION_MS }, errorClass);
  const jitter = o.jitter === undefined ? inherited.jitter : o.jitter;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) {
    fail('jitter', jitter, 'a fraction from 0 to 1');
  }
  return Object.freeze({ attempts: attempts as number, baseMs, maxMs, jitter: jitter as number });
}

/**
 * The backoff after the `failures`-th failure in a row (1 for the first):
 * `min(maxMs, baseMs * 2^(failures-1))`, of which the `jitter` fraction is
 * drawn at random (`random` returns [0, 1), as `Math.random` does).
 *
 * @example
 * ```ts
 * backoffMs({ attempts: 5, baseMs: 100, maxMs: 1000, jitter: 0 }, 3); // 400
 * ```
 */
export function backoffMs(policy: RetryPolicy, failures: number, random: () => number = Math.random): number {
  // 2^60 times any base is far past every cap: capping the exponent keeps the product finite.
  const exponential = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(Math.max(failures - 1, 0), 60));
  return exponential * (1 - policy.jitter * random());
}
