import type { Duration } from '../core/duration.js';
import { optionNames } from '../core/options.js';
import { CODE, windowPolicy, type WindowPolicyFields } from './windows.js';

/** Options of {@link slidingWindow}. */
export interface SlidingWindowOptions {
  /** Requests per window: an integer from 1 to {@link MAX_COUNT}. */
  limit: number;
  /** Window length, 1 ms to 1000 days ({@link MIN_DURATION_MS}, {@link MAX_DURATION_MS}); the underlying windows are aligned to the epoch. */
  window: Duration;
}

const SLIDING_WINDOW_OPTIONS = optionNames<keyof SlidingWindowOptions>({ limit: true, window: true });

/** A sliding-window policy, as built by {@link slidingWindow}. */
export interface SlidingWindowPolicy extends WindowPolicyFields {
  readonly kind: 'slidingWindow';
}

/**
 * Sliding window, the two-window weighted approximation: the count of the
 * previous window, weighted by how much of it still overlaps the sliding
 * window, plus the current window's count. Smooths the fixed window's boundary
 * bursts at the cost of two counters.
 *
 * @example
 * ```ts
 * const api = slidingWindow({ limit: 100, window: '1m' });
 * ```
 */
export function slidingWindow(options: SlidingWindowOptions): SlidingWindowPolicy {
  return windowPolicy('slidingWindow', CODE.sliding, options, 'window', SLIDING_WINDOW_OPTIONS);
}
