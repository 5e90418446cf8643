import { parseDuration, type Duration } from '../duration.js';
import { builtIn, CODE, optionsObject, positiveCount, type PolicyBase } from './policy.js';

/** Options of {@link gcra}. */
export interface GcraOptions {
  /** Requests per `period`. */
  limit: number;
  /** The period `limit` is counted over. */
  period: Duration;
  /** How many requests may pass back-to-back (default 1: exact pacing). */
  burst?: number;
}

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
 * `Decision.limit` reports the burst, the most that can pass at once.
 *
 * @example
 * ```ts
 * const pace = gcra({ limit: 5, period: '1s' });          // one request every 200 ms
 * const some = gcra({ limit: 5, period: '1s', burst: 3 }); // 3 at once, then every 200 ms
 * ```
 */
export function gcra(options: GcraOptions): GcraPolicy {
  const o = optionsObject(options, 'gcra options');
  const limit = positiveCount(o.limit, 'limit');
  const periodMs = parseDuration(o.period, 'period');
  const burst = o.burst === undefined ? 1 : positiveCount(o.burst, 'burst');
  const interval = periodMs / limit;
  return builtIn({ kind: 'gcra', limit, periodMs, burst } as const, { code: CODE.gcra, p0: interval, p1: burst, p2: burst * interval, capacity: burst });
}
