import { parseDuration, type Duration } from '../core/duration.js';
import { optionNames, strictOptions } from '../core/options.js';
import { builtIn, CODE, drainTime, emissionInterval, positiveCount, type PolicyBase } from './policy.js';

/** Options of {@link gcra}. */
export interface GcraOptions {
  /**
   * Requests per `period`: an integer from 1 to {@link MAX_COUNT}, and at
   * most `period / 0.01 ms` (the emission interval `period / limit` is at
   * least {@link MIN_INTERVAL_MS}: 100 000 per second).
   */
  limit: number;
  /** The period `limit` is counted over: 1 ms to 1000 days ({@link MIN_DURATION_MS}, {@link MAX_DURATION_MS}). */
  period: Duration;
  /**
   * How many requests may pass back-to-back (default 1: exact pacing): an
   * integer from 1 to {@link MAX_COUNT}, such that a full burst comes back
   * (`burst * period / limit`) within 1000 days.
   */
  burst?: number;
}

const GCRA_OPTIONS = optionNames<keyof GcraOptions>({ limit: true, period: true, burst: true });

/** A GCRA policy, as built by {@link gcra}. */
export interface GcraPolicy extends PolicyBase<'gcra'> {
  readonly limit: number;
  readonly periodMs: number;
  readonly burst: number;
}

/**
 * Generic Cell Rate Algorithm: `limit` requests per `period`, spaced exactly
 * `period / limit` apart, of which `burst` may pass back-to-back. With the
 * default burst of 1 it paces: the choice for burst-intolerant upstreams.
 * `Decision.limit` reports `limit`, `Decision.capacity` the burst: the most
 * that can pass at once, what `remaining` counts down from.
 *
 * @example
 * ```ts
 * const pace = gcra({ limit: 5, period: '1s' });          // one request every 200 ms
 * const some = gcra({ limit: 5, period: '1s', burst: 3 }); // 3 at once, then every 200 ms
 * ```
 */
export function gcra(options: GcraOptions): GcraPolicy {
  const o = strictOptions(options, 'gcra()', GCRA_OPTIONS);
  const limit = positiveCount(o.limit, 'limit');
  const periodMs = parseDuration(o.period, 'period');
  const burst = o.burst === undefined ? 1 : positiveCount(o.burst, 'burst');
  const interval = emissionInterval(periodMs, limit, 'limit');
  drainTime(burst, interval, 'burst', 'burst * period / limit, the time a full burst takes to come back');
  return builtIn({ kind: 'gcra', limit, periodMs, burst } as const, { code: CODE.gcra, p0: interval, p1: burst, p2: burst * interval, capacity: burst });
}
