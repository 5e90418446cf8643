import type { Clock } from '../../core/clock.js';
import type { Decision, DecisionSource, Reservation } from '../../limiter/decision.js';
import type { EmbeddedStore } from '../embedded/embedded-store.js';
import type { EmbeddedBinding } from '../embedded/embedded-binding.js';
import type { Policy } from '../../policies/index.js';
import { configuredLimit } from '../../policies/configured-limit.js';
import { isConcurrency } from '../../policies/concurrency.js';
import type { Held, PlanTag, Renewal, StoreBinding } from '../../limiter/store.js';
import type { BreakerCloseDetail, BreakerOpenDetail, CircuitBreaker } from './circuit-breaker.js';
import type { FallbackSetting } from './fallback.js';
import type { RedisConnection } from './connection.js';
import type { Lifecycle } from './lifecycle.js';
import { DECIDE_SCRIPT } from './scripts.js';
import { RedisStateError, RedisUnavailableError, StoreClosedError } from '../../errors.js';
import type { BlockGate } from '../../limiter/blocks.js';
import type { MetricsSink } from '../../core/metrics.js';
import { Batcher, type Groups } from './batcher.js';
import { Ledger } from './ledger.js';
import { OutageDecider } from './outage.js';
import { decodeReply, encodeEntries, gateArgs, packedReply, replyAllowed, replyGate, type LeaseReply, type PlanArgs } from './wire.js';
import { carryCode } from '../../policies/carry.js';
import { BLOCKED, STALE, OP_LIMIT, OP_PEEK, OP_RESERVE, OP_REFUND, OP_RESET, OP_CHARGE, OP_LEASE, OP_RELEASE, OP_RENEW, OP_BLOCK, OP_LOWER } from '../../../build/abi.js';

/**
 * A local denial is trusted only when it has at least this long to run: near
 * its end the estimate of Redis's clock (good to half a round trip) decides,
 * and Redis should.
 */
const NEGATIVE_CACHE_MARGIN_MS = 1;
/**
 * How long (ms) the local mirror may deny a key Redis reported blocked
 * without asking again: a bound on how long an unblock in another process
 * takes to reach this one, while a blocked client's flood still costs Redis
 * one call a second per process at most. For a limiter with plans, the
 * mirror's every denial is trusted as long at most: a plan changed in
 * another process reaches this one as quickly.
 */
export const BLOCK_TRUST_MS = 1000;

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
  connection: RedisConnection;
  gates: readonly Policy[];
  /** The limiter's block gate (blocks.ts), sent after the gates with every batch: a block set by any process holds in all. */
  block: BlockGate;
  /** The plan this binding decides, for a limiter with plans (src/limiter/plans.ts; lua/plan.lua). */
  plan?: PlanTag;
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
 * Decides for one limiter's gates in Redis: queues calls per route (the
 * server, or a Cluster's virtual shard: batcher.ts), sends each route's batch
 * as one script call (wire.ts), mirrors
 * the answers into a local table, decides by the fallback while Redis is
 * unreachable (outage.ts) and charges what it admitted back to Redis when it
 * returns (ledger.ts).
 */
export class RedisBinding implements StoreBinding {
  readonly #o: RedisBindingOptions;
  readonly #send: (anchor: string, argv: readonly (string | Uint8Array)[]) => Promise<Uint8Array>;
  #gateArgs: string[];
  /** Whether the limiter counts denials toward a block (blockAfter). */
  readonly #escalates: boolean;
  /** Per gate, the limit it was configured with and what it passes at once (Decision.limit, Decision.capacity). */
  readonly #limit: number[];
  readonly #capacity: number[];
  readonly #mirror: EmbeddedBinding;
  readonly #outage: OutageDecider;
  /** What the fallback admitted per key, to charge to Redis after recovery (undefined: `reconcile` off). */
  readonly #ledger: Ledger | undefined;
  readonly #batcher: Batcher;
  /** Whether a reconciliation pass is under way. */
  #reconciling = false;
  /** Per key, the latest batch sent for it and not yet settled (resolves once its answer is in the mirror). */
  readonly #inFlight = new Map<string, Promise<void>>();
  /** Redis time minus local time, estimated at each answer (0 with client time). */
  #offset = 0;
  /** Whether a gate is a concurrency gate (no negative cache then). */
  readonly #slots: boolean;
  /** The concurrency gate's index (a limiter has at most one), or -1, and its lease. */
  readonly #slotGate: number;
  readonly #leaseMs: number;
  /** Per key, the slots this store's permits hold (any source): what its share bounds without Redis. */
  readonly #own = new Map<string, number>();
  /** Per breaker shard, until when (local clock) it is just back from the fallback: see #holdLocally. */
  readonly #recovering = new Map<number, number>();
  /** Per breaker shard, when (local clock) its current outage began: its first failed batch since one answered. */
  readonly #outageSince = new Map<number, number>();
  /** Permits dropped without release, by when (Redis's clock) their holders stop counting: [until, key, cost], oldest first. */
  readonly #abandoned: [until: number, key: string, cost: number][] = [];
  /** What renews this limiter's permits now (Holdings), when Redis goes away or comes back. */
  readonly #renewNow: (() => void)[] = [];
  readonly #redisClock: () => number;
  /** The first gate whose mirrored state is trusted for BLOCK_TRUST_MS only (the block gate; every gate with plans), and a reply's exps, kept aside meanwhile. */
  readonly #firstCapped: number;
  readonly #exps: Float64Array;

  constructor(options: RedisBindingOptions) {
    this.#o = options;
    // The reply is packed doubles, a bulk string (as bytes).
    const connection = options.connection;
    this.#send = (anchor, argv) => connection.evalScript(DECIDE_SCRIPT, anchor, argv).then(packedReply);
    const plan = options.plan;
    this.#firstCapped = plan === undefined ? options.gates.length : 0;
    this.#exps = new Float64Array(options.gates.length + 1);
    this.#gateArgs = gateArgs(options.gates, options.block, planArgs(plan));
    this.#escalates = options.block.core.p0 > 0;
    this.#slotGate = options.gates.findIndex(isConcurrency);
    this.#slots = this.#slotGate >= 0;
    this.#leaseMs = this.#slots ? options.gates[this.#slotGate]!.core.p0 : 0;
    this.#limit = options.gates.map(configuredLimit);
    this.#capacity = options.gates.map((g) => g.core.capacity);
    const clock = options.clock;
    const redisClock = () => clock() + this.#offset;
    this.#redisClock = redisClock;
    this.#mirror = options.mirror.bind(options.gates, redisClock, options.block);
    this.#ledger = options.reconcile ? new Ledger(clock) : undefined;
    this.#outage = new OutageDecider({
      gates: options.gates,
      block: options.block,
      fallback: options.fallback,
      fleet: options.fleet,
      table: options.mirror,
      redisClock,
      clock,
      timeoutMs: options.timeoutMs,
      counts: options.counts,
      ledger: this.#ledger,
    });
    this.#batcher = new Batcher((route, groups, since) => this.#sendRoute(route, groups, since), options.maxSize, options.maxDelayMs);
    if (options.reconcile) options.breaker.addEventListener('close', () => this.#reconcile());
    if (this.#slots) {
      options.breaker.addEventListener('open', (e) => {
        for (const s of (e as CustomEvent<BreakerOpenDetail>).detail.shards) this.#outageBegan(s);
        // Permits held beyond the share that Redis no longer counts are given up now, not at the next sweep.
        this.#renewAllNow();
      });
      options.breaker.addEventListener('close', (e) => {
        for (const s of (e as CustomEvent<BreakerCloseDetail>).detail.shards) this.#recovered(s);
        // The fallback's holders are taken afresh in Redis at once: until they
        // are, Redis admits on top of them whoever asks without having seen the outage.
        this.#renewAllNow();
      });
    }
  }

  /** A shard's first failure since Redis last answered it: its outage's grace counts from now. */
  #outageBegan(breakerShard: number): void {
    if (!this.#outageSince.has(breakerShard)) this.#outageSince.set(breakerShard, this.#o.clock());
  }

  /** A shard is back: for two leases its holds keep to the share (see #hold). */
  #recovered(breakerShard: number): void {
    this.#outageSince.delete(breakerShard);
    this.#keepToShare(breakerShard);
  }

  #keepToShare(breakerShard: number): void {
    const until = this.#o.clock() + 2 * this.#leaseMs;
    if ((this.#recovering.get(breakerShard) ?? -Infinity) < until) this.#recovering.set(breakerShard, until);
  }

  /**
   * The store suspects an outage it made no call in (a heartbeat failed), or
   * its end (the next one answered): every shard keeps to its share for two
   * leases, as one just back from the fallback does. Another store's outage
   * holders may not be in Redis yet. @internal
   */
  outageSeen(): void {
    if (!this.#slots) return;
    const shards = this.#o.breakerPerShard ? this.#o.breaker.shards : 1;
    for (let s = 0; s < shards; s++) this.#keepToShare(s);
  }

  /** Registers what renews this limiter's held permits now (its Holdings). @internal */
  onRenewalDue(renewNow: () => void): void {
    this.#renewNow.push(renewNow);
  }

  #renewAllNow(): void {
    for (const f of this.#renewNow) f();
  }

  /**
   * The fleet's size changed (the store's heartbeat): the default fallback is
   * rescaled to 1/N in place, keeping the keys' fallback state. @internal
   */
  fleetChanged(nodes: number): void {
    this.#outage.fleetChanged(nodes);
  }

  /** Keys whose outage admissions are still to be charged to Redis. @internal */
  get owedKeys(): number {
    return this.#ledger?.size ?? 0;
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
    if (o.connection.state === 'down') {
      o.breaker.fail(-1, new Error('Redis connection is down'));
      return true;
    }
    return false;
  }

  /** A limiter with plans: this binding's gates are the plan of another version or carry now (its next batches say so). */
  retag(plan: PlanTag): void {
    this.#gateArgs = gateArgs(this.#o.gates, this.#o.block, planArgs(plan));
  }

  /** Decides a limit without Redis now (its shard is down), synchronously: for leased mode's `limitNow`. @internal */
  limitLocally(key: string, cost: number): Decision {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    return this.#outage.decide(key, OP_LIMIT, cost, 0) as Decision;
  }

  /**
   * Charges Redis with what the fallback admitted on the shards that are
   * back; keys of shards still open wait for theirs. One pass at a time.
   */
  #reconcile(): void {
    if (this.#reconciling || this.owedKeys === 0) return;
    this.#reconciling = true;
    void this.#drainLedger(this.#ledger!).then((completed) => {
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
  async #drainLedger(ledger: Ledger): Promise<boolean> {
    const breaker = this.#o.breaker;
    if (this.#o.lifecycle.closed) return false;
    // Keys, not charges: a key's charge may go out in front of its next call
    // meanwhile (see #enqueue), and must not go twice.
    const keys = ledger.keys();
    const size = this.#o.maxSize;
    let sent = 0;
    for (let start = 0; start < keys.length; start += size) {
      const chunk: [key: string, cost: number, from: number][] = [];
      for (let i = start; i < Math.min(start + size, keys.length); i++) {
        const key = keys[i]!;
        if (breaker.isOpen(this.#breakerShard(this.#shardOf(key)))) continue;
        const owed = ledger.take(key);
        if (owed !== undefined) chunk.push([key, owed.cost, owed.from]);
      }
      if (chunk.length === 0) continue;
      if (this.#o.lifecycle.closed) {
        for (const [key, cost, from] of chunk) ledger.record(key, cost, from);
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
    // As of when the fallback first admitted it, on Redis's clock (charge.lua):
    // a fleet that kept to its shares in the outage is not silenced after it
    // by a debt charged as if it were all spent at once now.
    const asOf = this.#o.clientTime ? from : from + this.#offset;
    return this.#enqueue(key, this.#shardOf(key), OP_CHARGE, cost, asOf).then(
      () => {
        this.#o.counts.reconciled += cost;
        return true;
      },
      (error: unknown) => {
        if (error instanceof RedisStateError) return true;
        this.#ledger?.record(key, cost, from);
        return false;
      },
    );
  }

  limit(key: string, cost: number, dryRun: boolean): Decision | Promise<Decision> {
    if (this.#o.lifecycle.closed) return Promise.reject(new StoreClosedError());
    const op = dryRun ? OP_PEEK : OP_LIMIT;
    const shard = this.#shardOf(key);
    if (this.#o.breaker.isOpen(this.#breakerShard(shard))) {
      // A batch still in flight for the key: decided after its answer (see #sendRoute).
      const pending = this.#inFlight.get(key);
      if (pending !== undefined) return pending.then(() => this.limit(key, cost, dryRun));
      return this.#outage.yielding(this.#outage.decide(key, op, cost, 0) as Decision);
    }
    // Not with a concurrency gate: another process's release frees a slot
    // at any moment, unseen by the mirror.
    if (this.#o.negativeCache && !this.#slots) {
      const local = this.#mirror.limit(key, cost, true);
      // With blockAfter, Redis must see every denial it counts toward a
      // block: only a block's denials are answered here then.
      if (!local.allowed && local.retryAfterMs > NEGATIVE_CACHE_MARGIN_MS && (!this.#escalates || local.reason === 'blocked')) {
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
    if (this.#o.breaker.isOpen(this.#breakerShard(shard))) {
      const pending = this.#inFlight.get(key);
      if (pending !== undefined) return pending.then(() => this.reserve(key, cost, maxWaitMs));
      return this.#outage.yielding(this.#outage.decide(key, OP_RESERVE, cost, maxWaitMs) as Reservation);
    }
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

  /**
   * The time a permit's holders count from, admitted or renewed in the
   * reply `out` whose key's states start at `m`: the script's time, or the
   * start of the concurrency gate's epoch when the state's is later (a clock
   * that went back, or another client's ahead with `time: 'client'`), so
   * that its epoch is the one they were counted in.
   */
  #heldAt(out: Float64Array, m: number): number {
    const g = this.#slotGate;
    const start = out[m + g * 4]! * this.#o.gates[g]!.core.p0;
    return Math.max(out[0]!, start);
  }

  /**
   * A limit whose admission holds concurrency slots, answered with the
   * script's time (what the slots count from). Never from the negative
   * cache: a slot can be freed by any process at any moment.
   */
  hold(key: string, cost: number): Held | Promise<Held> {
    if (this.#abandoned.length > 0) this.#expireAbandoned();
    // Counted among this store's own holders from the ask on, not from the
    // answer: asks in flight together must not all fit one free place of the share.
    this.#own.set(key, (this.#own.get(key) ?? 0) + cost);
    let held: Held | Promise<Held>;
    try {
      held = this.#hold(key, cost);
    } catch (error) {
      this.#disown(key, cost);
      throw error;
    }
    if (!(held instanceof Promise)) return this.#counted(key, cost, held);
    return held.then(
      (h) => this.#counted(key, cost, h),
      (error: unknown) => {
        this.#disown(key, cost);
        throw error;
      },
    );
  }

  /** This store's own holders of the key before the ask of `cost` (counted in #own since it was made). */
  #ownBefore(key: string, cost: number): number {
    return (this.#own.get(key) ?? 0) - cost;
  }

  #hold(key: string, cost: number): Held | Promise<Held> {
    if (this.#o.lifecycle.closed) return Promise.reject(new StoreClosedError());
    const shard = this.#shardOf(key);
    const breakerShard = this.#breakerShard(shard);
    if (this.#o.breaker.isOpen(breakerShard)) {
      const pending = this.#inFlight.get(key);
      if (pending !== undefined) return pending.then(() => this.#hold(key, cost));
      return this.#outage.yielding(this.#holdLocally(key, cost));
    }
    // Just back from an outage: the other stores' fallback holders may not
    // be in Redis yet (they come at their first renewal, and the others get
    // back to Redis when they do), so this store keeps to its share too.
    if ((this.#recovering.get(breakerShard) ?? -Infinity) > this.#o.clock()) {
      const over = this.#outage.overShare(this.#ownBefore(key, cost), cost, this.#slotGate, this.#leaseMs);
      if (over !== undefined) return over;
    }
    return this.#enqueue(key, shard, OP_LIMIT, cost, 0, true, true) as Promise<Held>;
  }

  /**
   * A hold without Redis: within this store's share of the slots, and the
   * fallback's table. For two leases after the last of them the key's shard
   * keeps to the share even when Redis answers (#hold): by then every holder
   * the fallbacks admitted has been renewed into Redis (taken afresh there)
   * or has ended.
   */
  #holdLocally(key: string, cost: number): Held {
    const shard = this.#breakerShard(this.#shardOf(key));
    const now = this.#o.clock();
    this.#recovering.set(shard, now + 2 * this.#leaseMs);
    this.#outageBegan(shard);
    // The grace: permits Redis admitted to other stores may be held beyond
    // their shares until Redis no longer counts them (see #renew), and this
    // store's fallback table never saw most of them.
    const graceLeft = this.#outageSince.get(shard)! + this.#graceMs - now;
    if (graceLeft > 0) return this.#outage.inGrace(this.#slotGate, graceLeft);
    return this.#outage.overShare(this.#ownBefore(key, cost), cost, this.#slotGate, this.#leaseMs) ?? this.#outage.hold(key, cost);
  }

  /**
   * How long after its outage began a store's fallback admits no new holder:
   * a permit Redis admitted is kept while Redis still counts it, at most two
   * leases after its last renewal (before the outage began); a sweep that
   * gives up those beyond the share can run up to half a lease late; and
   * another store's outage may have begun up to a timeout before this one's.
   */
  get #graceMs(): number {
    return 2.5 * this.#leaseMs + this.#o.timeoutMs;
  }

  /** An ask's slots stay among this store's own holders of the key when admitted. */
  #counted(key: string, cost: number, held: Held): Held {
    if (!held.decision.allowed) this.#disown(key, cost);
    return held;
  }

  /**
   * A permit was dropped without release (and collected): its holders count
   * among this store's own until its lease runs out, as they do in Redis and
   * in the fallback's table. @internal
   */
  abandon(key: string, cost: number, at: number): void {
    this.#abandoned.push([this.#countedUntil(at), key, cost]);
  }

  #expireAbandoned(): void {
    const now = this.#redisClock();
    const list = this.#abandoned;
    let n = 0;
    while (n < list.length && list[n]![0] <= now) {
      this.#disown(list[n]![1], list[n]![2]);
      n++;
    }
    if (n > 0) list.splice(0, n);
  }

  /** When holders counted from `at` (Redis's clock, or the fallback table's: the same estimate) stop counting. */
  #countedUntil(at: number): number {
    const lease = this.#leaseMs;
    return (Math.floor(at / lease) + 2) * lease;
  }

  #disown(key: string, cost: number): void {
    const left = (this.#own.get(key) ?? 0) - cost;
    if (left > 0) this.#own.set(key, left);
    else this.#own.delete(key);
  }

  /**
   * Returns a permit's slots: to Redis, or to the fallback's table when the
   * fallback admitted it or Redis cannot be reached (Redis then counts it
   * until its lease runs out: never fewer holders than there are).
   */
  async release(key: string, cost: number, at: number, source: DecisionSource): Promise<void> {
    this.#disown(key, cost);
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    const shard = this.#shardOf(key);
    if (source === 'fallback' || this.#o.breaker.isOpen(this.#breakerShard(shard))) {
      this.#outage.release(key, cost, at);
      return;
    }
    await this.#enqueue(key, shard, OP_RELEASE, cost, at);
  }

  /**
   * Renews a permit; a lost one leaves this store's own holders.
   *
   * One Redis counts is renewed there. While Redis is out of reach it stays
   * as it is as long as Redis (and every store's fallback table, seeded from
   * Redis) still counts it; once that count ends (before the next renewal),
   * it is kept only within this store's share of the slots, else lost: the
   * other stores' shares no longer see it. One the fallback admitted is
   * renewed in the fallback's table while Redis is down, and taken afresh in
   * Redis once it is back.
   */
  async renew(key: string, cost: number, at: number, source: DecisionSource): Promise<Renewal | undefined> {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    if (this.#abandoned.length > 0) this.#expireAbandoned();
    const shard = this.#shardOf(key);
    const fromFallback = source === 'fallback';
    // Lost: out of this store's own holders at once, so that the next
    // over-share permit of the same sweep sees one fewer (only the excess is given up).
    const lost = (): undefined => {
      this.#disown(key, cost);
      return undefined;
    };
    const unreachable = (): Renewal | undefined => {
      if (fromFallback) return this.#outage.renew(key, cost, at) ?? lost();
      // Kept while Redis still counts it past the next renewal (one failed
      // renewal loses nothing), then only within the share.
      if (this.#redisClock() + this.#leaseMs / 2 < this.#countedUntil(at)) return { at, source };
      return (this.#own.get(key) ?? 0) <= this.#outage.slotShare ? { at, source } : lost();
    };
    if (this.#o.breaker.isOpen(this.#breakerShard(shard))) return unreachable();
    // A time no lease epoch of Redis's has: taken afresh, never mistaken for another holder's count.
    const renewal = this.#enqueue(key, shard, OP_RENEW, cost, fromFallback ? 0 : at) as Promise<Renewal | undefined>;
    return renewal.then((r) => {
      if (r === undefined) return lost();
      if (fromFallback) this.#outage.release(key, cost, at);
      return r;
    }, unreachable); // Redis failed the call: as when it is down
  }

  async refund(key: string, cost: number): Promise<void> {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    await this.#enqueue(key, this.#shardOf(key), OP_REFUND, cost, 0);
  }

  async reset(key: string): Promise<void> {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    await this.#enqueue(key, this.#shardOf(key), OP_RESET, 1, 0);
  }

  /**
   * Blocks the key in Redis (or unblocks it: 0), on Redis's clock. Not
   * without Redis: a block only this process kept would hold in no other,
   * so it rejects with RedisUnavailableError and blocks nothing.
   */
  async block(key: string, durationMs: number): Promise<void> {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    const shard = this.#shardOf(key);
    if (this.#down(shard)) throw this.#unavailable(undefined);
    await this.#enqueue(key, shard, OP_BLOCK, 1, durationMs);
  }

  /** A penalty (OP_CHARGE as of now); while Redis is unreachable the fallback takes it and the ledger owes it to Redis. */
  async penalize(key: string, cost: number): Promise<void> {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    const shard = this.#shardOf(key);
    if (!this.#down(shard)) {
      try {
        await this.#enqueue(key, shard, OP_CHARGE, cost, Infinity);
        return;
      } catch (error) {
        if (error instanceof RedisStateError) throw error;
        // Redis failed the batch: settled like an outage's admission.
      }
    }
    this.#outage.penalize(key, cost);
  }

  /**
   * Lowers the key in Redis (OP_LOWER, lower.lua: computed and applied in
   * the script, so that stores applying one report at once lower it once).
   * While Redis is unreachable, or when it fails the batch, the fallback's
   * table is lowered instead and nothing is owed to Redis (outage.ts).
   */
  async lower(key: string, remaining: number): Promise<void> {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    const shard = this.#shardOf(key);
    if (!this.#down(shard)) {
      try {
        await this.#enqueue(key, shard, OP_LOWER, 0, remaining);
        return;
      } catch (error) {
        if (error instanceof RedisStateError) throw error;
        // Redis failed the batch: lowered where the outage decides.
      }
    }
    this.#outage.lower(key, remaining);
  }

  #unavailable(cause: unknown): RedisUnavailableError {
    return new RedisUnavailableError(this.#o.connection.target, this.#o.timeoutMs, cause ?? new Error('the circuit breaker is open'));
  }

  #enqueue(key: string, shard: number, op: number, cost: number, maxWait: number, urgent = true, hold = false): Promise<Decision | Reservation | LeaseReply | Held | Renewal | undefined> {
    // A key that still owes Redis what the fallback admitted for it pays that
    // first, in the same script call: otherwise Redis, which has not heard of
    // the outage yet, would grant it the whole limit again.
    const ledger = this.#ledger;
    if (op !== OP_CHARGE && ledger !== undefined && ledger.size > 0) {
      const owed = ledger.take(key);
      if (owed !== undefined) void this.#charge(key, owed.cost, owed.from);
    }
    // One route per breaker state: the whole server on a single Redis, the shard on a Cluster.
    return new Promise((resolve, reject) => this.#batcher.add(this.#breakerShard(shard), shard, key, { op, cost, maxWait, hold, resolve, reject }, urgent));
  }

  /** Whether calls of this binding are closed out (the store's `close()`). @internal */
  get closed(): boolean {
    return this.#o.lifecycle.closed;
  }

  /**
   * The store is closing: sends what is queued, and resolves once every batch
   * in flight is answered (or timed out), so that quitting the client after
   * cannot fail a call. @internal
   */
  close(): Promise<void> {
    return this.#batcher.settle();
  }

  /**
   * Sends one route's batch as one script call: every shard queued on a
   * single server (the script told each entry's anchor), or one shard of a
   * Cluster. The call is routed by its first shard's anchor. Its calls have
   * waited since `since` (performance.now()) for batches in flight: what
   * is left of the timeout is what they wait on this one, so that no call
   * waits on Redis longer than `timeoutMs` in all.
   */
  async #sendRoute(route: number, groups: Groups, since: number): Promise<void> {
    // Registered as in flight for its keys until its answer is in the mirror
    // (or its calls decided): a fallback decision on one of them waits for
    // it, so that it counts what Redis admitted meanwhile.
    const earlier = new Set<Promise<void>>();
    let done!: () => void;
    const settled = new Promise<void>((resolve) => (done = resolve));
    for (const entries of groups.values()) {
      for (const key of entries.keys()) {
        const before = this.#inFlight.get(key);
        if (before !== undefined) earlier.add(before);
        this.#inFlight.set(key, settled);
      }
    }
    try {
      await this.#sendBatch(route, groups, since, earlier);
    } finally {
      done();
      for (const entries of groups.values()) for (const key of entries.keys()) if (this.#inFlight.get(key) === settled) this.#inFlight.delete(key);
    }
  }

  async #sendBatch(route: number, groups: Groups, since: number, earlier: ReadonlySet<Promise<void>>): Promise<void> {
    const shard = groups.keys().next().value!;
    const { lengths, keys, specs, anchors } = encodeEntries(groups);
    const sentAt = this.#o.clock();
    // The deadline on the script's clock (Redis's, or the client's in client
    // time) after which the script refuses the batch: by then this binding
    // has decided it by its fallback.
    const budget = Math.max(1, this.#o.breaker.timeoutNow - (performance.now() - since));
    const deadline = sentAt + (this.#o.clientTime ? 0 : this.#offset) + budget;
    const argv: (string | Uint8Array)[] = [this.#o.clientTime ? String(sentAt) : '', ...this.#gateArgs, lengths, keys, specs, String(deadline)];
    if (anchors !== '') argv.push(anchors);
    let reply: Uint8Array | undefined;
    if (!this.#down(shard)) {
      reply = await this.#o.breaker.run(route, () =>
        this.#send(this.#o.shardKey(shard), argv).catch((error: unknown) => {
          // A refused late batch says what time it is on Redis: a clock
          // offset learned wrong (or not yet) must not refuse every batch.
          const late = error instanceof Error ? /^TOOLATE ([\d.]+)/.exec(error.message) : null;
          // (It ran just before its answer: the batch may have waited long in a frozen server, so not the send's midpoint.)
          if (late !== null && !this.#o.clientTime) this.#offset = Number(late[1]) - this.#o.clock();
          throw error;
        }),
        budget,
      );
    }
    if (reply === undefined) {
      if (this.#slots) this.#outageBegan(route);
      // Batches sent before this one for the same keys may still be answered
      // (a client refusing this call at once, its queue full, while earlier
      // ones are on the wire): their answers go into the mirror first, or
      // the fallback would admit again what Redis has just admitted.
      if (earlier.size > 0) await Promise.all(earlier);
      // Redis failed this batch: the fallback decides every call in it, in order.
      for (const entries of groups.values()) {
        for (const [key, hits] of entries) {
          for (const hit of hits) {
            if (hit.op === OP_CHARGE || hit.op === OP_RENEW || hit.op === OP_LOWER) hit.reject(new Error('Redis is down'));
            else if (hit.op === OP_BLOCK) hit.reject(this.#unavailable(undefined));
            else if (hit.hold === true) hit.resolve(this.#holdLocally(key, hit.cost));
            else hit.resolve(this.#outage.decide(key, hit.op, hit.cost, hit.maxWait));
          }
        }
      }
      return;
    }
    const receivedAt = this.#o.clock();
    const metrics = this.#o.metrics;
    let hitCount = 0;
    for (const entries of groups.values()) for (const hits of entries.values()) hitCount += hits.length;
    if (metrics !== undefined) {
      metrics.record('cellgate.redis.batch.size', hitCount);
      metrics.record('cellgate.redis.batch.duration', receivedAt - sentAt);
    }
    const out = decodeReply(reply);
    // Answered: a failure after this one begins another outage (a closed breaker's blip ends here too).
    if (this.#slots && !this.#o.breaker.isOpen(route)) this.#outageSince.delete(route);
    if (!this.#o.clientTime) this.#offset = out[0]! - (sentAt + receivedAt) / 2;
    // Every gate's state, and the block gate's after them.
    const gates = this.#capacity.length + 1;
    let r = 1;
    let m = r + hitCount * 4;
    for (const [keyShard, entries] of groups) {
      for (const [key, hits] of entries) {
        // Whether the key's recorded plan decided it: its reply mirrors no state of this plan's.
        let stale = false;
        for (const hit of hits) {
          const flags = out[r]!;
          const remaining = out[r + 1]!;
          const retry = out[r + 2]!;
          const reset = out[r + 3]!;
          r += 4;
          if (flags < 0) {
            hit.reject(new RedisStateError(this.#o.shardKey(keyShard), key));
            continue;
          }
          const allowed = replyAllowed(flags);
          let gate = replyGate(flags);
          if ((flags & STALE) !== 0) {
            // Decided by the key's newer recorded plan (lua/plan.lua): its gate
            // may be one this plan lacks; the limiter resolves the key again.
            if (gate >= this.#limit.length) gate = this.#limit.length - 1;
            this.#o.plan?.stale(key);
            stale = true;
          }
          const limit = this.#limit[gate]!;
          const capacity = this.#capacity[gate]!;
          if (hit.op === OP_LIMIT || hit.op === OP_PEEK) {
            this.#o.counts.redis++;
            let decision: Decision = { allowed, limit, capacity, gate, remaining, retryAfterMs: retry, resetAfterMs: reset, source: 'redis' };
            if ((flags & BLOCKED) !== 0) decision = { ...decision, reason: 'blocked' };
            hit.resolve(hit.hold === true ? { decision, at: this.#heldAt(out, m) } : decision);
          } else if (hit.op === OP_RENEW) {
            hit.resolve(allowed ? { at: this.#heldAt(out, m), source: 'redis' } : undefined);
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
        // The mirror answers a blocked key's denials for at most
        // BLOCK_TRUST_MS (an unblock elsewhere reaches this process by then),
        // and any denial of a limiter with plans no longer (a plan changed
        // elsewhere: this process hears of it at its next call to Redis);
        // the fallback keeps the whole states for an outage.
        if (stale) {
          // The mirror and the fallback keep what they knew of the key, rather than the reply's nothing.
          m += gates * 4;
          continue;
        }
        const trusted = out[0]! + BLOCK_TRUST_MS;
        for (let g = this.#firstCapped; g < gates; g++) {
          const at = m + g * 4 + 3;
          const exp = (this.#exps[g] = out[at]!);
          if (exp > trusted) out[at] = trusted;
        }
        this.#mirror.putStates(key, out, m);
        for (let g = this.#firstCapped; g < gates; g++) out[m + g * 4 + 3] = this.#exps[g]!;
        this.#outage.seed(key, out, m);
        m += gates * 4;
      }
    }
  }
}

/** What a limiter with plans sends with a binding's batches (wire.ts). */
function planArgs(plan: PlanTag | undefined): PlanArgs | undefined {
  return plan === undefined ? undefined : { name: plan.name, version: plan.version, carry: carryCode(plan.carry) };
}
