import { systemClock, taskClock, type Clock } from '../../core/clock.js';
import type { BlockGate } from '../../limiter/blocks.js';
import { ConfigError } from '../../errors.js';
import { hashSeed } from '../../core/key-hash.js';
import { optionNames, strictOptions } from '../../core/options.js';
import type { Policy } from '../../policies/index.js';
import type { PlanRecords, Store } from '../../limiter/store.js';
import { instantiateCore } from '../../core/wasm.js';
import { seedAtFirstUse } from './deferred-seed.js';
import { CustomBinding, type CustomBounds } from './custom-binding.js';
import { BATCH_ENTRIES, CoreViews, writeKey } from '../../core/core-views.js';
import { EmbeddedBinding, type Shared } from './embedded-binding.js';
import type { RateLimiter } from '../../policies/rate-limiter.js';
import { checkMetrics, type MetricsSink } from '../../core/metrics.js';
import { ALLOWED, BATCH_KEY_HI_INDEX, BATCH_KEY_LO_INDEX, CODE, FULL, GREW, SLOTS_PER_BUCKET } from '../../../build/abi.js';

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
/** The table's first size: 2^10 buckets of 8 slots (256 KiB). */
const INITIAL_BUCKET_BITS = 10;
/** Slots per key at the cap: the two-choice table with displacement holds ~97%; this keeps margin. */
const HEADROOM = 1.25;
/** Most one `'full'` event per this long, however many keys meet a full table. */
const FULL_EVENT_INTERVAL_MS = 1000;

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
    // A seed given is checked now; one to draw may be refused here (Workers at global scope): drawn at the first keyed call then.
    let seed: Int32Array | undefined;
    if (o.hashSeed !== undefined) seed = hashSeed(o.hashSeed);
    else {
      try {
        seed = hashSeed();
      } catch {
        seed = undefined;
      }
    }
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
    const instance = instantiateCore();
    instance.init(Math.min(INITIAL_BUCKET_BITS, maxBits), maxBits, whenFull === 'evict' ? 1 : 0, MAX_POLICIES, BATCH_ENTRIES);
    if (seed !== undefined) instance.seed(seed[0]!, seed[1]!, seed[2]!, seed[3]!);
    const views = new CoreViews(instance);
    // A refused draw leaves the key just written unhashed: it must be written (and hashed) again, not reused as KEY_SAME.
    const core = seed === undefined ? seedAtFirstUse(instance, () => hashSeed(), () => views.forgetKey()) : instance;
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

  /**
   * The plan records of a limiter with plans (src/limiter/plans.ts): one
   * more record per key in the table, under a policy id of their own.
   * @internal
   */
  planRecords(): PlanRecords {
    if (this.#policies + 1 > MAX_POLICIES) {
      throw new ConfigError('policy', 'plans', `room in the store: it holds at most ${MAX_POLICIES} policies`);
    }
    const id = this.#policies++;
    const { core, views } = this.#shared;
    // A plain record: a = the plan's serial (a fixed window's fields hold two doubles).
    core.setPolicy(id, CODE.fixed, 1, 1, 0);
    return {
      get: (key, now) => ((core.getState(writeKey(views, key), id, now) & ALLOWED) === 0 ? undefined : { serial: views.result[0]!, until: views.result[3]! }),
      put: (key, serial, until, now) => {
        const r = core.putState(writeKey(views, key), id, serial, 0, 0, until, now);
        this.#shared.flags(r);
        return (r & ALLOWED) !== 0;
      },
    };
  }

  bind(gates: readonly Policy[], clock: Clock = taskClock, block?: BlockGate): EmbeddedBinding {
    const ids = gates.length + (block === undefined ? 0 : 1);
    if (this.#policies + ids > MAX_POLICIES) {
      throw new ConfigError('policy', gates.length, `room in the store: it holds at most ${MAX_POLICIES} policies`);
    }
    const gate0 = this.#policies;
    const core = this.#shared.core;
    const all = block === undefined ? gates : [...gates, block];
    all.forEach((g, i) => core.setPolicy(gate0 + i, g.core.code, g.core.p0, g.core.p1, g.core.p2));
    this.#policies += ids;
    return new EmbeddedBinding(this.#shared, gate0, gates, clock, block);
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
