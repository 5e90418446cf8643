import type { Duration } from '../core/duration.js';
import { optionNames } from '../core/options.js';
import { CODE, windowPolicy, type WindowPolicyFields } from './windows.js';

/** Options of {@link fixedWindow}. */
export interface FixedWindowOptions {
  /** Requests per window: an integer from 1 to {@link MAX_COUNT}. */
  limit: number;
  /** Window length, 1 ms to 1000 days ({@link MIN_DURATION_MS}, {@link MAX_DURATION_MS}); windows start at multiples of it since the epoch. */
  window: Duration;
}

const FIXED_WINDOW_OPTIONS = optionNames<keyof FixedWindowOptions>({ limit: true, window: true });

/** A fixed-window policy, as built by {@link fixedWindow}. */
export interface FixedWindowPolicy extends WindowPolicyFields {
  readonly kind: 'fixedWindow';
}

/**
 * Fixed window: at most `limit` per window, windows aligned to multiples of
 * `window` since the epoch (so every process agrees on the boundaries). Cheap
 * and predictable; allows up to 2x `limit` across a boundary.
 *
 * @example
 * ```ts
 * const perMinute = fixedWindow({ limit: 60, window: '1m' });
 * ```
 */
export function fixedWindow(options: FixedWindowOptions): FixedWindowPolicy {
  return windowPolicy('fixedWindow', CODE.fixed, options, 'window', FIXED_WINDOW_OPTIONS);
}
