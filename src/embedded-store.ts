import { systemClock, taskClock, type Clock } from './clock.js';
import { ConfigError } from './errors.js';
import type { Decision, Reservation } from './decision.js';
import { hashKey, keyHi, keyLo } from './key-hash.js';
import { optionsObject } from './policies/policy.js';
import type { Policy } from './policies/index.js';
import type { Store, StoreBinding } from './store.js';
import { instantiateCore, type CoreExports } from './wasm.js';
import { CustomBinding } from './custom-binding.js';
import type { RateLimiter } from './rate-limiter.js';
import { checkMetrics, type MetricsSink } from './metrics.js';

/** Options of {@link EmbeddedStore}. */
export interface EmbeddedStoreOptions {
  /**
   * Keys to make room for (default 100 000). Memory is allocated up front,
   * 40 bytes per key; past that many live keys the soonest-to-expire are
   * evicted (and counted in {@link EmbeddedStore.stats}).
   */
  maxKeys?: number;
  /** Evictions (`cellgate.evictions`), every 1024 decisions and at `stats()`: see {@link MetricsSink}. */
  metrics?: MetricsSink;
}

/** Counters of an {@link EmbeddedStore}. */
export interface EmbeddedStoreStats {
  /** Keys whose state is live now (a full scan: for diagnostics, not the hot path). */
  readonly keys: number;
  /** Slots in the table. */
  readonly slots: number;
  /** Bytes of linear memory the table occupies. */
  readonly tableBytes: number;
  /** Live records evicted to make room, since creation. */
  readonly evictions: number;
  /** Bytes of the store's whole linear memory (allocated once: it never grows). */
  readonly memoryBytes: number;
}

/** Most keys an embedded store may be sized for (about 1.2 GiB). */
export const MAX_KEYS = 1 << 25;
/** Most policies (gates, over all limiters) one embedded store can hold. */
export const MAX_POLICIES = 1024;
const BATCH_ENTRIES = 1024;
const SLOTS_PER_BUCKET = 8;
/** Slots per key: with one cuckoo step, 8-way two-choice buckets take maxKeys keys at 80% load without evicting. */
const HEADROOM = 1.25;

/**
 * The in-process store: per-key state in a WebAssembly table, decided
 * synchronously. The default store of a {@link Limiter}; several limiters may
 * share one to share its memory budget.
 *
 * @example
 * ```ts
 * const store = new EmbeddedStore({ maxKeys: 1_000_000 });
 * const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }), store });
 * limiter.limitSync('10.0.0.1'); // { allowed: true, ... source: 'local' }
 * ```
 */
export class EmbeddedStore implements Store {
  readonly #core: CoreExports;
  readonly #tableBytes: number;
  readonly #maxKeys: number;
  /** Reports evictions since the last report to the metrics sink (undefined: no sink). */
  readonly #reportEvictions: (() => void) | undefined;
  #policies = 0;

  constructor(options: EmbeddedStoreOptions = {}) {
    const o = optionsObject(options, 'EmbeddedStore options');
    const maxKeys = o.maxKeys === undefined ? 100_000 : o.maxKeys;
    if (typeof maxKeys !== 'number' || !Number.isInteger(maxKeys) || maxKeys < 1 || maxKeys > MAX_KEYS) {
      throw new ConfigError('maxKeys', maxKeys, `an integer from 1 to ${MAX_KEYS}`);
    }
    const buckets = Math.max(16, Math.ceil((maxKeys * HEADROOM) / SLOTS_PER_BUCKET));
    // As many shards as keep at least 16 buckets each, at most 256.
    const shardBits = Math.min(8, Math.max(0, Math.floor(Math.log2(buckets / 16))));
    const perShard = Math.ceil(buckets / 2 ** shardBits);
    this.#maxKeys = maxKeys;
    const metrics = checkMetrics(o.metrics);
    if (metrics !== undefined) {
      let reported = 0;
      this.#reportEvictions = () => {
        const evictions = this.#core.evictions();
        if (evictions > reported) metrics.count('cellgate.evictions', evictions - reported);
        reported = evictions;
      };
    }
    this.#core = instantiateCore();
    this.#tableBytes = this.#core.init(shardBits, perShard, MAX_POLICIES, BATCH_ENTRIES);
  }

  /**
   * Binds a custom {@link RateLimiter}: its states live in a map beside the
   * table (JS values, not wasm records), bounded by the same `maxKeys`.
   */
  bindCustom(limiter: RateLimiter, clock: Clock = taskClock): CustomBinding {
    return new CustomBinding(limiter, clock, this.#maxKeys);
  }

  bind(gates: readonly Policy[], clock: Clock = taskClock): EmbeddedBinding {
    if (this.#policies + gates.length > MAX_POLICIES) {
      throw new ConfigError('policy', gates.length, `room in the store: it holds at most ${MAX_POLICIES} policies`);
    }
    const gate0 = this.#policies;
    gates.forEach((g, i) => this.#core.setPolicy(gate0 + i, g.core.code, g.core.p0, g.core.p1, g.core.p2));
    this.#policies += gates.length;
    return new EmbeddedBinding(this.#core, gate0, gates, clock, this.#reportEvictions);
  }

  /**
   * Counts of the table, for dashboards and tests.
   *
   * @example
   * ```ts
   * const { keys, evictions } = store.stats();
   * ```
   */
  stats(now: number = systemClock()): EmbeddedStoreStats {
    this.#reportEvictions?.();
    return {
      keys: this.#core.live(now),
      slots: this.#core.slots(),
      tableBytes: this.#tableBytes,
      evictions: this.#core.evictions(),
      memoryBytes: this.#core.memory.buffer.byteLength,
    };
  }
}

/**
 * Decides for one limiter's gates in an {@link EmbeddedStore}; what
 * `Limiter` calls on the hot path.
 */
export class EmbeddedBinding implements StoreBinding {
  readonly #core: CoreExports;
  readonly #gate0: number;
  readonly #gates: number;
  readonly #capacity: Float64Array;
  readonly #clock: Clock;
  // The core allocates everything in `init`, so memory never grows afterwards
  // and these views never detach.
  readonly #result: Float64Array;
  readonly #batchU32: Uint32Array;
  readonly #batchF64: Float64Array;
  readonly #batchU8: Uint8Array;
  readonly #batchBase: number;

  constructor(core: CoreExports, gate0: number, gates: readonly Policy[], clock: Clock, tick?: () => void) {
    this.#core = core;
    this.#tick = tick;
    this.#gate0 = gate0;
    this.#gates = gates.length;
    this.#capacity = Float64Array.from(gates, (g) => g.core.capacity);
    this.#clock = clock;
    const buffer = core.memory.buffer;
    this.#result = new Float64Array(buffer, core.resultPtr(), 4);
    this.#batchBase = core.batchPtr();
    this.#batchU32 = new Uint32Array(buffer, this.#batchBase, BATCH_ENTRIES * 8);
    this.#batchF64 = new Float64Array(buffer, this.#batchBase, BATCH_ENTRIES * 4);
    this.#batchU8 = new Uint8Array(buffer, this.#batchBase, BATCH_ENTRIES * 32);
  }

  /** Called every 1024 operations when the store reports metrics. */
  readonly #tick: (() => void) | undefined;
  #ops = 0;

  #now(): number {
    if (this.#tick !== undefined && (++this.#ops & 1023) === 0) this.#tick();
    const now = this.#clock();
    if (typeof now !== 'number' || !Number.isFinite(now)) {
      throw new ConfigError('clock', now, 'a function returning finite epoch milliseconds');
    }
    return now;
  }

  limit(key: string, cost: number, dryRun: boolean): Decision {
    const now = this.#now();
    hashKey(key);
    const r = this.#core.decide(keyLo, keyHi, this.#gate0, this.#gates, cost, now, dryRun ? 1 : 0);
    const out = this.#result;
    return {
      allowed: (r & 1) === 1,
      limit: this.#capacity[r >>> 1]!,
      remaining: out[0]!,
      retryAfterMs: out[1]!,
      resetAfterMs: out[2]!,
      source: 'local',
    };
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
    const u32 = this.#batchU32;
    const f64 = this.#batchF64;
    const u8 = this.#batchU8;
    for (let start = 0; start < keys.length; start += BATCH_ENTRIES) {
      const n = Math.min(BATCH_ENTRIES, keys.length - start);
      for (let i = 0; i < n; i++) {
        hashKey(keys[start + i]!);
        const w = i * 8;
        u32[w] = keyLo;
        u32[w + 1] = keyHi;
        u32[w + 2] = cost;
      }
      this.#core.decideBatch(n, this.#gate0, this.#gates, now, 0);
      for (let i = 0; i < n; i++) {
        const flags = u8[i * 32 + 15]!;
        decisions[start + i] = {
          allowed: (flags & 1) === 1,
          limit: this.#capacity[flags >>> 1]!,
          remaining: u32[i * 8 + 2]!,
          retryAfterMs: f64[i * 4 + 2]!,
          resetAfterMs: f64[i * 4 + 3]!,
          source: 'local',
        };
      }
    }
    return decisions;
  }

  reserve(key: string, cost: number, maxWaitMs: number): Reservation {
    const now = this.#now();
    hashKey(key);
    const r = this.#core.reserve(keyLo, keyHi, this.#gate0, this.#gates, cost, now, maxWaitMs);
    const waitMs = this.#result[1]!;
    return {
      allowed: (r & 1) === 1,
      waitMs,
      at: now + waitMs,
      limit: this.#capacity[r >>> 1]!,
      remaining: this.#result[0]!,
      source: 'local',
    };
  }

  refund(key: string, cost: number): void {
    const now = this.#now();
    hashKey(key);
    this.#core.refund(keyLo, keyHi, this.#gate0, this.#gates, cost, now);
  }

  reset(key: string): void {
    const now = this.#now();
    hashKey(key);
    this.#core.reset(keyLo, keyHi, this.#gate0, this.#gates, now);
  }

  /**
   * Overwrites the key's state in every gate with what another store (Redis)
   * reported: 4 numbers per gate, `a b c exp`, from `states[offset]` on. The
   * local mirror of the Redis store.
   * @internal
   */
  putStates(key: string, states: ArrayLike<number>, offset: number): void {
    const now = this.#now();
    hashKey(key);
    for (let g = 0; g < this.#gates; g++) {
      const o = offset + g * 4;
      this.#core.putState(keyLo, keyHi, this.#gate0 + g, states[o]!, states[o + 1]!, states[o + 2]!, states[o + 3]!, now);
    }
  }
}
