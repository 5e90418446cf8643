import type { Duration } from '../core/duration.js';
import { optionNames } from '../core/options.js';
import { CODE, windowPolicy, type WindowPolicyFields } from './windows.js';

/** Options of {@link linearWindow}. */
export interface LinearWindowOptions {
  /** Admissions per window: an integer from 1 to {@link MAX_COUNT}. */
  limit: number;
  /**
   * Window length, 1 ms to 1000 days ({@link MIN_DURATION_MS},
   * {@link MAX_DURATION_MS}), counted from the window's first admission.
   * Named `within`, not `window`, because it is not the same concept: a
   * fixed or sliding window is a slot of the epoch's clock, the same for
   * every key; this one opens when a key is admitted and lasts `within` from
   * then.
   */
  within: Duration;
}

const LINEAR_WINDOW_OPTIONS = optionNames<keyof LinearWindowOptions>({ limit: true, within: true });

/** A linear-window policy, as built by {@link linearWindow}. */
export interface LinearWindowPolicy extends WindowPolicyFields {
  readonly kind: 'linearWindow';
}

/**
 * Linear window, the per-resource limiter of operator frameworks: at most
 * `limit` admissions within `within`, the window opening at the first admission
 * after the previous one expired. With limit 2 within 3 s, admissions at 0 s
 * and 1 s block the key until 3 s. Unlike {@link fixedWindow}'s `window`,
 * aligned to multiples of its length since the epoch, `within` counts from
 * the key's own first admission.
 *
 * @example
 * ```ts
 * const reconcile = linearWindow({ limit: 2, within: '3s' });
 * ```
 */
export function linearWindow(options: LinearWindowOptions): LinearWindowPolicy {
  return windowPolicy('linearWindow', CODE.linear, options, 'within', LINEAR_WINDOW_OPTIONS);
}
