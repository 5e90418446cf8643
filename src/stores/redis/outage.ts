// Deciding without Redis: the fallback's local table (the fleet's share of
// each gate, or fail open/closed), the ledger of what it admitted, and the
// seeding of its table from Redis's answers while Redis is up.
import type { BlockGate } from '../../limiter/blocks.js';
import type { Clock } from '../../core/clock.js';
import type { Decision, Reservation } from '../../limiter/decision.js';
import type { EmbeddedStore } from '../embedded/embedded-store.js';
import type { EmbeddedBinding } from '../embedded/embedded-binding.js';
import type { Policy } from '../../policies/index.js';
import { configuredLimit } from '../../policies/configured-limit.js';
import { ConfigError } from '../../errors.js';
import { fallbackGates, FLEET, scaleGates, type FallbackSetting } from './fallback.js';
import type { Ledger } from './ledger.js';
import { CODE, OP_CHARGE, OP_LEASE, OP_LIMIT, OP_PEEK, OP_REFUND, OP_RELEASE, OP_RESERVE, OP_RESET } from '../../../build/abi.js';
import type { Held, Renewal } from '../../limiter/store.js';

/**
 * A limiter with a concurrency gate needs one in its fallback policy too, of
 * no more slots: without, nothing would bound its holders while Redis is
 * out of reach.
 */
function checkFallbackSlots(gates: readonly Policy[], local: readonly Policy[]): void {
  const gate = gates.find((g) => g.core.code === CODE.concurrency);
  if (gate === undefined) return;
  const own = local.find((g) => g.core.code === CODE.concurrency);
  if (own === undefined || own.core.p1 > gate.core.p1) {
    throw new ConfigError('fallback.policy', local, `a concurrency gate of at most ${gate.core.p1} slots among its gates, as the limiter has: its holders without Redis are bounded by it (per store)`);
  }
}

/** Fallback decisions per one that waits for a macrotask (see `yielding`). */
const YIELD_EVERY = 32;
/** Runs `f` after the event loop has turned (I/O included): setImmediate where there is one. */
const yieldToLoop: (f: () => void) => void =
  typeof (globalThis as { setImmediate?: unknown }).setImmediate === 'function' ? (f) => void setImmediate(f) : (f) => void setTimeout(f, 0);

/** @internal What the outage decider needs from its binding. */
export interface OutageOptions {
  gates: readonly Policy[];
  /** The limiter's block gate (blocks.ts): the fallback keeps Redis's blocks, and its own escalations. */
  block: BlockGate;
  fallback: FallbackSetting;
  /** The fleet's size as Redis last reported it (undefined: never heard), for the default fallback. */
  fleet: { nodes: number | undefined };
  /** The store whose table holds the fallback's state (the Redis store's mirror). */
  table: EmbeddedStore;
  /** Redis's clock, as estimated locally (the fallback's state is on it, as Redis's is). */
  redisClock: Clock;
  clock: Clock;
  timeoutMs: number;
  /** Counts the fallback's decisions. */
  counts: { fallback: number };
  /** Where admissions go to be charged to Redis after recovery (undefined: not reconciled). */
  ledger: Ledger | undefined;
}

/**
 * Decides the calls of one limiter's gates while Redis is unreachable, per
 * the store's `fallback` option, and keeps what it admitted on the ledger.
 *
 * @example
 * ```ts
 * const outage = new OutageDecider({ gates, fallback: 'fleet', fleet, table, redisClock, clock, timeoutMs: 100, counts, ledger });
 * const d = outage.decide('user:1', OP_LIMIT, 1, 0); // source 'fallback'
 * ```
 * @internal
 */
export class OutageDecider {
  readonly #o: OutageOptions;
  /** Decides while Redis is down (undefined: fail open or closed). */
  readonly #fallback: EmbeddedBinding | undefined;
  /** Whether Redis's answers seed the fallback (the scaled policy, gate for gate). */
  readonly #seeded: boolean;
  /** Per gate, the capacity a seeded token count is clamped to (NaN: no clamp). */
  #seedClamp: number[] = [];
  /** Gate 0's configured limit and capacity, for a decision without a fallback table. */
  readonly #limit: number;
  readonly #capacity: number;
  #calls = 0;
  /** The time the last decision was made at, on the fallback table's clock (a permit's slots count from it). */
  #lastAt = 0;

  constructor(options: OutageOptions) {
    this.#o = options;
    const local = fallbackGates(options.fallback, options.gates);
    if (local !== undefined) checkFallbackSlots(options.gates, local);
    this.#fallback = local === undefined ? undefined : options.table.bind(local, options.redisClock, options.block);
    this.#seeded = options.fallback === FLEET || (typeof options.fallback === 'object' && 'nodes' in options.fallback);
    this.#limit = configuredLimit(options.gates[0]!);
    this.#capacity = options.gates[0]!.core.capacity;
    this.#share(local ?? []);
    if (options.fallback === FLEET && options.fleet.nodes !== undefined) this.fleetChanged(options.fleet.nodes);
  }

  /** This store's slots of the concurrency gate while Redis is out of reach (Infinity: none limits them). */
  #slots = Infinity;

  /** What follows from the fallback's gates: the seed clamp, the share of slots and the ledger's horizon. */
  #share(local: readonly Policy[]): void {
    const gate = local.find((g) => g.core.code === CODE.concurrency);
    this.#slots = gate === undefined ? Infinity : gate.core.p1;
    // A token count seeded from the whole fleet's bucket must not exceed this node's share.
    this.#seedClamp = local.map((g) => (g.core.code === CODE.tokenInterval ? g.core.p0 : NaN));
    this.#o.ledger?.horizonFor(local);
  }

  /**
   * The fleet's size changed (the store's heartbeat): the default fallback is
   * rescaled to 1/N in place, keeping the keys' fallback state.
   */
  fleetChanged(nodes: number): void {
    if (this.#o.fallback !== FLEET || this.#fallback === undefined) return;
    const local = scaleGates(this.#o.gates, nodes);
    this.#fallback.setGates(local);
    this.#share(local);
  }

  /**
   * A penalty without Redis: charged to the fallback's table now, and to
   * Redis after recovery with the outage's admissions (the ledger; lost
   * without `reconcile`).
   */
  penalize(key: string, cost: number): void {
    this.#fallback?.penalize(key, cost);
    this.#o.ledger?.record(key, cost);
  }

  /**
   * A report of an upstream's remaining without Redis: the fallback's table
   * of the key is lowered to it (this store admits no more than the
   * upstream said on its own). Nothing is owed to Redis after recovery: a
   * lower is a moment's truth, not units spent, and the next report lowers
   * Redis itself.
   */
  lower(key: string, remaining: number): void {
    this.#fallback?.lower(key, remaining);
  }

  /** Decides one call (OP_* of abi/abi.mjs) without Redis; undefined for the ops that answer nothing. */
  decide(key: string, op: number, cost: number, maxWait: number): Decision | Reservation | undefined {
    const fallback = this.#fallback;
    if (op === OP_REFUND || op === OP_RESET || op === OP_CHARGE || op === OP_LEASE || op === OP_RELEASE) {
      if (op === OP_REFUND) fallback?.refund(key, cost);
      if (op === OP_RESET) fallback?.reset(key);
      if (op === OP_RELEASE) fallback?.release(key, cost, maxWait);
      return undefined;
    }
    this.#lastAt = this.#o.redisClock();
    this.#o.counts.fallback++;
    // The default fallback of a store that has never heard the fleet's size
    // from Redis: no share is known, so nothing is admitted on its own.
    if (fallback === undefined || (this.#o.fallback === FLEET && this.#o.fleet.nodes === undefined)) {
      const open = this.#o.fallback === 'open';
      const limit = this.#limit;
      const capacity = this.#capacity;
      const remaining = open ? capacity : 0;
      if (op === OP_RESERVE) return { allowed: open, waitMs: 0, at: this.#o.clock(), limit, capacity, gate: 0, remaining, source: 'fallback' };
      return { allowed: open, limit, capacity, gate: 0, remaining, retryAfterMs: open ? 0 : this.#o.timeoutMs, resetAfterMs: 0, source: 'fallback' };
    }
    if (op === OP_RESERVE) {
      const r = fallback.reserve(key, cost, maxWait);
      if (r.allowed) this.#o.ledger?.record(key, cost);
      return { ...r, source: 'fallback' };
    }
    const held = fallback.hold(key, cost, op === OP_PEEK);
    this.#lastAt = held.at;
    const d = held.decision;
    if (d.allowed && op === OP_LIMIT) this.#o.ledger?.record(key, cost);
    return { ...d, source: 'fallback' };
  }

  /**
   * A limit holding concurrency slots, without Redis: the decision, and the
   * time on the fallback table's clock its slots count from.
   */
  hold(key: string, cost: number): Held {
    const decision = this.decide(key, OP_LIMIT, cost, 0) as Decision;
    return { decision, at: this.#lastAt };
  }

  /**
   * This store's share of a concurrency gate's slots while it cannot count
   * on Redis: the fallback's (`floor(limit / N)`), none for `'closed'` or
   * before the fleet's size is known, no bound for `'open'`.
   */
  get slotShare(): number {
    if (this.#fallback === undefined) return this.#o.fallback === 'open' ? Infinity : 0;
    if (this.#o.fallback === FLEET && this.#o.fleet.nodes === undefined) return 0;
    return this.#slots;
  }

  /**
   * Whether `own` slots of the key held by this store, and `cost` more, fit
   * its share; if not, the denial (by the concurrency gate `gate`, whose
   * lease `leaseMs` bounds the wait).
   */
  overShare(own: number, cost: number, gate: number, leaseMs: number): Held | undefined {
    const share = this.slotShare;
    if (own + cost <= share) return undefined;
    return this.#denied(gate, share, Math.max(0, share - own), leaseMs);
  }

  /**
   * The denial of a hold in an outage's grace (see RedisBinding's
   * `#holdLocally`), which ends in `graceLeftMs`.
   */
  inGrace(gate: number, graceLeftMs: number): Held {
    return this.#denied(gate, this.slotShare, 0, Math.ceil(graceLeftMs));
  }

  #denied(gate: number, share: number, remaining: number, retryAfterMs: number): Held {
    this.#o.counts.fallback++;
    const decision: Decision = { allowed: false, limit: this.#o.gates[gate]!.core.p1, capacity: share, gate, remaining, retryAfterMs, resetAfterMs: 0, source: 'fallback' };
    return { decision, at: NaN };
  }

  /** Returns a permit's slots to the fallback's table (which Redis's answers seeded). */
  release(key: string, cost: number, at: number): void {
    this.#fallback?.release(key, cost, at);
  }

  /** Renews, in the fallback's table, a permit the fallback admitted. */
  renew(key: string, cost: number, at: number): Renewal | undefined {
    const fallback = this.#fallback;
    if (fallback === undefined) return { at, source: 'fallback' }; // 'open' or 'closed': no table counts it
    const renewal = fallback.renew(key, cost, at);
    return renewal === undefined ? undefined : { at: renewal.at, source: 'fallback' };
  }

  /**
   * A fallback decision, handed back through a macrotask once in
   * {@link YIELD_EVERY}: resolved at once, a caller's `await` loop never lets
   * the event loop run, and the probe that would find Redis back (its timer,
   * its socket's answer) never does.
   */
  yielding<T>(decision: T): T | Promise<T> {
    if (++this.#calls % YIELD_EVERY !== 0) return decision;
    return new Promise((resolve) => yieldToLoop(() => resolve(decision)));
  }

  /** Copies Redis's state of the key (per gate a, b, c, exp at `offset`) into the fallback's gates, clamped to this node's share. */
  seed(key: string, out: Float64Array, offset: number): void {
    if (!this.#seeded) {
      // Whatever the fallback's policy, a key Redis blocks stays blocked without it.
      this.#fallback?.putBlockState(key, out, offset + this.#o.gates.length * 4);
      return;
    }
    const clamp = this.#seedClamp;
    for (let g = 0; g < clamp.length; g++) {
      const cap = clamp[g]!;
      const b = offset + g * 4 + 1;
      if (cap === cap && out[b]! > cap) out[b] = cap;
    }
    this.#fallback!.putStates(key, out, offset);
  }
}
