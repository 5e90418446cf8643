import { MAX_DURATION_MS } from '../core/duration.js';
import { ConfigError } from '../errors.js';

/**
 * What one step of a {@link RateLimiter} decides: admission with the key's
 * new state, or the delay until the same request would be admitted.
 */
export type RateLimitStep<S> =
  | {
      readonly allowed: true;
      /** The key's state after this request. */
      readonly state: S;
      /** How many more cost units would pass now (reported as `Decision.remaining`; default 0). */
      readonly remaining?: number;
      /**
       * After how long the state is as good as `initial()` again, so that a
       * store may drop it (Redis: its expiry). Default: kept until evicted
       * (embedded) or for a day (Redis).
       */
      readonly ttlMs?: number;
    }
  | {
      readonly allowed: false;
      /** How long until the same request would be admitted (ms, > 0). */
      readonly retryAfterMs: number;
      readonly remaining?: number;
    };

/**
 * A rate-limiting algorithm of your own: a pure function of (state, now,
 * cost) and an initial state. It plugs into {@link Limiter} as its `policy`
 * like a built-in one: on the embedded store its states live in a map in
 * process; through `RedisStore` they are stored as JSON and updated by a
 * compare-and-set script, retried a bounded number of times. The built-in
 * policies (`gcra(...)`, ...) are RateLimiters too, so a custom one can wrap
 * or compose them.
 *
 * @example
 * ```ts
 * // At most `limit` requests per calendar day (UTC), whatever their spacing.
 * const perDay: RateLimiter<{ day: number; used: number }> = {
 *   name: 'per-day-100',
 *   capacity: 100,
 *   initial: () => ({ day: 0, used: 0 }),
 *   decide(state, now, cost) {
 *     const day = Math.floor(now / 86_400_000);
 *     const used = state.day === day ? state.used : 0;
 *     if (used + cost > 100) return { allowed: false, retryAfterMs: (day + 1) * 86_400_000 - now };
 *     return { allowed: true, state: { day, used: used + cost }, remaining: 100 - used - cost, ttlMs: (day + 1) * 86_400_000 - now };
 *   },
 * };
 * const limiter = new Limiter({ policy: perDay });
 * ```
 */
export interface RateLimiter<S = unknown> {
  /**
   * Names the algorithm and its parameters: limiters with the same name share
   * a key's state (in Redis it is part of the key), others never do.
   */
  readonly name: string;
  /** The most one request may cost, reported as `Decision.capacity` (and as `Decision.limit`: a custom limiter has no other). */
  readonly capacity: number;
  /** A key's state before its first request. */
  initial(): S;
  /**
   * Decides a request of `cost` at `now` (epoch ms). Must not mutate `state`.
   * `reserve` and `acquire` ask it about future moments and keep the state it
   * returns for them, so a state may come from a moment later than `now`: a
   * booking, which nothing should pass before.
   */
  decide(state: S, now: number, cost: number): RateLimitStep<S>;
  /** Gives `cost` back (optional: without it, `refund` leaves the state as it is). */
  refund?(state: S, now: number, cost: number): S;
}

/** Whether `value` is a custom {@link RateLimiter} (not a built-in policy). */
export function isCustomLimiter(value: unknown): value is RateLimiter {
  const v = value as Partial<RateLimiter> & { core?: unknown };
  return typeof v === 'object' && v !== null && v.core === undefined && typeof v.decide === 'function';
}

/**
 * Validates a custom limiter's shape up front.
 * @internal
 */
export function checkCustomLimiter(value: RateLimiter): RateLimiter {
  if (typeof value.name !== 'string' || value.name.length === 0 || value.name.length > 128 || /[{}|]/.test(value.name)) {
    throw new ConfigError('policy.name', value.name, 'a string of 1 to 128 characters without {, } or |');
  }
  if (typeof value.capacity !== 'number' || !Number.isInteger(value.capacity) || value.capacity < 1 || value.capacity > 1_000_000_000) {
    throw new ConfigError('policy.capacity', value.capacity, 'a positive integer up to 1000000000');
  }
  if (typeof value.initial !== 'function') throw new ConfigError('policy.initial', value.initial, 'a function returning the initial state');
  if (value.refund !== undefined && typeof value.refund !== 'function') throw new ConfigError('policy.refund', value.refund, 'a function or undefined');
  return value;
}

/**
 * Checks what a custom limiter's `decide` returned: a broken algorithm is a
 * typed error naming it, never a decision.
 * @internal
 */
export function checkStep<S>(step: RateLimitStep<S>): RateLimitStep<S> {
  if (typeof step !== 'object' || step === null) throw new ConfigError('policy.decide', step, 'a function returning { allowed, state } or { allowed: false, retryAfterMs }');
  if (step.allowed === true) {
    // Bounded like every duration (MAX_DURATION_MS): an infinite or huge ttl would be an infinite reset in a Decision and a header.
    if (step.ttlMs !== undefined && !(typeof step.ttlMs === 'number' && step.ttlMs >= 0 && step.ttlMs <= MAX_DURATION_MS)) {
      throw new ConfigError('policy.decide', step, `a step whose ttlMs is a number of milliseconds from 0 to ${MAX_DURATION_MS} (1000 days)`);
    }
    return step;
  }
  if (step.allowed === false && typeof step.retryAfterMs === 'number' && step.retryAfterMs > 0 && step.retryAfterMs <= MAX_DURATION_MS) return step;
  throw new ConfigError('policy.decide', step, `a function returning { allowed: true, state } or { allowed: false, retryAfterMs } (retryAfterMs from 0 to ${MAX_DURATION_MS})`);
}
