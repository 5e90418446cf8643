import type { Clock } from '../../core/clock.js';
import type { Decision, Reservation } from '../../limiter/decision.js';
import { ConfigError, StoreClosedError } from '../../errors.js';
import { optionNames, strictOptions } from '../../core/options.js';
import { checkDuration, type Duration } from '../../core/duration.js';
import { CODE } from '../../policies/policy.js';
import type { Policy } from '../../policies/index.js';
import { configuredLimit } from '../../policies/configured-limit.js';
import type { StoreBinding } from '../../limiter/store.js';
import type { RedisBinding, SourceCounts } from './redis-binding.js';
import type { LeaseReply } from './wire.js';

/**
 * Options of leased mode (`new RedisStore({ mode: 'leased', lease })`).
 *
 * @example
 * ```ts
 * const store = new RedisStore({ client: redis, mode: 'leased', lease: { maxShare: 0.05, ttlMs: 500 } });
 * ```
 */
export interface LeaseOptions {
  /**
   * The largest lease, as a share of the policy's capacity (default 0.1): of
   * a window's limit, a bucket's capacity, or GCRA's burst plus the slots of
   * half a `ttlMs`. Capacity parked in other processes' leases is at most
   * this share per process.
   */
  maxShare?: number;
  /**
   * How long leased units stay spendable after the grant (default 1000 ms;
   * never past the end of a window or refill interval, where spending them
   * would exceed the next one's limit), from 10 ms to 1 hour. GCRA leases
   * book slots up to half of it ahead.
   */
  ttlMs?: Duration;
}

const LEASE_OPTIONS = optionNames<keyof LeaseOptions>({ maxShare: true, ttlMs: true });

/** Validated {@link LeaseOptions}. */
export interface LeaseSettings {
  readonly maxShare: number;
  readonly ttlMs: number;
}

/** Validates leased mode's options, naming the bad one. */
export function leaseSettings(options: unknown): LeaseSettings {
  const o = options === undefined ? {} : strictOptions(options, 'new RedisStore({ lease })', LEASE_OPTIONS, 'lease');
  const maxShare = o.maxShare === undefined ? 0.1 : o.maxShare;
  if (typeof maxShare !== 'number' || !(maxShare > 0 && maxShare <= 1)) {
    throw new ConfigError('lease.maxShare', maxShare, 'a number above 0 and at most 1');
  }
  const ttlMs = o.ttlMs === undefined ? 1000 : checkDuration(o.ttlMs, 'lease.ttlMs', { min: 10, max: 3_600_000 });
  return { maxShare, ttlMs };
}

/** Leased units of one grant. */
interface Segment {
  /** Units granted. */
  readonly k: number;
  /** Units spent. */
  used: number;
  /** When the last unit may be spent (unit j at `lastAt - (k - j) * step`). */
  readonly lastAt: number;
  readonly validUntil: number;
}

/** What this process holds for one key. */
interface KeyLease {
  seg: Segment | undefined;
  /** The next grant, prefetched before `seg` runs dry. */
  next: Segment | undefined;
  pending: Promise<void> | undefined;
  /** Redis denied a lease until then: deny locally, no round trip. */
  deniedUntil: number;
  resetAfterMs: number;
  /** Cost asked for since `since`, to size the next lease. */
  demand: number;
  since: number;
  /** Demand per millisecond, smoothed (0: not measured yet). */
  rate: number;
  /** Per GCRA gate, this process's own theoretical arrival time (see `#pace`). */
  tats: Float64Array | undefined;
  /**
   * The gate its decisions report: the one that bound Redis's last denial of
   * a lease for the key (a grant names none: gate 0 until then).
   */
  gate: number;
}

/** Most keys whose leases are kept; past it, lapsed ones are dropped. */
const MAX_LEASED_KEYS = 100_000;

/**
 * Leased mode's binding: spends capacity leased from Redis in process,
 * synchronously, and leases more in the background through the strict
 * binding's batches. Every unit spent here was debited from the shared state
 * first, so the fleet never admits more than the policy; what it does not
 * cover (no lease yet, a lease run dry, a cost larger than a lease) Redis
 * decides, and outages fall back exactly as in strict mode.
 */
export class LeasedBinding implements StoreBinding {
  readonly #strict: RedisBinding;
  readonly #clock: Clock;
  readonly #counts: SourceCounts;
  readonly #horizonMs: number;
  readonly #ttlMs: number;
  /** Largest lease, in units. */
  readonly #maxUnits: number;
  /** Spacing of GCRA slots (the smallest emission interval of the gates; 0 without GCRA). */
  readonly #step: number;
  /** Per gate, the limit it was configured with and what it passes at once (Decision.limit, Decision.capacity). */
  readonly #limit: number[];
  readonly #capacity: number[];
  /**
   * The GCRA gates as [interval, burst * interval] pairs: this process also
   * paces its own spending by them. Slot times are estimated from each
   * answer's arrival, and two answers' errors differ, so without this two
   * slots of consecutive leases could be spent closer than the policy allows.
   */
  readonly #pace: number[];
  /** The gate index of each pair of `#pace`. */
  readonly #paceGate: number[];
  #leases = new Map<string, KeyLease>();
  /** Last lease round trip (ms): how long a sync caller without a lease should wait. */
  #roundTripMs = 1;

  constructor(strict: RedisBinding, gates: readonly Policy[], clock: Clock, counts: SourceCounts, settings: LeaseSettings) {
    this.#strict = strict;
    this.#clock = clock;
    this.#counts = counts;
    this.#ttlMs = settings.ttlMs;
    this.#horizonMs = settings.ttlMs / 2;
    let units = Infinity;
    let step = Infinity;
    this.#pace = [];
    this.#paceGate = [];
    for (const [gate, { core }] of gates.entries()) {
      if (core.code === CODE.gcra) {
        this.#pace.push(core.p0, core.p2);
        this.#paceGate.push(gate);
        // p0 emission interval, p1 burst: what a lease could book now and over the horizon.
        units = Math.min(units, core.p1 + this.#horizonMs / core.p0);
        step = Math.min(step, core.p0);
      } else {
        units = Math.min(units, core.capacity);
      }
    }
    this.#maxUnits = Math.max(1, Math.floor(settings.maxShare * units));
    this.#step = step === Infinity ? 0 : step;
    this.#limit = gates.map(configuredLimit);
    this.#capacity = gates.map((g) => g.core.capacity);
  }

  /** A decision of this binding, reporting `gate`. */
  #decision(allowed: boolean, gate: number, remaining: number, retryAfterMs: number, resetAfterMs: number, source: Decision['source']): Decision {
    return { allowed, limit: this.#limit[gate]!, capacity: this.#capacity[gate]!, gate, remaining, retryAfterMs, resetAfterMs, source };
  }

  limit(key: string, cost: number, dryRun: boolean): Decision | Promise<Decision> {
    if (this.#strict.closed) return Promise.reject(new StoreClosedError());
    if (dryRun) return this.#strict.limit(key, cost, true);
    return this.#local(key, cost, this.#clock()) ?? this.#miss(key, cost);
  }

  /** Decides without waiting: from the lease, or (no lease yet) a denial while one is fetched. */
  limitNow(key: string, cost: number): Decision {
    if (this.#strict.closed) throw new StoreClosedError();
    const local = this.#local(key, cost, this.#clock());
    if (local !== undefined) return local;
    if (this.#strict.isDown(key)) return this.#strict.limitLocally(key, cost);
    const now = this.#clock();
    const lease = this.#entry(key, now);
    void this.#fetch(key, lease, cost, now, true);
    return this.#decision(false, lease.gate, 0, this.#roundTripMs, 0, 'lease');
  }

  limitMany(keys: readonly string[], cost: number): Promise<Decision[]> {
    return Promise.all(keys.map((key) => this.limit(key, cost, false)));
  }

  /** {@link LeasedBinding.limitNow} for each key in turn. */
  limitManyNow(keys: readonly string[], cost: number): Decision[] {
    return keys.map((key) => this.limitNow(key, cost));
  }

  // Bookings ask Redis: they are exact there, and a lease's units stay the lease's.
  reserve(key: string, cost: number, maxWaitMs: number): Reservation | Promise<Reservation> {
    return this.#strict.reserve(key, cost, maxWaitMs);
  }

  refund(key: string, cost: number): Promise<void> {
    return this.#strict.refund(key, cost);
  }

  reset(key: string): Promise<void> {
    this.#leases.delete(key);
    return this.#strict.reset(key);
  }

  /**
   * A block in Redis, where every process's next lease request meets it; a
   * lease granted before it is spent until it runs out (`lease.ttlMs`), in
   * this process too unless it is dropped here, as it is.
   */
  block(key: string, durationMs: number): Promise<void> {
    this.#leases.delete(key);
    return this.#strict.block(key, durationMs);
  }

  penalize(key: string, cost: number): Promise<void> {
    return this.#strict.penalize(key, cost);
  }

  /**
   * A lower in Redis (the strict binding's, atomic there); the key's lease
   * held here is dropped first, as a block drops it: its units were taken
   * from Redis already, so what Redis keeps is what the upstream said, and
   * dropping them admits less, never more. The next call leases afresh
   * from the lowered state.
   */
  lower(key: string, remaining: number): Promise<void> {
    this.#leases.delete(key);
    return this.#strict.lower(key, remaining);
  }

  /** A decision from what this process holds for the key, or undefined when it holds nothing that covers it. */
  #local(key: string, cost: number, now: number): Decision | undefined {
    const lease = this.#leases.get(key);
    if (lease === undefined) return undefined;
    lease.demand += cost;
    let seg = lease.seg;
    while (seg !== undefined && (now >= seg.validUntil || seg.used >= seg.k)) {
      seg = lease.seg = lease.next;
      lease.next = undefined;
    }
    if (seg === undefined || seg.k - seg.used < cost) {
      // Nothing held covers it; Redis's last denial still stands until it runs out.
      if (now >= lease.deniedUntil) return undefined;
      this.#counts.local++;
      return this.#decision(false, lease.gate, 0, lease.deniedUntil - now, lease.resetAfterMs, 'local');
    }
    // A GCRA lease is a run of slots: unit j of k may be spent at lastAt - (k - j) * step.
    const at = seg.lastAt - (seg.k - seg.used - cost) * this.#step;
    if (at > now) {
      this.#counts.lease++;
      return this.#decision(false, lease.gate, 0, at - now, 0, 'lease');
    }
    const tats = lease.tats;
    if (tats !== undefined) {
      const pace = this.#pace;
      for (let g = 0; g < tats.length; g++) {
        const wait = Math.max(tats[g]!, now) + cost * pace[2 * g]! - pace[2 * g + 1]! - now;
        if (wait > 0) {
          this.#counts.lease++;
          return this.#decision(false, this.#paceGate[g]!, 0, wait, 0, 'lease');
        }
      }
      for (let g = 0; g < tats.length; g++) tats[g] = Math.max(tats[g]!, now) + cost * this.#pace[2 * g]!;
    }
    seg.used += cost;
    this.#counts.lease++;
    const left = seg.k - seg.used;
    // Prefetch: the next lease is asked for while half of this one is left.
    if (lease.pending === undefined && lease.next === undefined && left * 2 <= seg.k) void this.#fetch(key, lease, 1, now, false);
    return this.#decision(true, lease.gate, left, 0, 0, 'lease');
  }

  async #miss(key: string, cost: number): Promise<Decision> {
    if (this.#strict.isDown(key)) return this.#strict.limit(key, cost, false);
    const now = this.#clock();
    await this.#fetch(key, this.#entry(key, now), cost, now, true);
    return this.#local(key, cost, this.#clock()) ?? this.#strict.limit(key, cost, false);
  }

  #entry(key: string, now: number): KeyLease {
    let lease = this.#leases.get(key);
    if (lease === undefined) {
      if (this.#leases.size >= MAX_LEASED_KEYS) this.#sweep(now);
      const tats = this.#pace.length === 0 ? undefined : new Float64Array(this.#pace.length / 2).fill(-Infinity);
      lease = { seg: undefined, next: undefined, pending: undefined, deniedUntil: 0, resetAfterMs: 0, demand: 0, since: now, rate: 0, tats, gate: 0 };
      this.#leases.set(key, lease);
    }
    return lease;
  }

  /** Drops keys holding nothing spendable; if none, the oldest. */
  #sweep(now: number): void {
    for (const [key, lease] of this.#leases) {
      const live = lease.pending !== undefined || (lease.seg !== undefined && lease.seg.validUntil > now) || lease.deniedUntil > now;
      if (!live) this.#leases.delete(key);
    }
    const over = this.#leases.size - MAX_LEASED_KEYS * 0.9;
    let i = 0;
    for (const key of this.#leases.keys()) {
      if (i++ >= over) break;
      this.#leases.delete(key);
    }
  }

  /**
   * Leases units for the key (one request in flight per key), sized by the
   * demand seen since the last request: the units this process would spend
   * over half a lease lifetime, at least `cost`, at most `maxShare`.
   */
  #fetch(key: string, lease: KeyLease, cost: number, now: number, urgent: boolean): Promise<void> {
    if (lease.pending !== undefined) return lease.pending;
    let want = cost;
    const elapsed = now - lease.since;
    if (elapsed > 0 && lease.demand > 0) {
      const rate = lease.demand / elapsed;
      lease.rate = lease.rate === 0 ? rate : (lease.rate + rate) / 2;
      want = Math.max(cost, Math.min(this.#maxUnits, Math.ceil(lease.rate * this.#horizonMs)));
    }
    lease.demand = 0;
    lease.since = now;
    const pending = this.#strict.lease(key, want, this.#horizonMs, urgent).then(
      (reply) => {
        lease.pending = undefined;
        if (reply !== undefined) this.#grant(lease, reply);
      },
      () => {
        lease.pending = undefined; // a typed error of the key (RedisStateError): strict mode's call reports it
      },
    );
    lease.pending = pending;
    return pending;
  }

  #grant(lease: KeyLease, reply: LeaseReply): void {
    this.#roundTripMs = Math.max(1, reply.roundTripMs);
    lease.gate = reply.gate;
    if (reply.granted === 0) {
      lease.deniedUntil = reply.retryAt;
      lease.resetAfterMs = reply.resetAfterMs;
      return;
    }
    const seg: Segment = {
      k: reply.granted,
      used: 0,
      lastAt: reply.lastAt,
      validUntil: Math.min(reply.validUntil, reply.grantedAt + this.#ttlMs),
    };
    if (lease.seg === undefined || lease.seg.used >= lease.seg.k) lease.seg = seg;
    else lease.next = seg;
  }
}
