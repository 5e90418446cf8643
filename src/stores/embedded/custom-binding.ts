import type { Clock } from '../../core/clock.js';
import type { Decision, Reservation } from '../../limiter/decision.js';
import { checkStep, type RateLimiter, type RateLimitStep } from '../../policies/rate-limiter.js';
import type { StoreBinding } from '../../limiter/store.js';
import { ExpiryQueue } from '../../core/expiry-queue.js';
import { MIN_RETRY_MS } from '../../../build/abi.js';

/** Most moments a reservation tries before it reports the wait as too long. */
const MAX_RESERVE_ROUNDS = 1000;

/** A key's state and when it may be forgotten. */
interface Entry {
  state: unknown;
  until: number;
}

/**
 * How long a key refused by a full map of states that never run out (a
 * custom limiter without `ttlMs`) is told to wait: nothing says when room
 * comes, and the wait must be finite.
 */
const FULL_RETRY_MS = 1000;

/** States that ran out, dropped per new key: more than one, so they cannot pile up faster than new keys come. */
const RECLAIM_PER_NEW_KEY = 2;
/** Stale pairs the expiry queue may hold beyond twice the live states before it is rebuilt. */
const QUEUE_SLACK = 1024;

/** What a {@link CustomBinding} does at its cap, from its store's `maxKeys` and `whenFull`. @internal */
export interface CustomBounds {
  readonly maxKeys: number;
  readonly evict: boolean;
  /** Told each time a new key met the map full: whether a state was evicted for it (else it was refused). */
  readonly onFull: (evicted: boolean) => void;
}

/**
 * Decides for a custom {@link RateLimiter} in process: each key's state in a
 * `Map`. States that have run out are dropped; a state still live is kept
 * however many keys come (a dropped debt would be a fresh budget), up to
 * `maxKeys`, where `whenFull` decides as in the table: deny the new key, or
 * evict the oldest. The limiter's pure `decide` does the arithmetic.
 */
export class CustomBinding implements StoreBinding {
  readonly #limiter: RateLimiter;
  readonly #clock: Clock;
  readonly #bounds: CustomBounds;
  readonly #states = new Map<string, Entry>();
  /** When each state may run out (states without `ttlMs` never do, and are not in it). */
  readonly #expiries = new ExpiryQueue();
  #popped = 0;
  readonly inProcess = true;

  constructor(limiter: RateLimiter, clock: Clock, bounds: CustomBounds) {
    this.#limiter = limiter;
    this.#clock = clock;
    this.#bounds = bounds;
  }

  /** The key's state now (its initial state if none, or if it has run out). */
  #state(key: string, now: number): unknown {
    const entry = this.#states.get(key);
    if (entry === undefined || entry.until <= now) return this.#limiter.initial();
    return entry.state;
  }

  /** Stores the key's new state; false when the map is full and the key is refused (deny mode). */
  #put(key: string, state: unknown, ttlMs: number | undefined, now: number): boolean {
    const until = ttlMs === undefined ? Infinity : now + ttlMs;
    if (until <= now) {
      this.#states.delete(key);
      return true;
    }
    if (!this.#states.has(key)) {
      this.#reclaim(now, RECLAIM_PER_NEW_KEY);
      if (this.#states.size >= this.#bounds.maxKeys && !this.#makeRoom(now)) return false;
    }
    this.#states.set(key, { state, until });
    if (until !== Infinity) {
      const expiries = this.#expiries;
      expiries.push(until, key);
      if (expiries.size > 2 * this.#states.size + QUEUE_SLACK) {
        expiries.rebuild((function* (states) {
          for (const [k, e] of states) if (e.until !== Infinity) yield [e.until, k] as const;
        })(this.#states));
      }
    }
    return true;
  }

  /**
   * Drops up to `most` states that ran out, earliest first; returns how many.
   * Pairs of states renewed since (or deleted) are stale and skipped: each
   * pair is popped once, so this is O(log n) per state written, with no scan.
   */
  #reclaim(now: number, most: number): number {
    const expiries = this.#expiries;
    let freed = 0;
    while (freed < most && expiries.nextAt() <= now) {
      const key = expiries.pop()!;
      this.#popped++;
      const entry = this.#states.get(key);
      if (entry !== undefined && entry.until <= now) {
        this.#states.delete(key);
        freed++;
      }
    }
    return freed;
  }

  /** Live states now (a scan: for `stats()`). */
  liveCount(now: number): number {
    let n = 0;
    for (const entry of this.#states.values()) if (entry.until > now) n++;
    return n;
  }

  /** Expiry pairs examined so far, and pairs queued now: the work of reclaiming (for tests of its bound). */
  get reclaimWork(): { popped: number; queued: number } {
    return { popped: this.#popped, queued: this.#expiries.size };
  }

  /** States held, live or not yet reclaimed (for tests). */
  get size(): number {
    return this.#states.size;
  }

  /** Frees one entry at least: states that ran out, else (evict mode) the oldest. */
  #makeRoom(now: number): boolean {
    if (this.#reclaim(now, 1) > 0) return true;
    this.#bounds.onFull(this.#bounds.evict);
    if (!this.#bounds.evict) return false;
    for (const key of this.#states.keys()) {
      this.#states.delete(key);
      break;
    }
    return true;
  }

  /** The denial of a key refused for lack of room: retry when the first state runs out. */
  #refused(now: number): Decision {
    // The queue's head may be stale (renewed since), so this may be early: asking again then is safe.
    const next = this.#expiries.nextAt();
    const wait = Number.isFinite(next) ? Math.max(next - now, MIN_RETRY_MS) : FULL_RETRY_MS;
    return toDecision(this.#limiter.capacity, { allowed: false, retryAfterMs: wait }, 'local');
  }

  #step(state: unknown, now: number, cost: number): RateLimitStep<unknown> {
    return checkStep(this.#limiter.decide(state, now, cost));
  }

  limit(key: string, cost: number, dryRun: boolean): Decision {
    const now = this.#clock();
    const step = this.#step(this.#state(key, now), now, cost);
    if (step.allowed && !dryRun && !this.#put(key, step.state, step.ttlMs, now)) return this.#refused(now);
    return toDecision(this.#limiter.capacity, step, 'local');
  }

  limitNow(key: string, cost: number): Decision {
    return this.limit(key, cost, false);
  }

  limitMany(keys: readonly string[], cost: number): Decision[] {
    return keys.map((key) => this.limit(key, cost, false));
  }

  limitManyNow(keys: readonly string[], cost: number): Decision[] {
    return this.limitMany(keys, cost);
  }

  reserve(key: string, cost: number, maxWaitMs: number): Reservation {
    const now = this.#clock();
    const booked = reserveStep(this.#limiter, this.#state(key, now), now, cost, maxWaitMs);
    if (booked.allowed && !this.#put(key, booked.step.state, booked.step.ttlMs === undefined ? undefined : booked.waitMs + booked.step.ttlMs, now)) {
      const refused = this.#refused(now);
      return toReservation(this.#limiter.capacity, false, refused.retryAfterMs, now, 0, 'local');
    }
    const remaining = booked.allowed ? (booked.step.remaining ?? 0) : 0;
    return toReservation(this.#limiter.capacity, booked.allowed, booked.waitMs, now, remaining, 'local');
  }

  refund(key: string, cost: number): void {
    const refund = this.#limiter.refund;
    if (refund === undefined) return;
    const now = this.#clock();
    const entry = this.#states.get(key);
    if (entry === undefined || entry.until <= now) return;
    entry.state = refund.call(this.#limiter, entry.state, now, cost);
  }

  reset(key: string): void {
    this.#states.delete(key);
  }
}

/** What {@link reserveStep} found. */
export type Booking =
  | { readonly allowed: true; readonly waitMs: number; readonly step: Extract<RateLimitStep<unknown>, { allowed: true }> }
  | { readonly allowed: false; readonly waitMs: number };

/**
 * The earliest moment from `now` at which `decide` admits the request, tried
 * at each moment the limiter names, up to `maxWaitMs` ahead.
 * @internal
 */
export function reserveStep(limiter: RateLimiter, state: unknown, now: number, cost: number, maxWaitMs: number): Booking {
  let t = now;
  for (let round = 0; round < MAX_RESERVE_ROUNDS; round++) {
    const step = checkStep(limiter.decide(state, t, cost));
    if (step.allowed) return t - now <= maxWaitMs ? { allowed: true, waitMs: t - now, step } : { allowed: false, waitMs: t - now };
    t += step.retryAfterMs;
    if (t - now > maxWaitMs) return { allowed: false, waitMs: t - now };
  }
  return { allowed: false, waitMs: t - now };
}

/**
 * A custom limiter's step as a {@link Decision}. A custom limiter is one
 * gate whose configured limit is its capacity.
 * @internal
 */
export function toDecision(capacity: number, step: RateLimitStep<unknown>, source: Decision['source']): Decision {
  if (step.allowed) return { allowed: true, limit: capacity, capacity, gate: 0, remaining: step.remaining ?? 0, retryAfterMs: 0, resetAfterMs: step.ttlMs ?? 0, source };
  return { allowed: false, limit: capacity, capacity, gate: 0, remaining: step.remaining ?? 0, retryAfterMs: step.retryAfterMs, resetAfterMs: 0, source };
}

/**
 * A custom limiter's booking (made `waitMs` after `now`) as a {@link Reservation}.
 * @internal
 *
 * @example
 * ```ts
 * return toReservation(limiter.capacity, true, booked.waitMs, now, booked.step.remaining ?? 0, 'local');
 * ```
 */
export function toReservation(capacity: number, allowed: boolean, waitMs: number, now: number, remaining: number, source: Reservation['source']): Reservation {
  return { allowed, waitMs, at: now + waitMs, limit: capacity, capacity, gate: 0, remaining, source };
}
