import { ConfigError, UnknownOptionError, type ArgumentError } from '../errors.js';

/**
 * Validates that `value` is a plain options object whose every own name is
 * one of `known`, and returns it. Plain-JS callers get no type error for a
 * misspelt option, and a silently ignored `brust` leaves the default in force:
 * a limit other than the one written down. So every factory and constructor,
 * and every call that takes options, checks its names here before it reads
 * any. An unknown name is an {@link UnknownOptionError} (a `ConfigError`),
 * also for the options of a call.
 *
 * @param where How the caller is named in the message, e.g. `'gcra()'`.
 * @param parameter What a value that is not an object is reported as
 *   (default `` `${where} options` ``), e.g. `'lease'` for a nested object.
 * @param errorClass The class of that report: `ArgumentError` for the
 *   options of a call (default `ConfigError`).
 * @internal
 *
 * @example
 * ```ts
 * const o = strictOptions(options, 'gcra()', GCRA_OPTIONS);
 * const batch = strictOptions(o.batch, 'new RedisStore({ batch })', BATCH_OPTIONS, 'batch');
 * ```
 */
export function strictOptions(
  value: unknown,
  where: string,
  known: readonly string[],
  parameter = `${where} options`,
  errorClass: typeof ConfigError | typeof ArgumentError = ConfigError,
): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new errorClass(parameter, value, 'an options object');
  }
  // for-in rather than Object.keys: no array per call on the hot paths (limit(key, { cost })).
  for (const name in value) {
    if (Object.hasOwn(value, name) && !known.includes(name)) throw new UnknownOptionError(name, where, nearest(name, known));
  }
  return value as Record<string, unknown>;
}

/**
 * The option names of an options type, written as an object so that the
 * compiler holds them to the type both ways: a name the type lacks is an
 * excess property, a field the list lacks a missing one.
 * @internal
 *
 * @example
 * ```ts
 * const GCRA_OPTIONS = optionNames<keyof GcraOptions>({ limit: true, period: true, burst: true });
 * ```
 */
export function optionNames<K extends string>(names: Record<K, true>): readonly K[] {
  return Object.freeze(Object.keys(names) as K[]);
}

/** The known name closest to `name` by edit distance, if close enough to be a typo. */
function nearest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = name.toLowerCase();
  for (const k of known) {
    const d = distance(lower, k.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  // A third of the name may be wrong (brust, mdoe, stroe, maxkeys, tiemoutMs).
  return bestDistance <= Math.max(2, Math.ceil(name.length / 3)) ? best : undefined;
}

/** Optimal string alignment distance: edits, with a swap of neighbours counting once. */
function distance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row = new Array<number>(b.length + 1);
    row[0] = i;
    rows.push(row);
  }
  for (let j = 0; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const same = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + same);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}
