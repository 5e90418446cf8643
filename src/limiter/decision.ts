/** Where a decision was made. */
export type DecisionSource = 'local' | 'redis' | 'fallback' | 'lease';

/**
 * The answer to "may this request pass?". Being limited is data, never an
 * exception: a denied request is a Decision with `allowed: false`.
 *
 * @example
 * ```ts
 * const d = await limiter.limit('user:42');
 * if (!d.allowed) return new Response('slow down', { status: 429, headers: { 'retry-after': String(Math.ceil(d.retryAfterMs / 1000)) } });
 * ```
 */
export interface Decision {
  /** Whether the request passes (and was charged). */
  readonly allowed: boolean;
  /** The most this key can pass at once: GCRA's burst, a bucket's capacity, a window's limit. */
  readonly limit: number;
  /** How many more cost units would pass right now. */
  readonly remaining: number;
  /** When denied, how long until the same request would pass; 0 when allowed. */
  readonly retryAfterMs: number;
  /** How long until the key is back to full capacity, as if never seen. */
  readonly resetAfterMs: number;
  /**
   * `'local'`: the in-process table; `'redis'`: Redis decided; `'fallback'`:
   * the local table stood in for an unreachable Redis; `'lease'`: spent from
   * capacity this process leased from Redis (leased mode).
   */
  readonly source: DecisionSource;
}

/**
 * A booked admission: the request may fire `waitMs` from now, at epoch
 * milliseconds `at`; the capacity is already charged. When the booking would
 * have to wait longer than the `maxWaitMs` asked for, `allowed` is false,
 * nothing is charged, and `waitMs` says what the wait would have been.
 *
 * @example
 * ```ts
 * const r = await limiter.reserve('upstream');
 * if (r.allowed) setTimeout(callUpstream, r.waitMs);
 * ```
 */
export interface Reservation {
  readonly allowed: boolean;
  readonly waitMs: number;
  readonly at: number;
  readonly limit: number;
  readonly remaining: number;
  readonly source: DecisionSource;
}
