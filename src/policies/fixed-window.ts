import type { Duration } from '../duration.js';
import { CODE, windowPolicy, type WindowPolicyFields } from './windows.js';

/** Options of {@link fixedWindow}. */
export interface FixedWindowOptions {
  /** Requests per window. */
  limit: number;
  /** Window length; windows start at multiples of it since the epoch. */
  window: Duration;
}

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
  return windowPolicy('fixedWindow', CODE.fixed, options, 'window');
}
