// The reconciliation ledger: what the fallback admitted per key while Redis
// was unreachable, to be charged to Redis when it is back (decide.lua's
// charge, as of when it was spent).
import type { Clock } from '../../core/clock.js';
import type { Policy } from '../../policies/index.js';
import { CODE } from '../../../build/abi.js';

/** The smallest ledger that is pruned of charges past their decay horizon. */
const MIN_PRUNE = 10_000;

/** What one key owes Redis: cost units, first admitted at `from`, last at `at` (local clock). */
export interface Owed {
  cost: number;
  from: number;
  at: number;
}

/**
 * How long after its last admission a state of `gate` decays to "never seen"
 * at most: GCRA's burst times its interval, a bucket's time to refill whole,
 * a window's length (twice, sliding).
 */
export function decayHorizon(gate: Policy): number {
  const { code, p0, p1, p2 } = gate.core;
  if (code === CODE.gcra) return p2;
  if (code === CODE.tokenInterval) return (Math.ceil(p0 / p1) + 1) * p2; // + the period under way
  if (code === CODE.sliding || code === CODE.concurrency) return 2 * p0;
  return p0;
}

/**
 * Per key, the cost units the fallback admitted in an outage, when it first
 * did (the charge is made as of then) and when it last did (for pruning).
 *
 * No cap: a key left out would be charged nothing for what it spent in the
 * outage, a fresh budget in Redis. But a key whose last admission is older
 * than the fallback's decay horizon owes nothing any more (its state, here
 * and in the fleet's policy, is back to "never seen"): pruned, so the ledger
 * follows the keys admitted lately, not all keys ever seen.
 *
 * @example
 * ```ts
 * const ledger = new Ledger(Date.now);
 * ledger.horizonFor(gates);
 * ledger.record('user:1', 1);
 * const owed = ledger.take('user:1'); // { cost: 1, from, at }
 * ```
 * @internal
 */
export class Ledger {
  readonly #owed = new Map<string, Owed>();
  readonly #clock: Clock;
  /** The size that triggers the next prune (twice what the last one left). */
  #pruneAt = MIN_PRUNE;
  /** How long after its last admission a key's fallback state decays at most (its charge is moot after). */
  #horizonMs = 0;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** The fallback's gates changed: charges older than their decay horizon are moot. */
  horizonFor(gates: readonly Policy[]): void {
    this.#horizonMs = Math.max(0, ...gates.map(decayHorizon));
  }

  /** Keys that owe. */
  get size(): number {
    return this.#owed.size;
  }

  /** Adds `cost` to what `key` owes; `from`, when a charge goes back, keeps the earliest moment. */
  record(key: string, cost: number, from?: number): void {
    const ledger = this.#owed;
    const now = this.#clock();
    const had = ledger.get(key);
    if (had !== undefined) {
      had.cost += cost;
      had.at = now;
      if (from !== undefined && from < had.from) had.from = from;
      return;
    }
    if (ledger.size >= this.#pruneAt) {
      for (const [k, e] of ledger) if (e.at < now - this.#horizonMs) ledger.delete(k);
      this.#pruneAt = Math.max(MIN_PRUNE, ledger.size * 2);
    }
    ledger.set(key, { cost, from: from ?? now, at: now });
  }

  /** What `key` owes, taken off the ledger (undefined: nothing). */
  take(key: string): Owed | undefined {
    const owed = this.#owed.get(key);
    if (owed !== undefined) this.#owed.delete(key);
    return owed;
  }

  /** The keys that owe, now (a copy: taking them as it goes is safe). */
  keys(): string[] {
    return [...this.#owed.keys()];
  }
}
