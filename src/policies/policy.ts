import { MAX_DURATION_MS } from '../core/duration.js';
import { ConfigError } from '../errors.js';
import type { RateLimiter } from './rate-limiter.js';
import { CODE } from '../../build/abi.js';
import type { CoreParams, CoreState } from './core-params.js';
import { limiterView } from './core-step.js';

// Algorithm codes shared with the core and the Redis scripts (abi/abi.mjs);
// CoreParams has its own module, so that core-step.ts need not import this one.
export { CODE, type CoreParams };

/** Largest count any policy accepts (limit, burst, capacity, refill). */
export const MAX_COUNT = 1_000_000_000;

/**
 * Shortest emission interval a policy accepts, in ms: `period / limit` of
 * {@link gcra}, `period / refill` of a continuous {@link tokenBucket}. So at
 * most 100 000 units per second per key; faster quotas can count in larger
 * units (1000 tokens a unit), or use windows or an interval bucket.
 *
 * Why: the core adds the interval to epoch-millisecond times (about 1.8e12)
 * held in doubles, whose spacing there is 2^-12 ms (2^-11 from 2039, 2^-10
 * from 2109). A full key's next admission time is rounded to that spacing at
 * every admission, so the interval in force may be shorter than the one
 * configured by half of it: 0.000122 ms, at most 1.2 % of 0.01 ms (2.4 %
 * after 2039), and proportionally less for longer intervals and larger
 * costs (0.12 % at 0.1 ms). An interval under half the spacing would round
 * away entirely and admit without limit.
 */
export const MIN_INTERVAL_MS = 0.01;

/**
 * What every built-in policy has: its algorithm's name, its core form, and
 * the {@link RateLimiter} face (pure `initial`/`decide` over the core's
 * record), so that a custom limiter can wrap or compose it.
 */
export interface PolicyBase<K extends string> extends RateLimiter<CoreState> {
  readonly kind: K;
  /** @internal The policy as the core sees it. */
  readonly core: CoreParams;
}

/**
 * Builds a built-in policy: its own fields, its core form and its
 * RateLimiter face, frozen.
 * @internal
 */
export function builtIn<F extends { readonly kind: string }>(fields: F, core: CoreParams): F & { readonly core: CoreParams } & RateLimiter<CoreState> {
  const frozen = Object.freeze({ ...core });
  const policy = Object.freeze({ ...limiterView(frozen), ...fields, core: frozen });
  BUILT.add(policy);
  return policy;
}

/** Every policy a factory built: the only values a limiter takes as built-in gates. */
const BUILT = new WeakSet<object>();

/**
 * Whether `value` was built by a policy factory (gcra(), tokenBucket(),
 * fixedWindow(), linearWindow(), slidingWindow(), concurrency()): an object
 * merely shaped like one (`{ core: { code: 99 } }`) is not, and its numbers
 * would reach the core and the Redis script unchecked.
 * @internal
 */
export function isBuiltIn(value: unknown): boolean {
  return typeof value === 'object' && value !== null && BUILT.has(value);
}

/**
 * Validates a count parameter: a positive integer up to {@link MAX_COUNT}.
 * @internal
 */
export function positiveCount(value: unknown, parameter: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_COUNT) {
    throw new ConfigError(parameter, value, `a positive integer up to ${MAX_COUNT}`);
  }
  return value;
}

/**
 * Validates the emission interval `periodMs / count` (count being the
 * `parameter`, e.g. `limit`) against {@link MIN_INTERVAL_MS}, and returns it.
 * @internal
 */
export function emissionInterval(periodMs: number, count: number, parameter: string): number {
  const interval = periodMs / count;
  if (interval < MIN_INTERVAL_MS) {
    const most = largest(periodMs / MIN_INTERVAL_MS, (n) => periodMs / n >= MIN_INTERVAL_MS);
    throw new ConfigError(
      parameter,
      count,
      `at most ${most} for a period of ${periodMs} ms (period / ${parameter}, the emission interval, must be at least ${MIN_INTERVAL_MS} ms)`,
    );
  }
  return interval;
}

/**
 * Validates that `count`, coming back `perUnit` at a time and each time
 * taking `unitMs`, comes back within {@link MAX_DURATION_MS}: the longest
 * wait, reset or expiry the policy can report (and the Redis expiry of its
 * keys) stays finite and exact. `what` says in the message what that time is.
 * @internal
 */
export function drainTime(count: number, unitMs: number, parameter: string, what: string, perUnit = 1): void {
  // With a tolerance of a few ulps: `capacity * (period / capacity)` is the
  // period itself, and must not be refused for rounding a hair above it.
  if (Math.ceil(count / perUnit) * unitMs > MAX_DRAIN_MS) {
    const most = Math.min(MAX_COUNT, perUnit * largest(MAX_DRAIN_MS / unitMs, (n) => n * unitMs <= MAX_DRAIN_MS));
    throw new ConfigError(parameter, count, `at most ${most} (${what} must be at most ${MAX_DURATION_MS} ms, 1000 days)`);
  }
}

/** MAX_DURATION_MS and the rounding of a product that equals it exactly. */
const MAX_DRAIN_MS = MAX_DURATION_MS * (1 + 2 ** -40);

/** The largest count near `estimate` for which `ok` holds: `estimate` corrected for rounding. */
function largest(estimate: number, ok: (n: number) => boolean): number {
  let n = Math.min(MAX_COUNT, Math.max(1, Math.floor(estimate)));
  while (n > 1 && !ok(n)) n--;
  while (n < MAX_COUNT && ok(n + 1)) n++;
  return n;
}
