import type { Clock } from '../../core/clock.js';
import type { Decision, Reservation } from '../../limiter/decision.js';
import type { EmbeddedStore } from '../embedded/embedded-store.js';
import type { EmbeddedBinding } from '../embedded/embedded-binding.js';
import type { Policy } from '../../policies/index.js';
import { configuredLimit } from '../../policies/configured-limit.js';
import type { StoreBinding } from '../../limiter/store.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import { fallbackGates, FLEET, scaleGates, type FallbackSetting } from './fallback.js';
import { DECIDE_COMMAND, type Lifecycle, type RedisClient } from './redis-client.js';
import { CODE } from '../../policies/policy.js';
import { RedisStateError, StoreClosedError } from '../../errors.js';
import { wtf8Length, writeWtf8 } from '../../core/wtf8.js';
import type { MetricsSink } from '../../core/metrics.js';

/** Script operations (decide.lua's `op`), defined in abi/abi.mjs. */
import { OP_LIMIT, OP_PEEK, OP_RESERVE, OP_REFUND, OP_RESET, OP_CHARGE, OP_LEASE } from '../../../build/abi.js';
/** ioredis connection states after a connection was lost. */
const DOWN = new Set(['reconnecting', 'close', 'end', 'disconnecting']);
/**
 * How long a background call (a lease prefetch: no caller waits on it) may
 * wait for company: a tick of a busy gateway prefetches for a few keys per
 * shard, and one script call per shard per tick would cost more in socket
 * writes than the decisions it saves.
 */
const BACKGROUND_DELAY_MS = 5;

/** The smallest reconciliation ledger that is pruned of charges past their decay horizon. */
const MIN_PRUNE = 10_000;

/**
 * How long after its last admission a state of `gate` decays to "never seen"
 * at most: GCRA's burst times its interval, a bucket's time to refill whole,
 * a window's length (twice, sliding).
 */
function decayHorizon(gate: Policy): number {
  const { code, p0, p1, p2 } = gate.core;
  if (code === CODE.gcra) return p2;
  if (code === CODE.tokenInterval) return (Math.ceil(p0 / p1) + 1) * p2; // + the period under way
  if (code === CODE.sliding) return 2 * p0;
  return p0;
}

/** Fallback decisions per one that waits for a macrotask (see `#yielding`). */
const YIELD_EVERY = 32;
/** Runs `f` after the event loop has turned (I/O included): setImmediate where there is one. */
const yieldToLoop: (f: () => void) => void =
  typeof (globalThis as { setImmediate?: unknown }).setImmediate === 'function' ? (f) => void setImmediate(f) : (f) => void setTimeout(f, 0);

/**
 * A local denial is trusted only when it has at least this long to run: near
 * its end the estimate of Redis's clock (good to half a round trip) decides,
 * and Redis should.
 */
const NEGATIVE_CACHE_MARGIN_MS = 1;

/**
 * @internal What Redis granted a lease request (times on the local clock,
 * rounded to the safe side: slots late, validity early).
 */
export interface LeaseReply {
  /** Units debited for this process to spend (0: denied). */
  readonly granted: number;
  /** When the last unit may be spent; unit j of k at `lastAt - (k - j) * step`. */
  readonly lastAt: number;
  /** Until when the units may be spent (Infinity: no window boundary). */
  readonly validUntil: number;
  /** When nothing was granted: when one unit would be (early side: asking again then is safe, denying longer is not). */
  readonly retryAt: number;
  readonly resetAfterMs: number;
  /** The gate Redis reported (a denial's binding gate; 0 for a grant). */
  readonly gate: number;
  /** When the request was sent (local clock): the lease's lifetime counts from then. */
  readonly grantedAt: number;
  /** How long the request took, send to answer (ms). */
  readonly roundTripMs: number;
}

interface Hit {
  op: number;
  cost: number;
  maxWait: number;
  resolve(value: Decision | Reservation | LeaseReply | undefined): void;
  reject(error: unknown): void;
}

/** Decisions counted by where they were made. */
export interface SourceCounts {
  redis: number;
  local: number;
  fallback: number;
  /** Outage admissions charged back to Redis after recovery (cost units). */
  reconciled: number;
  /** Decisions spent from a lease (leased mode), without a round trip. */
  lease: number;
  /** Lease requests sent to Redis (leased mode). */
  leases: number;
}

/** @internal Everything a binding needs from its store. */
export interface RedisBindingOptions {
  client: RedisClient;
  gates: readonly Policy[];
  clock: Clock;
  shardKey(shard: number): string;
  /** The key's virtual shard (see `RedisStore.shardOf`). */
  shardOf(key: string): number;
  clientTime: boolean;
  maxDelayMs: number;
  maxSize: number;
  negativeCache: boolean;
  mirror: EmbeddedStore;
  breaker: CircuitBreaker;
  /** Whether the breaker has a state per virtual shard (a Cluster) or one (a server). */
  breakerPerShard: boolean;
  timeoutMs: number;
  fallback: FallbackSetting;
  /** The fleet's size as Redis last reported it (undefined: never heard), for the default fallback. */
  fleet: { nodes: number | undefined };
  reconcile: boolean;
  counts: SourceCounts;
  /** Batch sizes and durations go here (undefined: not measured). */
  metrics: MetricsSink | undefined;
  /** Whether the store is closed (calls then reject with StoreClosedError). */
  lifecycle: Lifecycle;
}


/**
 * Decides for one limiter's gates in Redis: queues calls per virtual shard,
 * sends each shard's batch as one script call, and mirrors the answers into a
 * local table.
 */
export class RedisBinding implements StoreBinding {
  readonly #o: RedisBindingOptions;
  readonly #send: (anchor: string, ...argv: (string | Buffer)[]) => Promise<Buffer>;
  readonly #gateArgs: string[];
  /** Per gate, the limit it was configured with and what it passes at once (Decision.limit, Decision.capacity). */
  readonly #limit: number[];
  readonly #capacity: number[];
  readonly #mirror: EmbeddedBinding;
  /** Decides while the breaker is open (undefined: fail open or closed). */
  readonly #fallback: EmbeddedBinding | undefined;
  /** Whether Redis's answers seed the fallback (the scaled policy, gate for gate). */
  readonly #seedFallback: boolean;
  /** Per gate, the capacity a seeded token count is clamped to (NaN: no clamp). */
  #seedClamp: number[] = [];
  /** Cost admitted by the fallback per key, charged to Redis after recovery. */
  /**
   * Per key, the cost units the fallback admitted in the outage, when it
   * first did (the charge is made as of then) and when it last did (for
   * pruning), by the local clock.
   */
  #ledger = new Map<string, { cost: number; from: number; at: number }>();
  /** The ledger size that triggers the next prune (twice what the last one left). */
  #pruneAt = MIN_PRUNE;
  /** How long after its last admission a key's fallback state decays at most (its charge is moot after). */
  #horizonMs = 0;
  /** What follows from the fallback's gates: the seed clamp and the ledger's horizon. */
  #share(local: readonly Policy[]): void {
    // A token count seeded from the whole fleet's bucket must not exceed this node's share.
    this.#seedClamp = local.map((g) => (g.core.code === CODE.tokenInterval ? g.core.p0 : NaN));
    this.#horizonMs = Math.max(0, ...local.map(decayHorizon));
  }

  /**
   * The fleet's size changed (the store's heartbeat): the default fallback is
   * rescaled to 1/N in place, keeping the keys' fallback state. @internal
   */
  fleetChanged(nodes: number): void {
    if (this.#o.fallback !== FLEET || this.#fallback === undefined) return;
    const local = scaleGates(this.#o.gates, nodes);
    this.#fallback.setGates(local);
    this.#share(local);
  }

  /** Keys whose outage admissions are still to be charged to Redis. @internal */
  get owedKeys(): number {
    return this.#ledger.size;
  }

  /** Whether a reconciliation pass is under way. */
  #reconciling = false;
  /** Redis time minus local time, estimated at each answer (0 with client time). */
  #offset = 0;
  #pending = new Map<number, Map<string, Hit[]>>();
  #size = 0;
  #scheduled = false;
  /** A flush for background calls only (lease prefetches), if one is due. */
  #lazyTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: RedisBindingOptions) {
    this.#o = options;
    // The Buffer variant ioredis defines beside every command: the reply is packed doubles.
    const client = options.client as unknown as Record<string, (...args: (string | Buffer)[]) => Promise<Buffer>>;
    this.#send = (anchor, ...argv) => client[`${DECIDE_COMMAND}Buffer`]!.call(client, anchor, ...argv);
    this.#gateArgs = [String(options.gates.length)];
    for (const { core } of options.gates) {
      // The gate id names the policy, so limiters with the same policy share state and others don't.
      const id = `${core.code}:${core.p0}:${core.p1}:${core.p2}`;
      this.#gateArgs.push(id, String(core.code), String(core.p0), String(core.p1), String(core.p2));
    }
    this.#limit = options.gates.map(configuredLimit);
    this.#capacity = options.gates.map((g) => g.core.capacity);
    const clock = options.clock;
    const redisClock = () => clock() + this.#offset;
    this.#mirror = options.mirror.bind(options.gates, redisClock);
    const local = fallbackGates(options.fallback, options.gates);
    this.#fallback = local === undefined ? undefined : options.mirror.bind(local, redisClock);
    this.#seedFallback = options.fallback === FLEET || (typeof options.fallback === 'object' && 'nodes' in options.fallback);
    this.#share(local ?? []);
    if (options.fallback === FLEET && options.fleet.nodes !== undefined) this.fleetChanged(options.fleet.nodes);
    if (options.reconcile) options.breaker.addEventListener('close', () => this.#reconcile());
  }

  #shardOf(key: string): number {
    return this.#o.shardOf(key);
  }

  /** The breaker's state index for a virtual shard. */
  #breakerShard(shard: number): number {
    return this.#o.breakerPerShard ? shard : 0;
  }

  /**
   * Whether Redis is to be skipped for a shard: its breaker is open, or the
   * client lost its connection (a first connection still being made gets
   * `timeoutMs`).
   */
  #down(shard: number): boolean {
    const o = this.#o;
    if (o.breaker.isOpen(this.#breakerShard(shard))) return true;
    const status = o.client.status;
    if (status !== undefined && DOWN.has(status)) {
      o.breaker.fail(-1, new Error(`Redis connection is ${status}`));
      return true;
    }
    return false;
  }

  /**
   * A fallback decision, handed back through a macrotask once in
   * {@link YIELD_EVERY}: resolved at once, a caller's `await` loop never lets
   * the event loop run, and the probe that would find Redis back (its timer,
   * its socket's answer) never does.
   */
  #yielding<T>(decision: T): T | Promise<T> {
    if (++this.#fallbackCalls % YIELD_EVERY !== 0) return decision;
    return new Promise((resolve) => yieldToLoop(() => resolve(decision)));
  }

  #fallbackCalls = 0;

  /** Decides a limit without Redis now (its shard is down), synchronously: for leased mode's `limitNow`. @internal */
  limitLocally(key: string, cost: number): Decision {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    return this.#decideLocally(key, OP_LIMIT, cost, 0) as Decision;
  }

  /** Decides one call without Redis, per the fallback option. */
  #decideLocally(key: string, op: number, cost: number, maxWait: number): Decision | Reservation | undefined {
    const counts = this.#o.counts;
    const fallback = this.#fallback;
    if (op === OP_REFUND || op === OP_RESET || op === OP_CHARGE || op === OP_LEASE) {
      if (op === OP_REFUND) fallback?.refund(key, cost);
      if (op === OP_RESET) fallback?.reset(key);
      return undefined;
    }
    counts.fallback++;
    // The default fallback of a store that has never heard the fleet's size
    // from Redis: no share is known, so nothing is admitted on its own.
    if (fallback === undefined || (this.#o.fallback === FLEET && this.#o.fleet.nodes === undefined)) {
      const open = this.#o.fallback === 'open';
      const limit = this.#limit[0]!;
      const capacity = this.#capacity[0]!;
      const remaining = open ? capacity : 0;
      if (op === OP_RESERVE) return { allowed: open, waitMs: 0, at: this.#o.clock(), limit, capacity, gate: 0, remaining, source: 'fallback' };
      return { allowed: open, limit, capacity, gate: 0, remaining, retryAfterMs: open ? 0 : this.#o.timeoutMs, resetAfterMs: 0, source: 'fallback' };
    }
    if (op === OP_RESERVE) {
      const r = fallback.reserve(key, cost, maxWait);
      if (r.allowed) this.#record(key, cost);
      return { ...r, source: 'fallback' };
    }
    const d = fallback.limit(key, cost, op === OP_PEEK);
    if (d.allowed && op === OP_LIMIT) this.#record(key, cost);
    return { ...d, source: 'fallback' };
  }

  #record(key: string, cost: number, from?: number): void {
    if (!this.#o.reconcile) return;
    const ledger = this.#ledger;
    // No cap: a key left out would be charged nothing for what it spent in
    // the outage, a fresh budget in Redis. But a key whose last admission is
    // older than the fallback's decay horizon owes nothing any more (its
    // state, here and in the fleet's policy, is back to "never seen"): pruned,
    // so the ledger follows the keys admitted lately, not all keys ever seen.
    const now = this.#o.clock();
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

  /**
   * Charges Redis with what the fallback admitted on the shards that are
   * back; keys of shards still open wait for theirs. One pass at a time.
   */
  #reconcile(): void {
    if (this.#reconciling || this.#ledger.size === 0) return;
    this.#reconciling = true;
    void this.#drainLedger().then((completed) => {
      this.#reconciling = false;
      // Shards that closed during the pass: their keys were skipped.
      if (completed) this.#reconcile();
    });
  }

  /**
   * Sends the ledger's charges a batch (`maxSize` keys) at a time, each after
   * the last was answered. All at once, a ledger of many keys (a flood of
   * fresh keys during the outage) would be a thousand script calls in one
   * tick: they time out, the breaker opens again, and the store never gets
   * back to Redis. A batch that fails stops the pass; its charges go back to
   * the ledger (one Redis may have applied: charged twice, the safe way) with
   * the rest, for the next recovery.
   */
  async #drainLedger(): Promise<boolean> {
    const breaker = this.#o.breaker;
    if (this.#o.lifecycle.closed) return false;
    // Keys, not charges: a key's charge may go out in front of its next call
    // meanwhile (see #chargeFirst), and must not go twice.
    const keys = [...this.#ledger.keys()];
    const size = this.#o.maxSize;
    let sent = 0;
    for (let start = 0; start < keys.length; start += size) {
      const chunk: [key: string, cost: number, from: number][] = [];
      for (let i = start; i < Math.min(start + size, keys.length); i++) {
        const key = keys[i]!;
        const owed = this.#ledger.get(key);
        if (owed === undefined || breaker.isOpen(this.#breakerShard(this.#shardOf(key)))) continue;
        this.#ledger.delete(key);
        chunk.push([key, owed.cost, owed.from]);
      }
      if (chunk.length === 0) continue;
      if (this.#o.lifecycle.closed) {
        for (const [key, cost, from] of chunk) this.#record(key, cost, from);
        return false;
      }
      sent += chunk.length;
      const results = await Promise.all(chunk.map(([key, cost, from]) => this.#charge(key, cost, from)));
      if (results.includes(false)) return false;
    }
    return sent > 0;
  }

  /**
   * Charges Redis with what the fallback admitted for `key`; resolves false
   * when Redis failed (the charge is back in the ledger, for the next
   * recovery: one Redis may have applied is then charged twice, the safe
   * way). A key holding a value cellgate did not write can never be charged:
   * dropped.
   */
  #charge(key: string, cost: number, from: number): Promise<boolean> {
    // As of when the fallback first admitted it, on Redis's clock (lua/charge.lua,
    // OP_CHARGE): a fleet that kept to its shares in the outage is not silenced
    // after it by a debt charged as if it were all spent at once now.
    const asOf = this.#o.clientTime ? from : from + this.#offset;
    return this.#enqueue(key, this.#shardOf(key), OP_CHARGE, cost, asOf).then(
      () => {
        this.#o.counts.reconciled += cost;
        return true;
      },
      (error: unknown) => {
        if (error instanceof RedisStateError) return true;
        this.#record(key, cost, from);
        return false;
      },
    );
  }

  limit(key: string, cost: number, dryRun: boolean): Decision | Promise<Decision> {
    if (this.#o.lifecycle.closed) return Promise.reject(new StoreClosedError());
    const op = dryRun ? OP_PEEK : OP_LIMIT;
    const shard = this.#shardOf(key);
    if (this.#o.breaker.isOpen(this.#breakerShard(shard))) return this.#yielding(this.#decideLocally(key, op, cost, 0) as Decision);
    if (this.#o.negativeCache) {
      const local = this.#mirror.limit(key, cost, true);
      if (!local.allowed && local.retryAfterMs > NEGATIVE_CACHE_MARGIN_MS) {
        this.#o.counts.local++;
        return local;
      }
    }
    return this.#enqueue(key, shard, op, cost, 0) as Promise<Decision>;
  }

  limitMany(keys: readonly string[], cost: number): Promise<Decision[]> {
    return Promise.all(keys.map((key) => this.limit(key, cost, false)));
  }

  reserve(key: string, cost: number, maxWaitMs: number): Reservation | Promise<Reservation> {
    if (this.#o.lifecycle.closed) return Promise.reject(new StoreClosedError());
    const shard = this.#shardOf(key);
    if (this.#o.breaker.isOpen(this.#breakerShard(shard))) return this.#yielding(this.#decideLocally(key, OP_RESERVE, cost, maxWaitMs) as Reservation);
    return this.#enqueue(key, shard, OP_RESERVE, cost, maxWaitMs) as Promise<Reservation>;
  }

  /**
   * Whether calls for the key are decided locally now (its shard's breaker is
   * open, or the connection is lost): `limit` then answers synchronously.
   */
  isDown(key: string): boolean {
    return this.#down(this.#shardOf(key));
  }

  /**
   * Debits a lease of up to `want` units of the key in Redis (GCRA slots up
   * to `horizonMs` ahead). Resolves `undefined` when Redis is unreachable.
   * `urgent: false` (a prefetch) lets it wait a few ms to share a script call.
   */
  lease(key: string, want: number, horizonMs: number, urgent: boolean): Promise<LeaseReply | undefined> {
    if (this.#o.lifecycle.closed) return Promise.resolve(undefined);
    const shard = this.#shardOf(key);
    if (this.#down(shard)) return Promise.resolve(undefined);
    this.#o.counts.leases++;
    return this.#enqueue(key, shard, OP_LEASE, want, horizonMs, urgent) as Promise<LeaseReply | undefined>;
  }

  async refund(key: string, cost: number): Promise<void> {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    await this.#enqueue(key, this.#shardOf(key), OP_REFUND, cost, 0);
  }

  async reset(key: string): Promise<void> {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    await this.#enqueue(key, this.#shardOf(key), OP_RESET, 1, 0);
  }

  #enqueue(key: string, shard: number, op: number, cost: number, maxWait: number, urgent = true): Promise<Decision | Reservation | LeaseReply | undefined> {
    // A key that still owes Redis what the fallback admitted for it pays that
    // first, in the same script call: otherwise Redis, which has not heard of
    // the outage yet, would grant it the whole limit again.
    if (op !== OP_CHARGE && this.#ledger.size > 0) {
      const owed = this.#ledger.get(key);
      if (owed !== undefined) {
        this.#ledger.delete(key);
        void this.#charge(key, owed.cost, owed.from);
      }
    }
    return new Promise((resolve, reject) => {
      let entries = this.#pending.get(shard);
      if (entries === undefined) {
        entries = new Map();
        this.#pending.set(shard, entries);
      }
      let hits = entries.get(key);
      if (hits === undefined) {
        hits = [];
        entries.set(key, hits);
      }
      hits.push({ op, cost, maxWait, resolve, reject });
      if (++this.#size >= this.#o.maxSize) {
        this.#flush();
      } else if (!urgent) {
        if (!this.#scheduled && this.#lazyTimer === undefined) {
          this.#lazyTimer = setTimeout(this.#flush, BACKGROUND_DELAY_MS);
          (this.#lazyTimer as { unref?: () => void }).unref?.();
        }
      } else if (!this.#scheduled) {
        this.#scheduled = true;
        if (this.#o.maxDelayMs > 0) setTimeout(this.#flush, this.#o.maxDelayMs);
        else queueMicrotask(this.#flush);
      }
    });
  }

  /** Copies Redis's state of the key into the fallback's gates, clamped to this node's share. */
  #seed(key: string, out: Float64Array, offset: number): void {
    const clamp = this.#seedClamp;
    for (let g = 0; g < clamp.length; g++) {
      const cap = clamp[g]!;
      const b = offset + g * 4 + 1;
      if (cap === cap && out[b]! > cap) out[b] = cap;
    }
    this.#fallback!.putStates(key, out, offset);
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    if (this.#lazyTimer !== undefined) {
      clearTimeout(this.#lazyTimer);
      this.#lazyTimer = undefined;
    }
    if (this.#size === 0) return;
    const pending = this.#pending;
    this.#pending = new Map();
    this.#size = 0;
    for (const [shard, entries] of pending) {
      const sent = this.#sendShard(shard, entries);
      this.#inFlight.add(sent);
      void sent.finally(() => this.#inFlight.delete(sent));
    }
  };

  /** Batches sent and not answered yet. */
  readonly #inFlight = new Set<Promise<void>>();

  /** Whether calls of this binding are closed out (the store's `close()`). @internal */
  get closed(): boolean {
    return this.#o.lifecycle.closed;
  }

  /**
   * The store is closing: sends what is queued, and resolves once every batch
   * in flight is answered (or timed out), so that quitting the client after
   * cannot fail a call. @internal
   */
  async close(): Promise<void> {
    this.#flush();
    await Promise.allSettled([...this.#inFlight]);
  }

  async #sendShard(shard: number, entries: Map<string, Hit[]>): Promise<void> {
    const argv: (string | Buffer)[] = [this.#o.clientTime ? String(this.#o.clock()) : '', ...this.#gateArgs];
    // Three strings for the whole batch (lua/wire.lua documents the format).
    let lengths = '';
    let specs = '';
    let total = 0;
    for (const key of entries.keys()) {
      const n = wtf8Length(key);
      lengths += `${n},`;
      total += n;
    }
    // The keys as WTF-8 bytes (see wtf8.ts), exactly as `lengths` counts them.
    const keys = Buffer.allocUnsafe(total);
    let at = 0;
    for (const [key, hits] of entries) {
      at = writeWtf8(key, keys, at);
      const only = hits.length === 1 ? hits[0]! : undefined;
      if (only === undefined || only.op !== OP_LIMIT || only.cost !== 1) {
        specs += hits.map((h) => `${h.op} ${h.cost} ${h.maxWait === Infinity ? 'inf' : h.maxWait}`).join(' ');
      }
      specs += ',';
    }
    const sentAt = this.#o.clock();
    // The deadline on the script's clock (Redis's, or the client's in client
    // time) after which the script refuses the batch: by then this binding
    // has decided it by its fallback.
    const deadline = sentAt + (this.#o.clientTime ? 0 : this.#offset) + this.#o.breaker.timeoutNow;
    argv.push(lengths, keys, specs, String(deadline));
    let reply: Buffer | undefined;
    if (!this.#down(shard)) {
      reply = await this.#o.breaker.run(this.#breakerShard(shard), () =>
        this.#send(this.#o.shardKey(shard), ...argv).catch((error: unknown) => {
          // A refused late batch says what time it is on Redis: a clock
          // offset learned wrong (or not yet) must not refuse every batch.
          const late = error instanceof Error ? /^TOOLATE ([\d.]+)/.exec(error.message) : null;
          // (It ran just before its answer: the batch may have waited long in a frozen server, so not the send's midpoint.)
          if (late !== null && !this.#o.clientTime) this.#offset = Number(late[1]) - this.#o.clock();
          throw error;
        }),
      );
    }
    if (reply === undefined) {
      // Redis failed this batch: the fallback decides every call in it, in order.
      for (const [key, hits] of entries) {
        for (const hit of hits) {
          if (hit.op === OP_CHARGE) hit.reject(new Error('Redis is down'));
          else hit.resolve(this.#decideLocally(key, hit.op, hit.cost, hit.maxWait));
        }
      }
      return;
    }
    const receivedAt = this.#o.clock();
    const metrics = this.#o.metrics;
    if (metrics !== undefined) {
      let calls = 0;
      for (const hits of entries.values()) calls += hits.length;
      metrics.record('cellgate.redis.batch.size', calls);
      metrics.record('cellgate.redis.batch.duration', receivedAt - sentAt);
    }
    const out = new Float64Array(reply.length / 8);
    const view = new DataView(reply.buffer, reply.byteOffset, reply.length);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(i * 8, true);
    if (!this.#o.clientTime) this.#offset = out[0]! - (sentAt + receivedAt) / 2;
    const gates = this.#capacity.length;
    let r = 1;
    let m = r;
    for (const hits of entries.values()) m += hits.length * 4;
    for (const [key, hits] of entries) {
      for (const hit of hits) {
        const flags = out[r]!;
        const remaining = out[r + 1]!;
        const retry = out[r + 2]!;
        const reset = out[r + 3]!;
        r += 4;
        if (flags < 0) {
          hit.reject(new RedisStateError(this.#o.shardKey(shard), key));
          continue;
        }
        const allowed = (flags & 1) === 1;
        const gate = flags >>> 1;
        const limit = this.#limit[gate]!;
        const capacity = this.#capacity[gate]!;
        if (hit.op === OP_LIMIT || hit.op === OP_PEEK) {
          this.#o.counts.redis++;
          hit.resolve({ allowed, limit, capacity, gate, remaining, retryAfterMs: retry, resetAfterMs: reset, source: 'redis' });
        } else if (hit.op === OP_LEASE) {
          hit.resolve({
            granted: allowed ? remaining : 0,
            lastAt: receivedAt + retry,
            validUntil: sentAt + reset,
            retryAt: sentAt + retry,
            resetAfterMs: allowed ? 0 : reset,
            gate,
            grantedAt: sentAt,
            roundTripMs: receivedAt - sentAt,
          });
        } else if (hit.op === OP_RESERVE) {
          hit.resolve({ allowed, waitMs: retry, at: receivedAt + retry, limit, capacity, gate, remaining, source: 'redis' });
        } else {
          hit.resolve(undefined);
        }
      }
      this.#mirror.putStates(key, out, m);
      if (this.#seedFallback) this.#seed(key, out, m);
      m += gates * 4;
    }
  }
}
