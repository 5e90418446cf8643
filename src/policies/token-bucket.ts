import { ConfigError } from '../errors.js';
import { parseDuration, type Duration } from '../duration.js';
import { builtIn, CODE, optionsObject, positiveCount, type PolicyBase } from './policy.js';

/** Options of {@link tokenBucket}. */
export interface TokenBucketOptions {
  /** Most tokens the bucket holds; it starts full. */
  capacity: number;
  /** Tokens added per `period` (default: `capacity`). */
  refill?: number;
  /** The period `refill` is counted over. */
  period: Duration;
  /**
   * `'continuous'` (default): tokens drip in evenly over the period.
   * `'interval'`: `refill` tokens come back at once at each period boundary,
   * counted from the key's first request (like a provider's quota reset).
   */
  mode?: 'continuous' | 'interval';
}

/** A token-bucket policy, as built by {@link tokenBucket}. */
export interface TokenBucketPolicy extends PolicyBase<'tokenBucket'> {
  readonly capacity: number;
  readonly refill: number;
  readonly periodMs: number;
  readonly mode: 'continuous' | 'interval';
}

/**
 * Token bucket: spend up to `capacity` at once, regain `refill` per `period`.
 * Bursts are allowed by design: the choice for quota-bound upstreams (LLM
 * providers, metered APIs) where pacing would waste quota.
 *
 * @example
 * ```ts
 * const quota = tokenBucket({ capacity: 100, refill: 100, period: '1m', mode: 'interval' });
 * const smooth = tokenBucket({ capacity: 20, refill: 10, period: '1s' });
 * ```
 */
export function tokenBucket(options: TokenBucketOptions): TokenBucketPolicy {
  const o = optionsObject(options, 'tokenBucket options');
  const capacity = positiveCount(o.capacity, 'capacity');
  const refill = o.refill === undefined ? capacity : positiveCount(o.refill, 'refill');
  const periodMs = parseDuration(o.period, 'period');
  const mode = o.mode === undefined ? 'continuous' : o.mode;
  if (mode !== 'continuous' && mode !== 'interval') {
    throw new ConfigError('mode', o.mode, "'continuous' or 'interval'");
  }
  // A continuous bucket is GCRA with emission interval period/refill and burst = capacity.
  const core =
    mode === 'continuous'
      ? { code: CODE.gcra, p0: periodMs / refill, p1: capacity, p2: capacity * (periodMs / refill), capacity }
      : { code: CODE.tokenInterval, p0: capacity, p1: refill, p2: periodMs, capacity };
  return builtIn({ kind: 'tokenBucket', capacity, refill, periodMs, mode } as const, core);
}
