import { ConfigError, type ArgumentError } from '../errors.js';

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
  return checkDuration(value, parameter, POLICY_BOUNDS);
}

/**
 * The range a duration option accepts, in ms: from `min` (or, with `above`,
 * anything above it) to `max` (`Infinity`: no bound). `minName` names an
 * option `min` was taken from (e.g. `'timeoutMs'`), for the message.
 * @internal
 *
 * @example
 * ```ts
 * const connect: DurationBounds = { min: timeoutMs, minName: 'timeoutMs', max: 600_000 };
 * ```
 */
export interface DurationBounds {
  readonly min: number;
  readonly max: number;
  readonly above?: boolean;
  readonly minName?: string;
}

/**
 * Converts a {@link Duration} option or argument to milliseconds within
 * `bounds`; anything else is an `errorClass` (ConfigError for options given
 * at construction, ArgumentError for a call's) naming `parameter`. One rule
 * for every duration the library takes, so that `'100ms'` works wherever
 * `100` does.
 * @internal
 *
 * @example
 * ```ts
 * checkDuration('250ms', 'timeoutMs', { min: 1, max: 60_000 }); // 250
 * checkDuration(-1, 'maxWaitMs', { min: 0, max: Infinity }, ArgumentError); // throws: maxWaitMs must be at least 0 ms, got -1
 * ```
 */
export function checkDuration(
  value: unknown,
  parameter: string,
  bounds: DurationBounds,
  errorClass: typeof ConfigError | typeof ArgumentError = ConfigError,
): number {
  let ms: number | undefined;
  if (typeof value === 'number') {
    ms = value;
  } else if (typeof value === 'string') {
    const match = PATTERN.exec(value.trim());
    if (match) ms = Number(match[1]) * UNIT_MS[match[2]!]!;
  }
  if (ms === undefined) throw new errorClass(parameter, value, "a duration: milliseconds, or a string such as '250ms', '3s', '1m', '1h' or '1d'");
  const { min, max, above = false, minName } = bounds;
  const low = `${above ? 'above' : 'at least'} ${minName === undefined ? `${min} ms` : `${minName} (${min} ms)`}`;
  const high = `at most ${max} ms${max === MAX_DURATION_MS ? ' (1000 days)' : ''}`;
  if (above ? ms <= min : ms < min) throw new errorClass(parameter, value, low);
  if (ms > max) throw new errorClass(parameter, value, high);
  if (Number.isNaN(ms)) throw new errorClass(parameter, value, `a duration (${low}${max === Infinity ? '' : `, ${high}`})`);
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

/** Periods and windows: from 1 ms to 1000 days. */
const POLICY_BOUNDS: DurationBounds = { min: MIN_DURATION_MS, max: MAX_DURATION_MS };

/**
 * A delay or a backoff: from none to 1000 days (`{ ...DELAY_BOUNDS, above: true }`: some).
 * @internal
 *
 * @example
 * ```ts
 * checkDuration(options.delayMs, 'delayMs', DELAY_BOUNDS, ArgumentError);
 * ```
 */
export const DELAY_BOUNDS: DurationBounds = { min: 0, max: MAX_DURATION_MS };

/**
 * What a `maxWaitMs` accepts: any wait, from none to no bound (`Infinity`).
 * @internal
 *
 * @example
 * ```ts
 * checkDuration(options.maxWaitMs, 'maxWaitMs', MAX_WAIT_BOUNDS, ArgumentError);
 * ```
 */
export const MAX_WAIT_BOUNDS: DurationBounds = { min: 0, max: Infinity };
