/** Where a decision was made. */
export type DecisionSource = 'local' | 'redis' | 'fallback' | 'lease';

/**
 * The answer to "may this request pass?". Being limited is data, never an
 * exception: a denied request is a Decision with `allowed: false`.
 *
 * With stacked gates, `limit`, `capacity` and `gate` describe the gate that
 * binds: on a denial the one that needs the longest wait, otherwise the one
 * with the fewest units left.
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
  /**
   * The limit configured for the binding gate: gcra's `limit` (per
   * `period`), a token bucket's `capacity`, a window's `limit`; a custom
   * RateLimiter's `capacity`. The `q=` of the `RateLimit-Policy` header.
   */
  readonly limit: number;
  /**
   * The most the binding gate can pass at once, what `remaining` counts down
   * from: GCRA's `burst` (1 by default, however large `limit` is), a token
   * bucket's `capacity`, a window's `limit`; while Redis is down, the
   * fallback's share of it.
   */
  readonly capacity: number;
  /** The binding gate: its 0-based index in the limiter's `policies` (with `fallback: { policy }`, in the fallback's). */
  readonly gate: number;
  /** How many more cost units would pass right now, from `capacity` down. */
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
  /**
   * Present on a denial by the key's block (`limiter.block`, `blockAfter`):
   * `'blocked'`, with `retryAfterMs` until the block ends (or longer, when a
   * limit denies too). Absent otherwise: a denial by a limit has no reason.
   */
  readonly reason?: 'blocked';
  /**
   * On an admission by a limiter with a {@link concurrency} gate: gives the
   * slot back (idempotent). Absent otherwise. `limiter.acquire` answers a
   * {@link Permit}, which can also be renewed and disposed of.
   */
  readonly release?: () => Promise<void>;
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
  /** As {@link Decision.limit}: the limit configured for the binding gate. */
  readonly limit: number;
  /** As {@link Decision.capacity}: what the binding gate can pass at once. */
  readonly capacity: number;
  /** As {@link Decision.gate}: the binding gate's index. */
  readonly gate: number;
  /** Units left after the booking, as of its moment. */
  readonly remaining: number;
  readonly source: DecisionSource;
}
