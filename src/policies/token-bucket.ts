import { ConfigError } from '../errors.js';
import { parseDuration, type Duration } from '../core/duration.js';
import { optionNames, strictOptions } from '../core/options.js';
import { builtIn, CODE, drainTime, emissionInterval, positiveCount, type PolicyBase } from './policy.js';

/** Options of {@link tokenBucket}. */
export interface TokenBucketOptions {
  /**
   * Most tokens the bucket holds; it starts full. An integer from 1 to
   * {@link MAX_COUNT}, such that an empty bucket is full again within 1000
   * days (`capacity * period / refill`; in interval mode
   * `ceil(capacity / refill)` periods).
   */
  capacity: number;
  /**
   * Tokens added per `period` (default: `capacity`): an integer from 1 to
   * {@link MAX_COUNT}; in continuous mode at most `period / 0.01 ms` (one
   * token at least every {@link MIN_INTERVAL_MS}: 100 000 per second).
   */
  refill?: number;
  /** The period `refill` is counted over: 1 ms to 1000 days ({@link MIN_DURATION_MS}, {@link MAX_DURATION_MS}). */
  period: Duration;
  /**
   * `'continuous'` (default): tokens drip in evenly over the period.
   * `'interval'`: `refill` tokens come back at once at each period boundary,
   * counted from the key's first request (like a provider's quota reset).
   */
  mode?: 'continuous' | 'interval';
}

const TOKEN_BUCKET_OPTIONS = optionNames<keyof TokenBucketOptions>({ capacity: true, refill: true, period: true, mode: true });

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
  const o = strictOptions(options, 'tokenBucket()', TOKEN_BUCKET_OPTIONS);
  const capacity = positiveCount(o.capacity, 'capacity');
  const refill = o.refill === undefined ? capacity : positiveCount(o.refill, 'refill');
  const periodMs = parseDuration(o.period, 'period');
  const mode = o.mode === undefined ? 'continuous' : o.mode;
  if (mode !== 'continuous' && mode !== 'interval') {
    throw new ConfigError('mode', o.mode, "'continuous' or 'interval'");
  }
  let core;
  if (mode === 'continuous') {
    // A continuous bucket is GCRA with emission interval period/refill and burst = capacity.
    const interval = emissionInterval(periodMs, refill, o.refill === undefined ? 'capacity' : 'refill');
    drainTime(capacity, interval, 'capacity', 'capacity * period / refill, the time an empty bucket takes to fill');
    core = { code: CODE.gcra, p0: interval, p1: capacity, p2: capacity * interval, capacity };
  } else {
    // Whole periods: ceil(capacity / refill) of them refill an empty bucket.
    drainTime(capacity, periodMs, 'capacity', 'ceil(capacity / refill) * period, the time an empty bucket takes to fill', refill);
    core = { code: CODE.tokenInterval, p0: capacity, p1: refill, p2: periodMs, capacity };
  }
  return builtIn({ kind: 'tokenBucket', capacity, refill, periodMs, mode } as const, core);
}
