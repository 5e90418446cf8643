/** A source of time: returns epoch milliseconds, fractions allowed. */
export type Clock = () => number;

/**
 * The default clock: epoch milliseconds with sub-millisecond precision, from
 * the monotonic `performance.now()`, so it never steps back when the system
 * clock is adjusted.
 *
 * @example
 * ```ts
 * const t = systemClock(); // e.g. 1764048000123.456
 * ```
 */
export const systemClock: Clock = () => performance.timeOrigin + performance.now();
