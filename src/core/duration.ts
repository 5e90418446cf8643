import { ConfigError } from '../errors.js';

/** A duration: milliseconds as a number, or a string such as `'250ms'`, `'3s'`, `'1.5m'`, `'1h'`, `'1d'`. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;

/**
 * Converts a {@link Duration} to milliseconds; `parameter` names it in the
 * error thrown for anything that is not a finite duration from
 * {@link MIN_DURATION_MS} (1 ms) to {@link MAX_DURATION_MS} (1000 days).
 *
 * @example
 * ```ts
 * parseDuration('1.5s', 'period'); // 1500
 * parseDuration(250, 'window');    // 250
 * ```
 */
export function parseDuration(value: unknown, parameter: string): number {
  let ms: number;
  if (typeof value === 'number') {
    ms = value;
  } else if (typeof value === 'string') {
    const match = PATTERN.exec(value.trim());
    if (!match) throw new ConfigError(parameter, value, "a duration such as 250, '250ms', '3s', '1m', '1h' or '1d'");
    ms = Number(match[1]) * UNIT_MS[match[2]!]!;
  } else {
    throw new ConfigError(parameter, value, 'a duration in milliseconds or a string such as \'3s\'');
  }
  if (!Number.isFinite(ms) || ms <= 0) throw new ConfigError(parameter, value, 'a positive, finite duration');
  if (ms < MIN_DURATION_MS) throw new ConfigError(parameter, value, `at least ${MIN_DURATION_MS} ms`);
  if (ms > MAX_DURATION_MS) throw new ConfigError(parameter, value, `at most ${MAX_DURATION_MS} ms (1000 days)`);
  return ms;
}

/**
 * The longest duration accepted anywhere: 1000 days. Every time a policy can
 * report (a wait, a reset, a key's expiry) stays within a small multiple of
 * it, finite and, added to an epoch-millisecond time, far inside the exact
 * range of a double (and of the integer expiries Redis takes).
 */
export const MAX_DURATION_MS = 1000 * 86_400_000;

/**
 * The shortest duration accepted (periods, windows): 1 ms. Shorter windows
 * mean nothing to a clock read once per task, and would make window indexes
 * (epoch time / window) overflow or lose their integer precision: a window
 * of 1e-300 ms put every request in window Infinity, denied for ever.
 */
export const MIN_DURATION_MS = 1;
