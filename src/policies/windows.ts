import { parseDuration, type Duration } from '../duration.js';
import type { RateLimiter } from '../rate-limiter.js';
import type { CoreState } from './core-step.js';
import { builtIn, CODE, optionsObject, positiveCount, type CoreParams } from './policy.js';

/** The parts every window policy shares, RateLimiter face included. */
export interface WindowPolicyFields extends RateLimiter<CoreState> {
  readonly limit: number;
  readonly windowMs: number;
  /** @internal The policy as the core sees it. */
  readonly core: CoreParams;
}

/**
 * Validates `limit` and the duration named `durationName`, and builds a
 * window policy of algorithm `code`.
 * @internal
 */
export function windowPolicy<K extends string>(
  kind: K,
  code: number,
  options: unknown,
  durationName: string,
): WindowPolicyFields & { readonly kind: K } {
  const o = optionsObject(options, `${kind} options`);
  const limit = positiveCount(o.limit, 'limit');
  const windowMs = parseDuration(o[durationName], durationName);
  return builtIn({ kind, limit, windowMs }, { code, p0: windowMs, p1: limit, p2: 0, capacity: limit });
}

export { CODE };
