// A key's block: what Limiter.block sets and `blockAfter` escalates to. In
// the stores it is a limiter's hidden last gate (KIND_BLOCK, abi/abi.mjs):
// decided with the others, so a blocked key is denied and charged nothing,
// and kept with the key's state (the wasm table, Redis).
import { checkDuration, MAX_DURATION_MS, type Duration } from '../core/duration.js';
import { strictOptions, optionNames } from '../core/options.js';
import { ArgumentError, ConfigError } from '../errors.js';
import type { CoreParams } from '../policies/core-params.js';
import { KIND_BLOCK } from '../../build/abi.js';

/**
 * Options of `blockAfter`: a key denied `denials` times within `within`
 * (counted from its first denial, a linear window) is blocked for
 * `duration`. Only denials by the key's own limits count: not the requests
 * its block denies (a block ends when it says), nor dry runs (`peek`).
 *
 * @example
 * ```ts
 * const limiter = new Limiter({ policy: gcra({ limit: 5, period: '1s' }), blockAfter: { denials: 20, within: '1m', duration: '15m' } });
 * ```
 */
export interface BlockAfter {
  /** Denials that block the key: an integer from 1 to 1,000,000. */
  denials: number;
  /** The window they must fall in, from the first: a {@link Duration} from 1 ms to 1000 days. */
  within: Duration;
  /** How long the block lasts: a {@link Duration} from 1 ms to 1000 days. */
  duration: Duration;
}

/**
 * The block gate of a limiter, what a store appends to its gates: its
 * CoreParams (p0 the denials that block, 0 without `blockAfter`; p1 within;
 * p2 the duration).
 * @internal
 */
export interface BlockGate {
  readonly core: CoreParams;
}

const BLOCK_AFTER_OPTIONS = optionNames<keyof BlockAfter>({ denials: true, within: true, duration: true });
const BLOCK_BOUNDS = { min: 1, max: MAX_DURATION_MS };

/**
 * Validates `blockAfter` (undefined: none) and answers the limiter's block gate.
 * @internal
 *
 * @example
 * ```ts
 * blockGate({ denials: 3, within: '10s', duration: '1m' }).core; // { code: KIND_BLOCK, p0: 3, p1: 10000, p2: 60000, capacity: Infinity }
 * ```
 */
export function blockGate(blockAfter: unknown): BlockGate {
  if (blockAfter === undefined) return { core: { code: KIND_BLOCK, p0: 0, p1: 0, p2: 0, capacity: Infinity } };
  const o = strictOptions(blockAfter, 'new Limiter({ blockAfter })', BLOCK_AFTER_OPTIONS, 'blockAfter');
  const denials = o.denials;
  if (typeof denials !== 'number' || !Number.isInteger(denials) || denials < 1 || denials > 1_000_000) {
    throw new ConfigError('blockAfter.denials', denials, 'an integer from 1 to 1000000');
  }
  const within = checkDuration(o.within, 'blockAfter.within', BLOCK_BOUNDS);
  const duration = checkDuration(o.duration, 'blockAfter.duration', BLOCK_BOUNDS);
  return { core: { code: KIND_BLOCK, p0: denials, p1: within, p2: duration, capacity: Infinity } };
}

/**
 * The `duration` of `Limiter.block`, in ms: from 1 ms to 1000 days.
 * @internal
 *
 * @example
 * ```ts
 * blockDuration('15m'); // 900000
 * ```
 */
export function blockDuration(value: unknown): number {
  return checkDuration(value, 'duration', BLOCK_BOUNDS, ArgumentError);
}
