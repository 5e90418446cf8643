import { parseDuration } from '../core/duration.js';
import type { RateLimiter } from './rate-limiter.js';
import type { CoreState } from './core-params.js';
import { strictOptions } from '../core/options.js';
import { builtIn, CODE, positiveCount, type CoreParams } from './policy.js';

/** The parts every window policy shares, RateLimiter face included. */
export interface WindowPolicyFields extends RateLimiter<CoreState> {
  readonly limit: number;
  readonly windowMs: number;
  /** @internal The policy as the core sees it. */
  readonly core: CoreParams;
}

/**
 * Validates the names of `options` (`known`), `limit` and the duration named
 * `durationName`, and builds a window policy of algorithm `code`. Windows
 * need no bound beyond their parts': counts are exact integers, and every
 * time they report is within two windows (at most 2000 days).
 * @internal
 */
export function windowPolicy<K extends string>(
  kind: K,
  code: number,
  options: unknown,
  durationName: string,
  known: readonly string[],
): WindowPolicyFields & { readonly kind: K } {
  const o = strictOptions(options, `${kind}()`, known);
  const limit = positiveCount(o.limit, 'limit');
  const windowMs = parseDuration(o[durationName], durationName);
  return builtIn({ kind, limit, windowMs }, { code, p0: windowMs, p1: limit, p2: 0, capacity: limit });
}

export { CODE };
