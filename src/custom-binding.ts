import type { Clock } from './clock.js';
import type { Decision, Reservation } from './decision.js';
import { checkStep, type RateLimiter, type RateLimitStep } from './rate-limiter.js';
import type { StoreBinding } from './store.js';

/** Most moments a reservation tries before it reports the wait as too long. */
const MAX_RESERVE_ROUNDS = 1000;

/** A key's state and when it may be forgotten. */
interface Entry {
  state: unknown;
  until: number;
}

/**
 * Decides for a custom {@link RateLimiter} in process: each key's state in a
 * `Map`, bounded to `maxKeys` (past it, states that have run out go first,
 * then the oldest). The limiter's pure `decide` does the arithmetic.
 */
export class CustomBinding implements StoreBinding {
  readonly #limiter: RateLimiter;
  readonly #clock: Clock;
  readonly #maxKeys: number;
  readonly #states = new Map<string, Entry>();
  readonly inProcess = true;

  constructor(limiter: RateLimiter, clock: Clock, maxKeys: number) {
    this.#limiter = limiter;
    this.#clock = clock;
    this.#maxKeys = maxKeys;
  }

  /** The key's state now (its initial state if none, or if it has run out). */
  #state(key: string, now: number): unknown {
    const entry = this.#states.get(key);
    if (entry === undefined || entry.until <= now) return this.#limiter.initial();
    return entry.state;
  }

  #put(key: string, state: unknown, ttlMs: number | undefined, now: number): void {
    const until = ttlMs === undefined ? Infinity : now + ttlMs;
    if (until <= now) {
      this.#states.delete(key);
      return;
    }
    if (!this.#states.has(key) && this.#states.size >= this.#maxKeys) this.#makeRoom(now);
    this.#states.set(key, { state, until });
  }

  #makeRoom(now: number): void {
    for (const [key, entry] of this.#states) if (entry.until <= now) this.#states.delete(key);
    for (const key of this.#states.keys()) {
      if (this.#states.size < this.#maxKeys) break;
      this.#states.delete(key);
    }
  }

  #step(state: unknown, now: number, cost: number): RateLimitStep<unknown> {
    return checkStep(this.#limiter.decide(state, now, cost));
  }

  limit(key: string, cost: number, dryRun: boolean): Decision {
    const now = this.#clock();
    const step = this.#step(this.#state(key, now), now, cost);
    if (step.allowed && !dryRun) this.#put(key, step.state, step.ttlMs, now);
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
    if (booked.allowed) this.#put(key, booked.step.state, booked.step.ttlMs === undefined ? undefined : booked.waitMs + booked.step.ttlMs, now);
    const remaining = booked.allowed ? (booked.step.remaining ?? 0) : 0;
    return { allowed: booked.allowed, waitMs: booked.waitMs, at: now + booked.waitMs, limit: this.#limiter.capacity, remaining, source: 'local' };
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
 * A custom limiter's step as a {@link Decision}.
 * @internal
 */
export function toDecision(capacity: number, step: RateLimitStep<unknown>, source: Decision['source']): Decision {
  if (step.allowed) return { allowed: true, limit: capacity, remaining: step.remaining ?? 0, retryAfterMs: 0, resetAfterMs: step.ttlMs ?? 0, source };
  return { allowed: false, limit: capacity, remaining: step.remaining ?? 0, retryAfterMs: step.retryAfterMs, resetAfterMs: 0, source };
}
