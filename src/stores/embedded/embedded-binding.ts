// One limiter's gates in an embedded store: the hot path from a key to a
// Decision, one core call per decision (or per 1024 keys in a batch).
import { checkNow, type Clock } from '../../core/clock.js';
import { ConfigError, StoreFullError } from '../../errors.js';
import type { BlockGate } from '../../limiter/blocks.js';
import type { Decision, Reservation } from '../../limiter/decision.js';
import type { Policy } from '../../policies/index.js';
import { configuredLimit } from '../../policies/configured-limit.js';
import type { CarryOutcome, Held, Renewal, StoreBinding } from '../../limiter/store.js';
import type { CoreParams } from '../../policies/core-params.js';
import { carriedState, carriedUse, carrySources, usedOf, type Carry } from '../../policies/carry.js';
import type { CoreExports } from '../../core/wasm.js';
import { BATCH_ENTRIES, CoreViews, ENTRY_F64, ENTRY_U32, encodeKey, writeKey } from '../../core/core-views.js';
import {
  ALLOWED, BLOCKED, BATCH_BYTES, BATCH_COST_INDEX, BATCH_FLAGS, BATCH_KEY_AREA_BYTES, BATCH_KEY_HI_INDEX, BATCH_KEY_LO_INDEX,
  BATCH_REMAINING_INDEX, BATCH_RESET_AFTER_MS_INDEX, KEY_BYTES_SHIFT,
  BATCH_RETRY_AFTER_MS_INDEX, FULL, GATE_MASK, GATE_SHIFT, GREW, RESULT_REMAINING_INDEX,
  RESULT_HELD_AT_INDEX, RESULT_RESET_AFTER_MS_INDEX, RESULT_RETRY_AFTER_MS_INDEX,
  CODE, LOWER_PASSES,
} from '../../../build/abi.js';

/** The bits of a core return value that call for the store's attention: memory grew; the table was full at its cap. */
export const FLAGS = GREW | FULL;
/**
 * What every binding of one store shares: the core, its views, and what to
 * do with a core call's flags.
 * @internal
 */
export interface Shared {
  readonly core: CoreExports;
  readonly views: CoreViews;
  /** Renews the views and announces a full table, as the flags of a core call say. */
  flags(r: number): void;
  /** Called every 1024 operations when the store reports metrics. */
  readonly tick: (() => void) | undefined;
}

/**
 * Decides for one limiter's gates in an {@link EmbeddedStore}; what
 * `Limiter` calls on the hot path.
 */
export class EmbeddedBinding implements StoreBinding {
  readonly #shared: Shared;
  readonly #core: CoreExports;
  readonly #views: CoreViews;
  readonly #gate0: number;
  /** The limiter's own gates. */
  readonly #gates: number;
  /**
   * The gates the core decides: #gates, and the block gate after them once
   * it may hold something (a `blockAfter` counts denials from the start; a
   * block arms it). Until then a limiter that never blocks decides as fast
   * as one that cannot.
   */
  #decided: number;
  /** Whether the limiter has a block gate (policy id gate0 + #gates). */
  readonly #blocks: boolean;
  /** Per gate, the limit it was configured with (Decision.limit) and what it passes at once (Decision.capacity). */
  readonly #limit: Float64Array;
  readonly #capacity: Float64Array;
  /** Per gate, its parameters (what a plan change converts a state by). */
  readonly #cores: CoreParams[];
  readonly #clock: Clock;

  constructor(shared: Shared, gate0: number, gates: readonly Policy[], clock: Clock, block?: BlockGate) {
    this.#shared = shared;
    this.#core = shared.core;
    this.#views = shared.views;
    this.#tick = shared.tick;
    this.#gate0 = gate0;
    this.#gates = gates.length;
    this.#blocks = block !== undefined;
    this.#decided = block !== undefined && block.core.p0 > 0 ? gates.length + 1 : gates.length;
    this.#limit = Float64Array.from(gates, configuredLimit);
    this.#capacity = Float64Array.from(gates, (g) => g.core.capacity);
    this.#cores = gates.map((g) => g.core);
    this.#clock = clock;
  }

  /** Called every 1024 operations when the store reports metrics. */
  readonly #tick: (() => void) | undefined;
  #ops = 0;

  #now(): number {
    if (this.#tick !== undefined && (++this.#ops & 1023) === 0) this.#tick();
    return checkNow(this.#clock());
  }

  limit(key: string, cost: number, dryRun: boolean): Decision {
    const now = this.#now();
    const r = this.#core.decide(writeKey(this.#views, key), this.#gate0, this.#decided, cost, now, dryRun ? 1 : 0);
    if ((r & FLAGS) !== 0) this.#shared.flags(r);
    const out = this.#views.result;
    const gate = (r >>> GATE_SHIFT) & GATE_MASK;
    const d: Decision = {
      allowed: (r & ALLOWED) !== 0,
      limit: this.#limit[gate]!,
      capacity: this.#capacity[gate]!,
      gate,
      remaining: out[RESULT_REMAINING_INDEX]!,
      retryAfterMs: out[RESULT_RETRY_AFTER_MS_INDEX]!,
      resetAfterMs: out[RESULT_RESET_AFTER_MS_INDEX]!,
      source: 'local',
    };
    return (r & BLOCKED) === 0 ? d : blocked(d);
  }

  readonly inProcess = true;

  limitNow(key: string, cost: number): Decision {
    return this.limit(key, cost, false);
  }

  limitManyNow(keys: readonly string[], cost: number): Decision[] {
    return this.limitMany(keys, cost);
  }

  limitMany(keys: readonly string[], cost: number): Decision[] {
    const now = this.#now();
    const decisions: Decision[] = new Array(keys.length);
    const views = this.#views;
    const core = this.#core;
    for (let start = 0; start < keys.length; ) {
      // The keys go into the batch key area one after another (each at a
      // multiple of 8), as many as fit, and are hashed by one call: no call
      // into the core per key.
      let u32 = views.batchU32;
      const units = views.batchKeys;
      const bytes = views.batchKeyBytes;
      let n = 0;
      let offset = 0;
      while (n < BATCH_ENTRIES && start + n < keys.length) {
        const key = keys[start + n]!;
        if (offset + key.length * 3 > BATCH_KEY_AREA_BYTES) break;
        const desc = encodeKey(units, bytes, offset, key);
        const e = n * ENTRY_U32;
        u32[e + BATCH_KEY_LO_INDEX] = offset;
        u32[e + BATCH_KEY_HI_INDEX] = desc;
        u32[e + BATCH_COST_INDEX] = cost;
        offset += ((desc >>> KEY_BYTES_SHIFT) + 7) & ~7;
        n++;
      }
      core.hashBatch(n);
      const r = core.decideBatch(n, this.#gate0, this.#decided, now, 0);
      if ((r & FLAGS) !== 0) this.#shared.flags(r);
      u32 = views.batchU32;
      const f64 = views.batchF64;
      const u8 = views.batchU8;
      for (let i = 0; i < n; i++) {
        const flags = u8[i * BATCH_BYTES + BATCH_FLAGS]!;
        const gate = (flags >>> GATE_SHIFT) & GATE_MASK;
        const d: Decision = {
          allowed: (flags & ALLOWED) !== 0,
          limit: this.#limit[gate]!,
          capacity: this.#capacity[gate]!,
          gate,
          remaining: u32[i * ENTRY_U32 + BATCH_REMAINING_INDEX]!,
          retryAfterMs: f64[i * ENTRY_F64 + BATCH_RETRY_AFTER_MS_INDEX]!,
          resetAfterMs: f64[i * ENTRY_F64 + BATCH_RESET_AFTER_MS_INDEX]!,
          source: 'local',
        };
        decisions[start + i] = (flags & BLOCKED) === 0 ? d : blocked(d);
      }
      start += n;
    }
    return decisions;
  }

  reserve(key: string, cost: number, maxWaitMs: number): Reservation {
    const now = this.#now();
    const r = this.#core.reserve(writeKey(this.#views, key), this.#gate0, this.#decided, cost, now, maxWaitMs);
    if ((r & FLAGS) !== 0) this.#shared.flags(r);
    const out = this.#views.result;
    const waitMs = out[RESULT_RETRY_AFTER_MS_INDEX]!;
    const gate = (r >>> GATE_SHIFT) & GATE_MASK;
    return {
      allowed: (r & ALLOWED) !== 0,
      waitMs,
      at: now + waitMs,
      limit: this.#limit[gate]!,
      capacity: this.#capacity[gate]!,
      gate,
      remaining: out[RESULT_REMAINING_INDEX]!,
      source: 'local',
    };
  }

  /** `limit`, with the time the decision was made at (`dryRun`: a peek, for the Redis store's fallback). */
  hold(key: string, cost: number, dryRun = false): Held {
    const decision = this.limit(key, cost, dryRun);
    return { decision, at: this.#views.result[RESULT_HELD_AT_INDEX]! };
  }

  holdNow(key: string, cost: number): Held {
    return this.hold(key, cost);
  }

  release(key: string, cost: number, at: number): void {
    const now = this.#now();
    this.#core.release(writeKey(this.#views, key), this.#gate0, this.#gates, cost, at, now);
  }

  renew(key: string, cost: number, at: number): Renewal | undefined {
    const now = this.#now();
    const r = this.#core.renew(writeKey(this.#views, key), this.#gate0, this.#gates, cost, at, now);
    if ((r & FLAGS) !== 0) this.#shared.flags(r);
    return (r & ALLOWED) !== 0 ? { at: this.#views.result[RESULT_HELD_AT_INDEX]!, source: 'local' } : undefined;
  }

  refund(key: string, cost: number): void {
    const now = this.#now();
    this.#core.refund(writeKey(this.#views, key), this.#gate0, this.#gates, cost, now);
  }

  /** Forgets the key in every gate: its block too. */
  reset(key: string): void {
    const now = this.#now();
    this.#core.reset(writeKey(this.#views, key), this.#gate0, this.#decided, now);
  }

  penalize(key: string, cost: number): void {
    const now = this.#now();
    const r = this.#core.charge(writeKey(this.#views, key), this.#gate0, this.#gates, cost, now);
    if ((r & FLAGS) !== 0) this.#shared.flags(r);
  }

  /**
   * Lowers the key's remaining to `remaining`, never raising it (see
   * StoreBinding.lower): each rate gate's remaining is what a peek of cost 1
   * finds admissible now (0 when it would deny, else its remaining + 1), and
   * when the fewest is above `remaining` that one gate (the first on ties)
   * is charged the difference now, as penalize charges (and again while a
   * rounding of GCRA's remaining leaves it above: LOWER_PASSES). The same
   * steps as the Redis script's lower.lua, on the core's own decide and charge.
   */
  lower(key: string, remaining: number): void {
    const now = this.#now();
    // Charged again only when rounding left it above `remaining` (LOWER_PASSES).
    for (let pass = 0; pass < LOWER_PASSES; pass++) {
      const gate = this.#fewest(key, now);
      if (gate < 0 || this.#fewestLeft <= remaining) return;
      const r = this.#core.charge(writeKey(this.#views, key), this.#gate0 + gate, 1, this.#fewestLeft - remaining, now);
      if ((r & FLAGS) !== 0) this.#shared.flags(r);
    }
  }

  /** What `#fewest` found: the fewest units a rate gate of the key admits now. */
  #fewestLeft = Infinity;

  /**
   * The key's rate gate with the fewest remaining at `now` (what a peek of
   * cost 1 finds admissible: its remaining + 1, or 0 when it would deny),
   * the first on ties, into #fewestLeft; -1 without a rate gate.
   */
  #fewest(key: string, now: number): number {
    const core = this.#core;
    let gate = -1;
    this.#fewestLeft = Infinity;
    for (let g = 0; g < this.#gates; g++) {
      if (this.#cores[g]!.code === CODE.concurrency) continue;
      // One gate alone, a dry run: nothing is charged or recorded, no denial counted.
      const r = core.decide(writeKey(this.#views, key), this.#gate0 + g, 1, 1, now, 1);
      const left = (r & ALLOWED) !== 0 ? this.#views.result[RESULT_REMAINING_INDEX]! + 1 : 0;
      if (left < this.#fewestLeft) {
        this.#fewestLeft = left;
        gate = g;
      }
    }
    return gate;
  }

  /**
   * Blocks the key for `durationMs` from now, or unblocks it (0). A block
   * that cannot be recorded (a new record, the table full at its cap in deny
   * mode) throws {@link StoreFullError} rather than evicting another key's
   * state for it.
   */
  block(key: string, durationMs: number): void {
    if (!this.#blocks) throw new ConfigError('store', 'a binding without a block gate', 'a limiter bound with its block gate');
    const now = this.#now();
    const until = durationMs > 0 ? now + durationMs : -Infinity;
    // Unblocking a limiter that never blocked has nothing to remove.
    if (until === -Infinity && this.#decided === this.#gates) return;
    this.#decided = this.#gates + 1;
    const r = this.#core.putState(writeKey(this.#views, key), this.#gate0 + this.#gates, until, -1, 0, until, now);
    if ((r & FLAGS) !== 0) this.#shared.flags(r);
    if ((r & ALLOWED) === 0) throw new StoreFullError();
  }

  /**
   * Moves the key's state from another plan's binding of this store (see
   * StoreBinding.carryFrom): gate g's use there, converted by `carry`, is
   * gate g's state here (carriedState: gone when the old one would have
   * been) unless the key already uses more of it; its block is copied; then `from` forgets the key. Answers
   * whether `from` held anything of the key.
   */
  carryFrom(from: StoreBinding, key: string, carry: Carry): CarryOutcome {
    const src = from as EmbeddedBinding;
    const core = this.#core;
    const now = this.#now();
    // The old states, read once: 4 numbers a gate (exp -Infinity: none), the block's last.
    const old = new Float64Array((src.#gates + 1) * 4).fill(-Infinity);
    let found = false;
    for (let g = 0; g <= src.#gates; g++) {
      if (g === src.#gates && !src.#blocks) break;
      if ((core.getState(writeKey(this.#views, key), src.#gate0 + g, now) & ALLOWED) === 0) continue;
      old.set(this.#views.result, g * 4);
      found = true;
    }
    if (!found) return 'none';
    const sources = carrySources(src.#cores, this.#cores);
    let kept = true;
    for (let g = 0; g < this.#gates && kept; g++) {
      const source = sources[g];
      if (source === undefined) continue;
      const o = source.from * 4;
      const end = old[o + 3]!;
      if (end === -Infinity) continue;
      let state: ArrayLike<number> = old.subarray(o, o + 4);
      if (!source.same) {
        const to = this.#cores[g]!;
        const units = carriedUse(usedOf(src.#cores[source.from]!, state, now), src.#cores[source.from]!, to, carry);
        const have = (core.getState(writeKey(this.#views, key), this.#gate0 + g, now) & ALLOWED) === 0 ? 0 : usedOf(to, this.#views.result, now);
        if (units === 0 || units <= have) continue;
        state = carriedState(to, units, end, now);
      }
      const r = core.putState(writeKey(this.#views, key), this.#gate0 + g, state[0]!, state[1]!, state[2]!, state[3]!, now);
      if ((r & FLAGS) !== 0) this.#shared.flags(r);
      kept = (r & ALLOWED) !== 0;
    }
    const block = src.#gates * 4;
    if (kept && this.#blocks && old[block + 3]! > now) {
      const r = core.putState(writeKey(this.#views, key), this.#gate0 + this.#gates, old[block]!, old[block + 1]!, old[block + 2]!, old[block + 3]!, now);
      if ((r & FLAGS) !== 0) this.#shared.flags(r);
      kept = (r & ALLOWED) !== 0;
      if (kept) this.#decided = this.#gates + 1;
    }
    if (!kept) {
      // A table full at its cap had no room for the new states: the key stays where it is, whole.
      core.reset(writeKey(this.#views, key), this.#gate0, this.#gates + (this.#blocks ? 1 : 0), now);
      return 'full';
    }
    src.reset(key);
    return 'moved';
  }

  /**
   * Replaces the gates' parameters in place, keeping every key's state: the
   * Redis store's fallback when the fleet's size changes (its share rescaled).
   * Same number of gates, same algorithms.
   * @internal
   */
  setGates(gates: readonly Policy[]): void {
    if (gates.length !== this.#gates) throw new ConfigError('gates', gates.length, `${this.#gates} gates`);
    gates.forEach((g, i) => {
      this.#core.setPolicy(this.#gate0 + i, g.core.code, g.core.p0, g.core.p1, g.core.p2);
      this.#limit[i] = configuredLimit(g);
      this.#capacity[i] = g.core.capacity;
      this.#cores[i] = g.core;
    });
  }

  /**
   * Overwrites the key's state in every gate with what another store (Redis)
   * reported: 4 numbers per gate, `a b c exp`, from `states[offset]` on. The
   * local mirror of the Redis store.
   * @internal
   */
  putStates(key: string, states: ArrayLike<number>, offset: number): void {
    const now = this.#now();
    const units = writeKey(this.#views, key);
    if (this.#blocks) this.#putBlock(units, states, offset + this.#gates * 4, now);
    for (let g = 0; g < this.#gates; g++) {
      const o = offset + g * 4;
      const r = this.#core.putState(units, this.#gate0 + g, states[o]!, states[o + 1]!, states[o + 2]!, states[o + 3]!, now);
      if ((r & FLAGS) !== 0) this.#shared.flags(r);
    }
  }

  /**
   * The block gate's state of the key from another store (Redis), `a b c exp`
   * at `states[offset]`: a block or a count arms the gate here.
   * @internal
   */
  putBlockState(key: string, states: ArrayLike<number>, offset: number): void {
    this.#putBlock(writeKey(this.#views, key), states, offset, this.#now());
  }

  #putBlock(units: number, states: ArrayLike<number>, o: number, now: number): void {
    const exp = states[o + 3]!;
    if (exp > now) this.#decided = this.#gates + 1;
    else if (this.#decided === this.#gates) return; // nothing here to remove
    const r = this.#core.putState(units, this.#gate0 + this.#gates, states[o]!, states[o + 1]!, states[o + 2]!, exp, now);
    if ((r & FLAGS) !== 0) this.#shared.flags(r);
  }
}

/** A denial by the key's block, as a Decision (out of line: off the hot path). */
function blocked(d: Decision): Decision {
  return { ...d, reason: 'blocked' };
}
