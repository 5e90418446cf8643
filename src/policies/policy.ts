import { ConfigError } from '../errors.js';
import type { RateLimiter } from '../rate-limiter.js';
import { limiterView, type CoreState } from './core-step.js';

/** Largest count any policy accepts (limit, burst, capacity, refill). */
export const MAX_COUNT = 1_000_000_000;

/**
 * The form every policy takes inside the core: an algorithm code and three
 * numbers whose meaning depends on it (assembly/algorithms.ts documents each).
 * Stores read only this; the other fields of a policy are for people.
 */
export interface CoreParams {
  /** Algorithm code of the core (KIND_* in assembly/algorithms.ts). */
  readonly code: number;
  readonly p0: number;
  readonly p1: number;
  readonly p2: number;
  /**
   * The most one key can pass at once, reported as `Decision.limit` and the
   * largest cost a request may have.
   */
  readonly capacity: number;
}

/** Algorithm codes shared with the core. */
export const CODE = { gcra: 0, tokenInterval: 1, fixed: 2, linear: 3, sliding: 4 } as const;

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
  return Object.freeze({ ...limiterView(frozen), ...fields, core: frozen });
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
 * Validates that `options` is a plain object.
 * @internal
 */
export function optionsObject(value: unknown, parameter: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(parameter, value, 'an options object');
  }
  return value as Record<string, unknown>;
}
