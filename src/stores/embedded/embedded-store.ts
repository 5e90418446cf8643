import { checkNow, systemClock, taskClock, type Clock } from '../../core/clock.js';
import { ArgumentError, ConfigError } from '../../errors.js';
import type { Decision, Reservation } from '../../limiter/decision.js';
import { hashSeed, MAX_KEY_LENGTH } from '../../core/key-hash.js';
import { optionNames, strictOptions } from '../../core/options.js';
import type { Policy } from '../../policies/index.js';
import { configuredLimit } from '../../policies/configured-limit.js';
import type { Store, StoreBinding } from '../../limiter/store.js';
import { instantiateCore, type CoreExports } from '../../core/wasm.js';
import { CustomBinding, type CustomBounds } from './custom-binding.js';
import type { RateLimiter } from '../../scheduler/rate-limiter.js';
import { checkMetrics, type MetricsSink } from '../../core/metrics.js';
import {
  ALLOWED, BATCH_BYTES, BATCH_COST_INDEX, BATCH_FLAGS, BATCH_KEY_HI_INDEX, BATCH_KEY_LO_INDEX, BATCH_REMAINING_INDEX, BATCH_RESET_AFTER_MS_INDEX,
  BATCH_RETRY_AFTER_MS_INDEX, FULL, GATE_MASK, GATE_SHIFT, GREW, KEY_AREA_BYTES, KEY_BYTES_SHIFT, KEY_UTF8, RESULT_BYTES, RESULT_REMAINING_INDEX,
  RESULT_RESET_AFTER_MS_INDEX, RESULT_RETRY_AFTER_MS_INDEX, SLOTS_PER_BUCKET,
} from '../../../build/abi.js';

/** Options of {@link EmbeddedStore}. */
export interface EmbeddedStoreOptions {
  /**
   * A cap on the table's size, in keys (default none: up to {@link MAX_KEYS}).
   * The table starts small (8192 slots, 256 KiB) and doubles in place as live
   * keys need room: a record is dropped only when its state is back to "as if
   * never seen", never while its key still owes, so memory follows the keys
   * that are live now (about 32 to 64 bytes each). With a cap the table stops
   * growing at the size that holds `maxKeys` keys (power-of-two sizes: it may
   * hold more), and what happens when it is full of live records is
   * `whenFull`.
   */
  maxKeys?: number;
  /**
   * What a new key gets when the table is at its cap and every record in
   * reach still owes (default `'deny'`):
   * - `'deny'`: the new key is denied, with `retryAfterMs` until a record in
   *   its reach expires. No key loses what it owes, so the limit holds for
   *   everyone; the cost falls on new keys while the table is full.
   * - `'evict'`: the record nearest to expiry is dropped and its key starts
   *   afresh: new keys always pass, at the price of a limit that a flood of
   *   keys can reset (a denied key's debt is forgotten). For caches of state
   *   held elsewhere.
   *
   * Either way it is counted (`stats().refusals` / `evictions`), reported to
   * `metrics`, and announced by a `'full'` event.
   */
  whenFull?: 'deny' | 'evict';
  /**
   * The 16-byte seed of the keyed hash (default: drawn from
   * `crypto.getRandomValues` per store). For tests only: whoever knows the
   * seed can compute colliding keys.
   */
  hashSeed?: Uint8Array;
  /** Evictions and refusals (`cellgate.evictions`, `cellgate.refusals`), every 1024 decisions and at `stats()`: see {@link MetricsSink}. */
  metrics?: MetricsSink;
}

/** Counters of an {@link EmbeddedStore}. */
export interface EmbeddedStoreStats {
  /** Records whose state is live now, custom limiters' included (a full scan: for diagnostics, not the hot path). */
  readonly keys: number;
  /** Slots in the table now. */
  readonly slots: number;
  /** Bytes of linear memory the table occupies now. */
  readonly tableBytes: number;
  /** Live records evicted to make room (`whenFull: 'evict'` at the cap), since creation. */
  readonly evictions: number;
  /** New keys denied because the table was full at its cap (`whenFull: 'deny'`), since creation. */
  readonly refusals: number;
  /** Times the table doubled, since creation. */
  readonly growths: number;
  /** Bytes of the store's whole linear memory (it grows with the table, never shrinks). */
  readonly memoryBytes: number;
}

/** Detail of an {@link EmbeddedStore}'s `'full'` event. */
export interface TableFullDetail {
  /** Totals since creation, as in {@link EmbeddedStoreStats}. */
  readonly refusals: number;
  readonly evictions: number;
  /** The table's size in keys at its cap. */
  readonly slots: number;
}

/** Largest `maxKeys`, and the size an uncapped table stops growing at (a table of 2 GiB: 2^26 slots). */
export const MAX_KEYS = 1 << 25;

/**
 * Validates a cap on a table's keys (`parameter`: EmbeddedStore's
 * `maxKeys`, RedisStore's `maxMirrorKeys`): an integer from 1 to
 * {@link MAX_KEYS}, or undefined for no cap but MAX_KEYS.
 * @internal
 *
 * @example
 * ```ts
 * const mirror = new EmbeddedStore({ maxKeys: checkMaxKeys(o.maxMirrorKeys, 'maxMirrorKeys') });
 * ```
 */
export function checkMaxKeys(value: unknown, parameter: string): number {
  if (value === undefined) return MAX_KEYS;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_KEYS) {
    throw new ConfigError(parameter, value, `an integer from 1 to ${MAX_KEYS}`);
  }
  return value;
}
/** Most policies (gates, over all limiters) one embedded store can hold. */
export const MAX_POLICIES = 1024;
const BATCH_ENTRIES = 1024;
/** The table's first size: 2^10 buckets of 8 slots (256 KiB). */
const INITIAL_BUCKET_BITS = 10;
/** Slots per key at the cap: the two-choice table with displacement holds ~97%; this keeps margin. */
const HEADROOM = 1.25;
/** The bits of a core return value that call for the store's attention: memory grew; the table was full at its cap. */
const FLAGS = GREW | FULL;
/** A batch entry's size in the u32 and f64 views of the batch (abi/abi.mjs has the layout). */
const ENTRY_U32 = BATCH_BYTES / 4;
const ENTRY_F64 = BATCH_BYTES / 8;
/** Most one `'full'` event per this long, however many keys meet a full table. */
const FULL_EVENT_INTERVAL_MS = 1000;

/**
 * The views of a core's memory that bindings read results through. A table
 * that grows detaches them (a grown wasm memory is a new ArrayBuffer), so
 * every binding of the store reads through this one object, renewed when a
 * call reports that memory grew.
 * @internal
 */
export class CoreViews {
  result!: Float64Array;
  /** The key area, as code units and as bytes: a key is written before each keyed call. */
  key!: Uint16Array;
  keyBytes!: Uint8Array;
  batchU32!: Uint32Array;
  batchF64!: Float64Array;
  batchU8!: Uint8Array;
  readonly #core: CoreExports;

  constructor(core: CoreExports) {
    this.#core = core;
    this.renew();
  }

  renew(): void {
    const core = this.#core;
    const buffer = core.memory.buffer;
    const batch = core.batchPtr();
    this.result = new Float64Array(buffer, core.resultPtr(), RESULT_BYTES / 8);
    this.key = new Uint16Array(buffer, core.keyPtr(), MAX_KEY_LENGTH);
    this.keyBytes = new Uint8Array(buffer, core.keyPtr(), KEY_AREA_BYTES);
    this.batchU32 = new Uint32Array(buffer, batch, BATCH_ENTRIES * ENTRY_U32);
    this.batchF64 = new Float64Array(buffer, batch, BATCH_ENTRIES * ENTRY_F64);
    this.batchU8 = new Uint8Array(buffer, batch, BATCH_ENTRIES * BATCH_BYTES);
  }
}

/** Keys longer than this are written by `TextEncoder` (native) when well-formed; shorter ones by a loop, which is faster for them. */
const NATIVE_ENCODE_FROM = 32;
const encoder = new TextEncoder();
/** `isWellFormed` (ES2024): where a runtime lacks it, every key takes the code unit loop. */
const wellFormed = (String.prototype as { isWellFormed?: () => boolean }).isWellFormed;

/**
 * Writes `key` into the key area for the next keyed core call (which hashes
 * it: SipHash-1-3 under the store's seed, in the core) and returns its
 * descriptor, `bytes << KEY_BYTES_SHIFT | KEY_UTF8`: its UTF-16 code units, or, for a long
 * well-formed key, its UTF-8 bytes (the core hashes the two encodings under
 * different keys; see assembly/key-hash.ts). Which one depends only on the
 * key, so a key always gets the same hash.
 * @internal
 */
export function writeKey(views: CoreViews, key: string): number {
  const n = key.length;
  // Callers check keys (checkKey); this keeps any path that does not inside the area.
  if (n > MAX_KEY_LENGTH) throw new ArgumentError('key', key, `at most ${MAX_KEY_LENGTH} characters`);
  if (n > NATIVE_ENCODE_FROM && wellFormed !== undefined && wellFormed.call(key)) {
    return (encoder.encodeInto(key, views.keyBytes).written << KEY_BYTES_SHIFT) | KEY_UTF8;
  }
  const area = views.key;
  for (let i = 0; i < n; i++) area[i] = key.charCodeAt(i);
  return (2 * n) << KEY_BYTES_SHIFT; // 2 bytes a code unit
}

/**
 * What every binding of one store shares: the core, its views, and what to
 * do with a core call's flags.
 * @internal
 */
interface Shared {
  readonly core: CoreExports;
  readonly views: CoreViews;
  /** Renews the views and announces a full table, as the flags of a core call say. */
  flags(r: number): void;
  /** Called every 1024 operations when the store reports metrics. */
  readonly tick: (() => void) | undefined;
}

const OPTIONS = optionNames<keyof EmbeddedStoreOptions>({ maxKeys: true, whenFull: true, hashSeed: true, metrics: true });

/**
 * The in-process store: per-key state in a WebAssembly table, decided
 * synchronously. The default store of a {@link Limiter}; several limiters may
 * share one to share its memory.
 *
 * It is an `EventTarget`: `'full'` ({@link TableFullDetail}) when a new key
 * met a table full at its cap (at most once a second).
 *
 * @example
 * ```ts
 * const store = new EmbeddedStore();
 * const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }), store });
 * limiter.limitSync('10.0.0.1'); // { allowed: true, ... source: 'local' }
 * store.addEventListener('full', (e) => console.warn('rate-limit table full', (e as CustomEvent).detail));
 * ```
 */
export class EmbeddedStore extends EventTarget implements Store {
  readonly #shared: Shared;
  readonly #custom: CustomBounds;
  /** Reports evictions and refusals since the last report to the metrics sink (undefined: no sink). */
  readonly #report: (() => void) | undefined;
  #policies = 0;
  #lastFullEvent = -Infinity;
  /** Evictions and refusals of custom limiters' maps (the core counts its own). */
  #customEvictions = 0;
  #customRefusals = 0;
  readonly #customBindings: CustomBinding[] = [];

  constructor(options: EmbeddedStoreOptions = {}) {
    super();
    const o = strictOptions(options, 'new EmbeddedStore()', OPTIONS);
    const maxKeys = checkMaxKeys(o.maxKeys, 'maxKeys');
    const whenFull = o.whenFull === undefined ? 'deny' : o.whenFull;
    if (whenFull !== 'deny' && whenFull !== 'evict') throw new ConfigError('whenFull', whenFull, "'deny' or 'evict'");
    const seed = hashSeed(o.hashSeed);
    const metrics = checkMetrics(o.metrics);
    const maxBits = Math.max(0, Math.ceil(Math.log2((maxKeys * HEADROOM) / SLOTS_PER_BUCKET)));
    this.#custom = {
      maxKeys,
      evict: whenFull === 'evict',
      onFull: (evicted) => {
        if (evicted) this.#customEvictions++;
        else this.#customRefusals++;
        this.#full();
      },
    };
    const core = instantiateCore();
    core.init(Math.min(INITIAL_BUCKET_BITS, maxBits), maxBits, whenFull === 'evict' ? 1 : 0, MAX_POLICIES, BATCH_ENTRIES);
    core.seed(seed[0]!, seed[1]!, seed[2]!, seed[3]!);
    const views = new CoreViews(core);
    if (metrics !== undefined) {
      let evictions = 0;
      let refusals = 0;
      this.#report = () => {
        const e = core.evictions() + this.#customEvictions;
        const r = core.refusals() + this.#customRefusals;
        if (e > evictions) metrics.count('cellgate.evictions', e - evictions);
        if (r > refusals) metrics.count('cellgate.refusals', r - refusals);
        evictions = e;
        refusals = r;
      };
    }
    this.#shared = {
      core,
      views,
      tick: this.#report,
      flags: (r) => {
        if ((r & GREW) !== 0) views.renew();
        if ((r & FULL) !== 0) this.#full();
      },
    };
  }

  #full(): void {
    const now = Date.now();
    if (now - this.#lastFullEvent < FULL_EVENT_INTERVAL_MS) return;
    this.#lastFullEvent = now;
    // After the decision in progress: a listener that decides on this store
    // would overwrite the core's result and key areas under it.
    queueMicrotask(() => {
      this.#report?.();
      const core = this.#shared.core;
      const detail: TableFullDetail = { refusals: core.refusals() + this.#customRefusals, evictions: core.evictions() + this.#customEvictions, slots: core.slots() };
      this.dispatchEvent(new CustomEvent<TableFullDetail>('full', { detail }));
    });
  }

  /**
   * Binds a custom {@link RateLimiter}: its states live in a map beside the
   * table (JS values, not wasm records), under the same `maxKeys` and
   * `whenFull` rules.
   */
  bindCustom(limiter: RateLimiter, clock: Clock = taskClock): CustomBinding {
    const binding = new CustomBinding(limiter, clock, this.#custom);
    this.#customBindings.push(binding);
    return binding;
  }

  bind(gates: readonly Policy[], clock: Clock = taskClock): EmbeddedBinding {
    if (this.#policies + gates.length > MAX_POLICIES) {
      throw new ConfigError('policy', gates.length, `room in the store: it holds at most ${MAX_POLICIES} policies`);
    }
    const gate0 = this.#policies;
    const core = this.#shared.core;
    gates.forEach((g, i) => core.setPolicy(gate0 + i, g.core.code, g.core.p0, g.core.p1, g.core.p2));
    this.#policies += gates.length;
    return new EmbeddedBinding(this.#shared, gate0, gates, clock);
  }

  /**
   * Counts of the table, for dashboards and tests.
   *
   * @example
   * ```ts
   * const { keys, tableBytes, refusals } = store.stats();
   * ```
   */
  stats(now: number = systemClock()): EmbeddedStoreStats {
    this.#report?.();
    const core = this.#shared.core;
    return {
      keys: core.live(now) + this.#customBindings.reduce((n, b) => n + b.liveCount(now), 0),
      slots: core.slots(),
      tableBytes: core.tableBytes(),
      evictions: core.evictions() + this.#customEvictions,
      refusals: core.refusals() + this.#customRefusals,
      growths: core.growths(),
      memoryBytes: core.memory.buffer.byteLength,
    };
  }

  /**
   * -1 when the table's invariants hold at `now` (every live record in one of
   * its key's two buckets, no key recorded twice), else the first bad slot.
   * @internal
   */
  checkTable(now: number): number {
    return this.#shared.core.check(now);
  }

  /**
   * The first-choice bucket of a key's record in the table (gate 0 of the
   * first policy): for tests that the layout depends on the seed.
   * @internal
   */
  bucketOf(key: string): number {
    return this.#shared.core.bucketOf(writeKey(this.#shared.views, key), 0);
  }

  /**
   * The key's 64-bit hash under this store's seed (for tests of the hash).
   * @internal
   */
  hashOf(key: string): bigint {
    const { core, views } = this.#shared;
    core.hashToBatch(writeKey(views, key), 0);
    return (BigInt(views.batchU32[BATCH_KEY_HI_INDEX]!) << 32n) | BigInt(views.batchU32[BATCH_KEY_LO_INDEX]!);
  }
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
  readonly #gates: number;
  /** Per gate, the limit it was configured with (Decision.limit) and what it passes at once (Decision.capacity). */
  readonly #limit: Float64Array;
  readonly #capacity: Float64Array;
  readonly #clock: Clock;

  constructor(shared: Shared, gate0: number, gates: readonly Policy[], clock: Clock) {
    this.#shared = shared;
    this.#core = shared.core;
    this.#views = shared.views;
    this.#tick = shared.tick;
    this.#gate0 = gate0;
    this.#gates = gates.length;
    this.#limit = Float64Array.from(gates, configuredLimit);
    this.#capacity = Float64Array.from(gates, (g) => g.core.capacity);
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
    const r = this.#core.decide(writeKey(this.#views, key), this.#gate0, this.#gates, cost, now, dryRun ? 1 : 0);
    if ((r & FLAGS) !== 0) this.#shared.flags(r);
    const out = this.#views.result;
    const gate = (r >>> GATE_SHIFT) & GATE_MASK;
    return {
      allowed: (r & ALLOWED) !== 0,
      limit: this.#limit[gate]!,
      capacity: this.#capacity[gate]!,
      gate,
      remaining: out[RESULT_REMAINING_INDEX]!,
      retryAfterMs: out[RESULT_RETRY_AFTER_MS_INDEX]!,
      resetAfterMs: out[RESULT_RESET_AFTER_MS_INDEX]!,
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
    const views = this.#views;
    for (let start = 0; start < keys.length; start += BATCH_ENTRIES) {
      const n = Math.min(BATCH_ENTRIES, keys.length - start);
      const core = this.#core;
      for (let i = 0; i < n; i++) {
        core.hashToBatch(writeKey(views, keys[start + i]!), i);
        views.batchU32[i * ENTRY_U32 + BATCH_COST_INDEX] = cost;
      }
      const r = this.#core.decideBatch(n, this.#gate0, this.#gates, now, 0);
      if ((r & FLAGS) !== 0) this.#shared.flags(r);
      const u32 = views.batchU32;
      const f64 = views.batchF64;
      const u8 = views.batchU8;
      for (let i = 0; i < n; i++) {
        const flags = u8[i * BATCH_BYTES + BATCH_FLAGS]!;
        const gate = flags >>> GATE_SHIFT;
        decisions[start + i] = {
          allowed: (flags & ALLOWED) !== 0,
          limit: this.#limit[gate]!,
          capacity: this.#capacity[gate]!,
          gate,
          remaining: u32[i * ENTRY_U32 + BATCH_REMAINING_INDEX]!,
          retryAfterMs: f64[i * ENTRY_F64 + BATCH_RETRY_AFTER_MS_INDEX]!,
          resetAfterMs: f64[i * ENTRY_F64 + BATCH_RESET_AFTER_MS_INDEX]!,
          source: 'local',
        };
      }
    }
    return decisions;
  }

  reserve(key: string, cost: number, maxWaitMs: number): Reservation {
    const now = this.#now();
    const r = this.#core.reserve(writeKey(this.#views, key), this.#gate0, this.#gates, cost, now, maxWaitMs);
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

  refund(key: string, cost: number): void {
    const now = this.#now();
    this.#core.refund(writeKey(this.#views, key), this.#gate0, this.#gates, cost, now);
  }

  reset(key: string): void {
    const now = this.#now();
    this.#core.reset(writeKey(this.#views, key), this.#gate0, this.#gates, now);
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
    for (let g = 0; g < this.#gates; g++) {
      const o = offset + g * 4;
      const r = this.#core.putState(units, this.#gate0 + g, states[o]!, states[o + 1]!, states[o + 2]!, states[o + 3]!, now);
      if ((r & FLAGS) !== 0) this.#shared.flags(r);
    }
  }
}
