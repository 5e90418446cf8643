import type { Clock } from '../../core/clock.js';
import { blockGate, type BlockGate } from '../../limiter/blocks.js';
import { checkDuration, type Duration } from '../../core/duration.js';
import { checkMaxKeys, EmbeddedStore } from '../embedded/embedded-store.js';
import { ConfigError, RedisUnavailableError } from '../../errors.js';
import { shardHash } from './shard-hash.js';
import { optionNames, strictOptions } from '../../core/options.js';
import type { Policy } from '../../policies/index.js';
import { isConcurrency } from '../../policies/concurrency.js';
import type { PlanTag, SharedPace, Store, StoreBinding } from '../../limiter/store.js';
import { RedisBinding } from './redis-binding.js';
import { toConnection, type RedisConnection } from './connection.js';
import type { RedisClient } from './ioredis-connection.js';
import type { NodeRedisClient, NodeRedisCluster } from './node-redis-connection.js';
import type { Lifecycle } from './lifecycle.js';
import { DECIDE_SCRIPT, FLEET_SCRIPT } from './scripts.js';
import { RedisSharedPace } from './shared-pace.js';
import { CustomRedisBinding } from './custom-redis-binding.js';
import type { RateLimiter } from '../../policies/rate-limiter.js';
import { CircuitBreaker, withTimeout, type BreakerCloseDetail, type BreakerOpenDetail, type BreakerState } from './circuit-breaker.js';
import { checkMetrics, type MetricsSink } from '../../core/metrics.js';
import { fallbackGates, FLEET, type FallbackOption, type FallbackSetting } from './fallback.js';
import { LeasedBinding, leaseSettings, type LeaseOptions, type LeaseSettings } from './leased-binding.js';
import type { SourceCounts } from './redis-binding.js';

/**
 * @internal An option for the tests that hold the script to the reference
 * model on one fake clock: `time: 'client'` with concurrency gates, which a
 * fleet may not use (its clients' clocks differ). Not exported by the package.
 */
export const ONE_CLIENT_CLOCK = Symbol('cellgate.oneClientClock');

/** How often a store heartbeats into the fleet's membership set. */
const HEARTBEAT_MS = 1000;
/** How long a store counts as live after its last heartbeat: the fleet's size is that of the last few seconds. @internal (also read by `cellgate doctor`) */
export const MEMBER_TTL_MS = 5000;

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /**
   * The Redis client, as it is: an ioredis or iovalkey `Redis` or `Cluster`,
   * a node-redis (`redis` v5 or later) `createClient()` or `createCluster()`,
   * or any client adapted to {@link RedisConnection}. The store registers
   * its scripts and listens to the client's `'error'` and `'ready'` events;
   * connecting and closing the client stay the caller's.
   */
  client: RedisClient | NodeRedisClient | NodeRedisCluster | RedisConnection;
  /** Prefix of every key the store writes (default `'cellgate:'`). */
  prefix?: string;
  /**
   * Virtual shards (default 64, a power of two up to 16384). Keys carry their
   * shard as a hash tag, and a Cluster spreads the shards over its masters:
   * there one script call decides one shard's batch (its keys share a
   * slot), on a single server one call decides every shard's.
   */
  shards?: number;
  /**
   * Whose clock decides: `'redis'` (default), Redis `TIME`, one clock for the
   * whole fleet with no client skew; or `'client'`, the limiter's clock (for
   * deterministic tests and replays).
   */
  time?: 'redis' | 'client';
  /** Batching: calls of one tick go out together; `maxDelayMs` (default 0, at most 1 s) waits longer, `maxSize` (default 1000) flushes early. */
  batch?: { maxDelayMs?: Duration; maxSize?: number };
  /**
   * A cap on the keys of the local mirror, the in-process table beside Redis
   * (default none: it grows with the keys live in Redis, up to `MAX_KEYS`):
   * `EmbeddedStore`'s `maxKeys`, for the mirror; it caps nothing in Redis.
   * The mirror also holds the fallback's state during outages, so at the cap
   * new keys are not mirrored and the fallback denies them (`whenFull: 'deny'`).
   */
  maxMirrorKeys?: number;
  /** Answer denials from the local mirror without a round trip (default true). */
  negativeCache?: boolean;
  /**
   * How long a call may wait on Redis (default 100 ms, from 1 ms to 60 s)
   * before it falls back, counting the time it was held while other batches
   * were in flight; three such timeouts in a row open the breaker (a
   * connection error opens it at once).
   */
  timeoutMs?: Duration;
  /**
   * How long calls wait for Redis before it has answered once (default
   * 2000 ms): connecting and loading scripts, on a machine busy with pods
   * starting together, can take longer than `timeoutMs`, and falling back at
   * birth would let every pod admit its own share at once. Also the bound of
   * {@link RedisStore.ready}. From `timeoutMs` to 600 s.
   */
  connectTimeoutMs?: Duration;
  /** How often an open breaker probes Redis (default 500 ms, from 1 ms to 600 s); also at once when the client reconnects. */
  probeIntervalMs?: Duration;
  /**
   * What decides while Redis is unreachable: see {@link FallbackOption}. By
   * default each store takes 1/N of the policy, N the live stores that
   * heartbeat into Redis under this prefix (`stats().fleetSize`), so the
   * fleet stays within its limit during an outage however many pods run;
   * `{ nodes }` fixes N instead.
   */
  fallback?: FallbackOption;
  /** Charge what the fallback admitted back to Redis when it returns (default true). */
  reconcile?: boolean;
  /**
   * `'strict'` (default): Redis decides every call (batched). `'leased'`:
   * each process leases capacity from Redis (debited atomically, so the fleet
   * never admits more than the policy) and spends it in process, `limitSync`
   * included; see {@link LeaseOptions}.
   */
  mode?: 'strict' | 'leased';
  /** Leased mode's lease sizing and lifetime. */
  lease?: LeaseOptions;
  /**
   * Batch sizes and durations (`cellgate.redis.batch.*`) and breaker
   * transitions (`cellgate.breaker.transitions`): see {@link MetricsSink}.
   * Decisions are counted by the `Limiter`'s own `metrics`.
   */
  metrics?: MetricsSink;
}

const REDIS_STORE_OPTIONS = optionNames<keyof RedisStoreOptions>({
  client: true,
  prefix: true,
  shards: true,
  time: true,
  batch: true,
  maxMirrorKeys: true,
  negativeCache: true,
  timeoutMs: true,
  connectTimeoutMs: true,
  probeIntervalMs: true,
  fallback: true,
  reconcile: true,
  mode: true,
  lease: true,
  metrics: true,
});
const BATCH_OPTIONS = optionNames<keyof NonNullable<RedisStoreOptions['batch']>>({ maxDelayMs: true, maxSize: true });

/** Counters and state of a {@link RedisStore}. */
export interface RedisStoreStats {
  /** `'open'` while Redis is considered down for at least one shard. */
  readonly state: BreakerState;
  /** Shards decided by the fallback now. */
  readonly openShards: number;
  /** Times a shard has opened. */
  readonly opens: number;
  /** Live stores under this prefix, as Redis last reported them (undefined: never heard); the default fallback takes 1/this. */
  readonly fleetSize: number | undefined;
  /** Keys whose admissions during an outage are still to be charged to Redis (reconciliation). */
  readonly owedKeys: number;
  /** Decisions by source, and cost units reconciled after outages. */
  readonly decisions: Readonly<SourceCounts>;
}

/**
 * Keeps limits in Redis, so that every process of a fleet shares them. Each
 * decision is made atomically by a Lua script, with Redis `TIME` as the only
 * clock; calls made in the same tick are batched (one script call for a
 * single server, one per virtual shard on a Cluster; while 3 batches are in
 * flight, calls gather for the next), hits on one key merged into one entry
 * decided in order. Script results are mirrored into a local wasm table: a key Redis said
 * is denied until T is denied locally until T, without a round trip
 * (`source: 'local'`).
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { Limiter, gcra } from 'cellgate';
 * import { RedisStore } from 'cellgate/redis';
 *
 * const limiter = new Limiter({
 *   policy: gcra({ limit: 5, period: '1s' }),
 *   store: new RedisStore({ client: new Redis(), prefix: 'rl:' }),
 * });
 * const d = await limiter.limit('user:42'); // d.source === 'redis'
 * ```
 */
export class RedisStore implements Store {
  readonly #client: RedisConnection;
  /** What removes the store's listeners from the client, at close. */
  readonly #unsubscribe: (void | (() => void))[];
  readonly #prefix: string;
  readonly #shardShift: number;
  readonly #shards: number;
  readonly #clientTime: boolean;
  /** `time: 'client'` with a single client, whose clock is the only one (see {@link ONE_CLIENT_CLOCK}). */
  readonly #oneClock: boolean;
  readonly #maxDelayMs: number;
  readonly #maxSize: number;
  readonly #negativeCache: boolean;
  readonly #mirror: EmbeddedStore;
  readonly #timeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #bindings: RedisBinding[] = [];
  readonly #lifecycle: Lifecycle = { closed: false };
  readonly #probe: (shard: number) => Promise<void>;
  readonly #fallback: FallbackSetting;
  /** The fleet's size as Redis last reported it, shared with the bindings. */
  readonly #fleet: { nodes: number | undefined } = { nodes: undefined };
  /** This store's id in the fleet's membership set. */
  readonly #id = Array.from(crypto.getRandomValues(new Uint32Array(2)), (x) => x.toString(16).padStart(8, '0')).join('');
  #heartbeat: ReturnType<typeof setTimeout> | undefined;
  /** The fleet sizes Redis reported lately, with when: [epoch ms, size]. */
  readonly #sizes: [number, number][] = [];
  /** Whether the last heartbeat failed (see #beat). */
  #beatFailed = false;
  /** How many of this store's heartbeats Redis has answered. */
  #beatsAnswered = 0;
  readonly #reconcile: boolean;
  readonly #breakerPerShard: boolean;
  readonly #metrics: MetricsSink | undefined;
  /** Leased mode's settings (undefined: strict mode). */
  readonly #lease: LeaseSettings | undefined;
  readonly #counts: SourceCounts = { redis: 0, local: 0, fallback: 0, lease: 0, leases: 0, reconciled: 0 };
  #pace: RedisSharedPace | undefined;
  /**
   * Opens on a timeout, a connection error or a script error; closes when a
   * probe gets an answer. Listen to its `'open'` and `'close'` events. On a
   * Cluster client it keeps one state per virtual shard (a lost master's
   * shards fall back, the others stay strict); on a single server, one state.
   */
  readonly breaker: CircuitBreaker;

  constructor(options: RedisStoreOptions) {
    const o = strictOptions(options, 'new RedisStore()', REDIS_STORE_OPTIONS);
    const client = toConnection(o.client);
    const prefix = o.prefix === undefined ? 'cellgate:' : o.prefix;
    if (typeof prefix !== 'string' || prefix.length > 256 || /[{}]/.test(prefix)) {
      throw new ConfigError('prefix', prefix, 'a string of at most 256 characters without { or }');
    }
    const shards = o.shards === undefined ? 64 : o.shards;
    if (typeof shards !== 'number' || !Number.isInteger(shards) || shards < 1 || shards > 16384 || (shards & (shards - 1)) !== 0) {
      throw new ConfigError('shards', shards, 'a power of two from 1 to 16384');
    }
    const time = o.time === undefined ? 'redis' : o.time;
    if (time !== 'redis' && time !== 'client') throw new ConfigError('time', time, "'redis' or 'client'");
    const batch = o.batch === undefined ? {} : strictOptions(o.batch, 'new RedisStore({ batch })', BATCH_OPTIONS, 'batch');
    const maxDelayMs = batch.maxDelayMs === undefined ? 0 : checkDuration(batch.maxDelayMs, 'batch.maxDelayMs', { min: 0, max: 1000 });
    const maxSize = batch.maxSize === undefined ? 1000 : batch.maxSize;
    if (typeof maxSize !== 'number' || !Number.isInteger(maxSize) || maxSize < 1 || maxSize > 100_000) {
      throw new ConfigError('batch.maxSize', maxSize, 'an integer from 1 to 100000');
    }
    const negativeCache = o.negativeCache === undefined ? true : o.negativeCache;
    if (typeof negativeCache !== 'boolean') throw new ConfigError('negativeCache', negativeCache, 'a boolean');
    const maxMirrorKeys = checkMaxKeys(o.maxMirrorKeys, 'maxMirrorKeys');
    // The mirror also holds the fallback's state during outages, so it never
    // evicts: at its cap it stops mirroring new keys, and the fallback denies them.
    this.#mirror = new EmbeddedStore({ maxKeys: maxMirrorKeys });
    const timeoutMs = o.timeoutMs === undefined ? 100 : checkDuration(o.timeoutMs, 'timeoutMs', { min: 1, max: 60_000 });
    const connectTimeoutMs =
      o.connectTimeoutMs === undefined ? Math.max(2000, timeoutMs) : checkDuration(o.connectTimeoutMs, 'connectTimeoutMs', { min: timeoutMs, minName: 'timeoutMs', max: 600_000 });
    const probeIntervalMs = o.probeIntervalMs === undefined ? 500 : checkDuration(o.probeIntervalMs, 'probeIntervalMs', { min: 1, max: 600_000 });
    const fallback = (o.fallback === undefined ? FLEET : o.fallback) as FallbackSetting;
    if (o.fallback !== undefined) fallbackGates(fallback, []); // validates the option's shape now, not at the first outage
    const reconcile = o.reconcile === undefined ? true : o.reconcile;
    if (typeof reconcile !== 'boolean') throw new ConfigError('reconcile', reconcile, 'a boolean');
    const mode = o.mode === undefined ? 'strict' : o.mode;
    if (mode !== 'strict' && mode !== 'leased') throw new ConfigError('mode', mode, "'strict' or 'leased'");
    const lease = leaseSettings(o.lease);
    this.#lease = mode === 'leased' ? lease : undefined;
    this.#timeoutMs = timeoutMs;
    this.#fallback = fallback;
    this.#reconcile = reconcile;
    // A probe is an empty decide call: routed like the shard's own calls, so
    // on a Cluster it asks the master that serves the shard.
    const call = async (shard: number) => {
      await client.evalScript(DECIDE_SCRIPT, this.shardKey(shard), ['', '0', '', '', '']);
    };
    const probe = async (shard: number) => {
      if (client.state !== 'ready') throw new Error(`Redis connection is ${client.state}`);
      await call(shard);
    };
    // A Cluster's masters fail one by one, so each virtual shard has its own
    // breaker state; a single server's shards share its fate, and one state.
    this.#breakerPerShard = client.cluster;
    this.breaker = new CircuitBreaker(this.#breakerPerShard ? shards : 1, probe, probeIntervalMs, timeoutMs, connectTimeoutMs);
    // ready() waits for a connection being made (ioredis queues the call), where a probe would not.
    this.#probe = call;
    this.#connectTimeoutMs = connectTimeoutMs;
    const metrics = checkMetrics(o.metrics);
    this.#metrics = metrics;
    if (metrics !== undefined) {
      const toOpen = Object.freeze({ to: 'open' });
      const toClosed = Object.freeze({ to: 'closed' });
      this.breaker.addEventListener('open', (e) => metrics.count('cellgate.breaker.transitions', (e as CustomEvent<BreakerOpenDetail>).detail.shards.length, toOpen));
      this.breaker.addEventListener('close', (e) => metrics.count('cellgate.breaker.transitions', (e as CustomEvent<BreakerCloseDetail>).detail.shards.length, toClosed));
    }

    // The client's errors are the store's to handle: they open the breaker (a
    // connection refused, reset, a wrong URL), and no "Unhandled error event"
    // is printed for each reconnect attempt.
    const offError = client.on('error', (error: unknown) => {
      if (!this.#lifecycle.closed) this.breaker.fail(-1, error);
    });
    // Reconnected: Redis is probed at once, not at the next probeIntervalMs.
    const offReady = client.on('ready', () => {
      if (!this.#lifecycle.closed) this.breaker.probeNow();
    });
    this.#unsubscribe = [offError, offReady];
    this.#client = client;
    this.#prefix = prefix;
    this.#beat();
    this.#shards = shards;
    this.#shardShift = 32 - Math.log2(shards);
    this.#clientTime = time === 'client';
    this.#oneClock = (o as { [ONE_CLIENT_CLOCK]?: unknown })[ONE_CLIENT_CLOCK] === true;
    this.#maxDelayMs = maxDelayMs;
    this.#maxSize = maxSize;
    this.#negativeCache = negativeCache;
  }

  /**
   * Tells Redis this store is alive and learns how many are (fleet.lua), now
   * and every {@link HEARTBEAT_MS}; a new size rescales every binding's
   * default fallback. A failed beat changes nothing: the last size stands.
   */
  #beat(): void {
    if (this.#lifecycle.closed) return;
    // A lazy client not yet connected (`'idle'`) is left to connect when its owner says.
    if (this.#client.state !== 'idle') void withTimeout(this.#client.evalScript(FLEET_SCRIPT, `${this.#prefix}{fleet}`, [this.#id, String(MEMBER_TTL_MS), '']), this.#connectTimeoutMs).then(
      (size) => {
        // The largest size of the last MEMBER_TTL_MS: a Redis restarted empty
        // knows only the stores that have beaten since, and a share sized to
        // that partial count would let each of them take too much.
        const now = Date.now();
        this.#sizes.push([now, Math.max(1, Number(size))]);
        while (this.#sizes.length > 1 && this.#sizes[0]![0] < now - MEMBER_TTL_MS) this.#sizes.shift();
        // Stores starting with this one may not have beaten yet (a fleet
        // deployed at once, its first beats arriving in any order): sizes
        // count from this store's second answered beat, sent a heartbeat
        // interval after the first, by when each of them has.
        if (this.#beatFailed) {
          // The end of an outage this store may have made no call in.
          this.#beatFailed = false;
          for (const b of this.#bindings) b.outageSeen();
        }
        if (++this.#beatsAnswered < 2) return;
        const nodes = Math.max(...this.#sizes.map(([, n]) => n));
        if (nodes !== this.#fleet.nodes && !this.#lifecycle.closed) {
          this.#fleet.nodes = nodes;
          for (const b of this.#bindings) b.fleetChanged(nodes);
        }
      },
      () => {
        // Redis unreachable or frozen for a beat's timeout: another store's
        // fallback may be admitting holders Redis does not count.
        if (this.#lifecycle.closed) return;
        this.#beatFailed = true;
        for (const b of this.#bindings) b.outageSeen();
      },
    );
    this.#heartbeat = setTimeout(() => this.#beat(), HEARTBEAT_MS);
    (this.#heartbeat as { unref?: () => void }).unref?.();
  }

  /**
   * What an upstream said of each key (a hold, the fleet's spacing), shared
   * by every process on this store: `limitedFetch` reads it before each
   * send (src/stores/redis/pace.lua).
   */
  get sharedPace(): SharedPace {
    this.#pace ??= new RedisSharedPace({
      connection: this.#client,
      shardKey: (shard) => this.shardKey(shard),
      shardOf: (key) => this.shardOf(key),
      breaker: this.breaker,
      breakerPerShard: this.#breakerPerShard,
      lifecycle: this.#lifecycle,
    });
    return this.#pace;
  }

  /** The number of virtual shards. */
  get shards(): number {
    return this.#shards;
  }

  /**
   * The Redis key prefix of a shard, `<prefix>{<shard>}`: every key of the
   * shard starts with it, so they all hash to one cluster slot.
   *
   * @example
   * ```ts
   * store.shardKey(3); // 'rl:{3}'
   * ```
   */
  shardKey(shard: number): string {
    return `${this.#prefix}{${shard}}`;
  }

  /**
   * The virtual shard of a key: the top bits of a hash that every process
   * computes alike (see `shardHash`). Its Redis keys start with
   * `shardKey(shardOf(key))`.
   *
   * @example
   * ```ts
   * store.shardKey(store.shardOf('user:1')); // e.g. 'rl:{17}'
   * ```
   */
  shardOf(key: string): number {
    return this.#shardShift >= 32 ? 0 : shardHash(key) >>> this.#shardShift;
  }

  /**
   * Whether a limiter with plans may use this store: in strict mode the
   * decide script keeps each key's plan record (lua/plan.lua); leased mode
   * spends leases where no record is read.
   */
  get keepsPlans(): boolean {
    return this.#lease === undefined;
  }

  bind(gates: readonly Policy[], clock: Clock, block: BlockGate = blockGate(undefined), plan?: PlanTag): StoreBinding {
    if (plan !== undefined && this.#lease !== undefined) {
      throw new ConfigError('store', 'leased mode', "a RedisStore in strict mode for a limiter with plans: leased mode spends its leases where no key's plan record is read");
    }
    if (this.#lease !== undefined && block.core.p0 > 0 && !gates.some(isConcurrency)) {
      throw new ConfigError('blockAfter', 'leased mode', "a RedisStore in strict mode: leased mode denies on its own, where the fleet's denials cannot be counted together");
    }
    if (this.#clientTime && !this.#oneClock && gates.some(isConcurrency)) {
      // Holders of a key must be counted on one clock: a client whose clock
      // runs a lease ahead would count another's live holders as expired.
      throw new ConfigError('time', 'client', "Redis's clock (the default) for a limiter with a concurrency gate: with clients' clocks a lease apart, one would take the slots another's holders still hold");
    }
    const strict = new RedisBinding({
      connection: this.#client,
      gates,
      block,
      plan,
      clock,
      shardKey: (shard) => this.shardKey(shard),
      shardOf: (key) => this.shardOf(key),
      clientTime: this.#clientTime,
      maxDelayMs: this.#maxDelayMs,
      maxSize: this.#maxSize,
      negativeCache: this.#negativeCache,
      mirror: this.#mirror,
      breaker: this.breaker,
      breakerPerShard: this.#breakerPerShard,
      timeoutMs: this.#timeoutMs,
      fallback: this.#fallback,
      fleet: this.#fleet,
      reconcile: this.#reconcile,
      counts: this.#counts,
      metrics: this.#metrics,
      lifecycle: this.#lifecycle,
    });
    this.#bindings.push(strict);
    // Concurrency gates are decided strictly even in leased mode: a slot must
    // be back for the whole fleet the moment it is released, and slots leased
    // to a process would sit idle there while others wait.
    if (this.#lease === undefined || gates.some(isConcurrency)) return strict;
    return new LeasedBinding(strict, gates, clock, this.#counts, this.#lease);
  }

  /**
   * Binds a custom {@link RateLimiter}: its state is kept as JSON in Redis and
   * updated by compare-and-set (src/stores/redis/cas.lua). Both modes
   * decide it in Redis; it has no lease.
   */
  bindCustom(limiter: RateLimiter, clock: Clock): StoreBinding {
    return new CustomRedisBinding({
      connection: this.#client,
      limiter,
      clock,
      clientTime: this.#clientTime,
      shardOf: (key) => this.shardOf(key),
      shardKey: (shard) => this.shardKey(shard),
      breaker: this.breaker,
      breakerPerShard: this.#breakerPerShard,
      timeoutMs: this.#timeoutMs,
      fallback: this.#fallback === FLEET ? 'closed' : this.#fallback,
      counts: this.#counts,
      lifecycle: this.#lifecycle,
    });
  }

  /**
   * State and counters, so that an operator can see an outage.
   *
   * @example
   * ```ts
   * const { state, decisions } = store.stats(); // 'closed', { redis: 1200, local: 40, fallback: 0, lease: 0, leases: 0, reconciled: 0 }
   * ```
   */
  stats(): RedisStoreStats {
    const owedKeys = this.#bindings.reduce((n, b) => n + b.owedKeys, 0);
    return { state: this.breaker.state, openShards: this.breaker.openShards, opens: this.breaker.opens, fleetSize: this.#fleet.nodes, owedKeys, decisions: { ...this.#counts } };
  }

  /**
   * Resolves when Redis answers a call of this store (which also loads its
   * script), within `connectTimeoutMs`; otherwise rejects with
   * {@link RedisUnavailableError} naming the server. Awaiting it at startup
   * turns a wrong URL into an error instead of a fleet on its fallback.
   *
   * @example
   * ```ts
   * const store = new RedisStore({ client: new Redis(url) });
   * await store.ready(); // throws RedisUnavailableError for a wrong URL
   * ```
   */
  async ready(): Promise<void> {
    try {
      await withTimeout(this.#probe(0), this.#connectTimeoutMs);
    } catch (error) {
      throw new RedisUnavailableError(this.#client.target, this.#connectTimeoutMs, error);
    }
    this.breaker.succeeded(-1);
  }

  /**
   * Closes the store: stops probing and reconciling, sends what is queued and
   * resolves once every batch in flight has its answer (or its timeout), so
   * that quitting the client afterwards cannot fail a call. Later calls
   * reject with {@link StoreClosedError}. The client is the caller's to close.
   *
   * @example
   * ```ts
   * await store.close();
   * await redis.quit();
   * ```
   */
  async close(): Promise<void> {
    if (this.#lifecycle.closed) return;
    this.#lifecycle.closed = true;
    this.breaker.stop();
    clearTimeout(this.#heartbeat);
    // Leave the fleet (best effort): the others' shares grow back at once, not after MEMBER_TTL_MS.
    const leave =
      this.#client.state === 'idle' ? undefined : withTimeout(this.#client.evalScript(FLEET_SCRIPT, `${this.#prefix}{fleet}`, [this.#id, String(MEMBER_TTL_MS), '1']), this.#timeoutMs).catch(() => undefined);
    await Promise.all([leave, ...this.#bindings.map((b) => b.close())]);
    // After the last answer: an error event until then still finds a listener (Node would throw it unheard).
    for (const off of this.#unsubscribe) off?.();
  }
}
