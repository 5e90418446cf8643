import { checkDuration, type Duration } from '../core/duration.js';
import { optionNames, strictOptions } from '../core/options.js';
import { builtIn, CODE, positiveCount, type PolicyBase } from './policy.js';

/** Options of {@link concurrency}. */
export interface ConcurrencyOptions {
  /** Most holders of one key at once: an integer from 1 to {@link MAX_COUNT}. */
  limit: number;
  /**
   * How long a permit lasts unless renewed (default `'30s'`): 1 s to 1 day
   * ({@link MIN_LEASE_MS}, {@link MAX_LEASE_MS}). A held permit is renewed on
   * its own while its process runs, so this bounds only how long the slots of
   * a holder that died (or forgot its permit) stay taken: they come back
   * between `leaseMs` and `2 * leaseMs` after its last renewal.
   */
  leaseMs?: Duration;
}

/**
 * Shortest lease a concurrency gate accepts (ms): 1 s. Renewals come every
 * half of it, so an event loop stalled longer than that (a long GC, a busy
 * machine) may let a live holder's lease run out: half a second is the
 * least stall a lease should outlast.
 */
export const MIN_LEASE_MS = 1000;
/** Longest lease a concurrency gate accepts (ms): one day. */
export const MAX_LEASE_MS = 86_400_000;
/** The lease of a concurrency gate when none is given (ms). */
export const DEFAULT_LEASE_MS = 30_000;

const CONCURRENCY_OPTIONS = optionNames<keyof ConcurrencyOptions>({ limit: true, leaseMs: true });

/** A concurrency policy, as built by {@link concurrency}. */
export interface ConcurrencyPolicy extends PolicyBase<'concurrency'> {
  readonly limit: number;
  readonly leaseMs: number;
}

/**
 * At most `limit` requests of a key in flight at once, across every process
 * sharing the store: a gate that admits while fewer than `limit` permits are
 * held and counts each until it is released. Stack it with rate gates
 * (`[gcra(...), concurrency(...)]`: both must admit, a denial charges none).
 * An admitted decision of a limiter with this gate carries `release()`;
 * `limiter.acquire(key)` waits for a slot and answers a {@link Permit}.
 *
 * A permit not released stops counting after its lease (`leaseMs`), so that
 * a process killed while holding slots frees them: a held permit is renewed
 * automatically every `leaseMs / 2` while its process runs. `remaining` is
 * the slots free after the decision; a denial's `retryAfterMs` is when the
 * lease of the oldest holders would run out (an upper bound: a release comes
 * sooner, and `acquire` wakes on it).
 *
 * @example
 * ```ts
 * const limiter = new Limiter({ policy: [gcra({ limit: 100, period: '1m' }), concurrency({ limit: 2 })] });
 * await using permit = await limiter.acquire('tenant:7'); // at most 2 at once, 100 a minute
 * await callUpstream();
 * ```
 */
export function concurrency(options: ConcurrencyOptions): ConcurrencyPolicy {
  const o = strictOptions(options, 'concurrency()', CONCURRENCY_OPTIONS);
  const limit = positiveCount(o.limit, 'limit');
  const leaseMs = o.leaseMs === undefined ? DEFAULT_LEASE_MS : checkDuration(o.leaseMs, 'leaseMs', { min: MIN_LEASE_MS, max: MAX_LEASE_MS });
  return builtIn({ kind: 'concurrency', limit, leaseMs } as const, { code: CODE.concurrency, p0: leaseMs, p1: limit, p2: 0, capacity: limit });
}

/**
 * Whether a policy is a concurrency gate.
 * @internal
 *
 * @example
 * ```ts
 * policies.some(isConcurrency); // the limiter hands out permits
 * ```
 */
export function isConcurrency(policy: unknown): policy is ConcurrencyPolicy {
  return (policy as { core?: { code?: unknown } } | undefined)?.core?.code === CODE.concurrency;
}

/**
 * Whether a limiter's gates (its `policies`) include a concurrency gate: its
 * admissions are then permits to release. Anything but an array (a limiter
 * stand-in without `policies`) has none.
 * @internal
 *
 * @example
 * ```ts
 * if (holdsSlots(limiter.policies)) await permit.release();
 * ```
 */
export function holdsSlots(policies: unknown): boolean {
  return Array.isArray(policies) && policies.some(isConcurrency);
}
