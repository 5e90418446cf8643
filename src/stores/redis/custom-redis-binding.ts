import type { Clock } from '../../core/clock.js';
import { reserveStep, toDecision, toReservation } from '../embedded/custom-binding.js';
import type { Decision, Reservation } from '../../limiter/decision.js';
import { ConfigError, RedisContentionError, RedisStateError, StoreClosedError } from '../../errors.js';
import { checkStep, type RateLimiter, type RateLimitStep } from '../../policies/rate-limiter.js';
import type { StoreBinding } from '../../limiter/store.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import type { FallbackOption } from './fallback.js';
import { replyText, type RedisConnection } from './connection.js';
import type { Lifecycle } from './lifecycle.js';
import { CAS_SCRIPT } from './scripts.js';
import type { SourceCounts } from './redis-binding.js';
import { keyBytes } from './key-bytes.js';

/** Most read-decide-write rounds one call makes before giving up under contention. */
const MAX_ATTEMPTS = 16;
/** A state's expiry when the limiter gives none: a day, so that forgotten keys leave. */
const DEFAULT_TTL_MS = 86_400_000;

/** JSON that keeps the numbers JSON cannot carry (Infinity, -Infinity, NaN), as built-in states hold them. */
function encode(state: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(state, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? { $number: String(value) } : value));
  } catch {
    text = undefined;
  }
  if (text === undefined || text === '') throw new ConfigError('policy.decide', state, 'a state JSON can carry (RedisStore keeps it as JSON)');
  return text;
}

function decode(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown) => {
    const n = (value as { $number?: unknown } | null)?.$number;
    return typeof n === 'string' && Object.keys(value as object).length === 1 ? Number(n) : value;
  });
}

/** @internal What a {@link CustomRedisBinding} needs from its store. */
export interface CustomRedisBindingOptions {
  connection: RedisConnection;
  limiter: RateLimiter;
  clock: Clock;
  clientTime: boolean;
  shardOf(key: string): number;
  shardKey(shard: number): string;
  breaker: CircuitBreaker;
  breakerPerShard: boolean;
  timeoutMs: number;
  fallback: FallbackOption;
  counts: SourceCounts;
  /** Whether the store is closed (calls then reject with StoreClosedError). */
  lifecycle: Lifecycle;
}

/**
 * Decides for a custom {@link RateLimiter} through Redis: its state is JSON
 * under `<prefix>{<shard>}:<key>|custom:<name>`, read with Redis's clock,
 * decided by the limiter's own function here, and written back by a
 * compare-and-set script (src/stores/redis/cas.lua) only if nobody wrote in between;
 * otherwise read and decided again, at most {@link MAX_ATTEMPTS} times.
 * While Redis is unreachable a custom limiter cannot be scaled to a node's
 * share: `fallback: 'open'` admits, anything else denies.
 */
export class CustomRedisBinding implements StoreBinding {
  readonly #o: CustomRedisBindingOptions;
  readonly #cas: (key: Buffer, ...argv: (string | Uint8Array)[]) => Promise<unknown>;
  /**
   * Per key, the tail of this process's calls: they take turns, so that only
   * other processes' writes can make a compare-and-set fail (concurrent calls
   * of one process would otherwise all read the same state and all but one
   * lose every round).
   */
  readonly #turns = new Map<string, Promise<unknown>>();

  constructor(options: CustomRedisBindingOptions) {
    this.#o = options;
    const connection = options.connection;
    this.#cas = (key, ...argv) => connection.evalScript(CAS_SCRIPT, key, argv);
  }

  #stateKey(key: string): { shard: number; redisKey: Buffer } {
    const shard = this.#o.shardOf(key);
    // The key's bytes as WTF-8 (wtf8.ts): one Redis key per distinct string.
    return { shard, redisKey: Buffer.concat([Buffer.from(`${this.#o.shardKey(shard)}:`), keyBytes(key), Buffer.from(`|custom:${this.#o.limiter.name}`)]) };
  }

  /**
   * Reads the key's state and Redis's clock, applies `change`, and writes the
   * new state if the key still holds what was read. `change` returns the new
   * state (undefined: write nothing) and the call's answer.
   */
  #update<T>(key: string, change: (state: unknown, now: number) => { state?: unknown; ttlMs?: number; delete?: boolean; answer: T }): Promise<T | undefined> {
    const before = this.#turns.get(key);
    const run = before === undefined ? this.#attempt(key, change) : before.then(() => this.#attempt(key, change), () => this.#attempt(key, change));
    this.#turns.set(key, run);
    const forget = () => {
      if (this.#turns.get(key) === run) this.#turns.delete(key);
    };
    run.then(forget, forget);
    return run;
  }

  async #attempt<T>(key: string, change: (state: unknown, now: number) => { state?: unknown; ttlMs?: number; delete?: boolean; answer: T }): Promise<T | undefined> {
    const o = this.#o;
    const { shard, redisKey } = this.#stateKey(key);
    const breakerShard = o.breakerPerShard ? shard : 0;
    if (o.breaker.isOpen(breakerShard)) return undefined;
    // Only Redis's failures open the breaker; the limiter's own errors reach the caller.
    const ask = (...argv: (string | Uint8Array)[]): Promise<unknown> => o.breaker.run(breakerShard, () => this.#cas(redisKey, ...argv));
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const got = (await ask('get')) as [Uint8Array, Uint8Array, number] | undefined;
      if (got === undefined) return undefined;
      // The state's bytes go back as they came, for the comparison; its text is decoded.
      const [now, read, foreign] = [Number(replyText(got[0])), got[1], got[2]];
      const text = replyText(read);
      let state: unknown;
      try {
        if (foreign === 1) throw new Error('another type');
        state = text === '' ? o.limiter.initial() : decode(text);
      } catch {
        throw new RedisStateError(o.shardKey(shard), key);
      }
      const next = change(state, o.clientTime ? o.clock() : now);
      if (next.state === undefined && next.delete !== true) return next.answer;
      const written = next.delete === true ? '' : encode(next.state);
      const ttl = String(Math.max(1, Math.ceil(next.ttlMs ?? DEFAULT_TTL_MS)));
      const set = await ask('set', read, written, ttl);
      if (set === undefined) return undefined;
      if (set === 1) return next.answer;
    }
    throw new RedisContentionError(key, MAX_ATTEMPTS);
  }

  /** The answer while Redis is unreachable: a custom limiter cannot be scaled to a node's share. */
  #fallback(): Decision {
    this.#o.counts.fallback++;
    const open = this.#o.fallback === 'open';
    const capacity = this.#o.limiter.capacity;
    return toDecision(capacity, open ? { allowed: true, state: undefined, remaining: capacity } : { allowed: false, retryAfterMs: this.#o.timeoutMs }, 'fallback');
  }

  async limit(key: string, cost: number, dryRun: boolean): Promise<Decision> {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    const decision = await this.#update(key, (state, now) => {
      const step: RateLimitStep<unknown> = checkStep(this.#o.limiter.decide(state, now, cost));
      const answer = toDecision(this.#o.limiter.capacity, step, 'redis');
      return step.allowed && !dryRun ? { state: step.state, ttlMs: step.ttlMs, answer } : { answer };
    });
    if (decision === undefined) return this.#fallback();
    this.#o.counts.redis++;
    return decision;
  }

  limitMany(keys: readonly string[], cost: number): Promise<Decision[]> {
    return Promise.all(keys.map((key) => this.limit(key, cost, false)));
  }

  async reserve(key: string, cost: number, maxWaitMs: number): Promise<Reservation> {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    const sentAt = this.#o.clock();
    const reservation = await this.#update(key, (state, now) => {
      const booked = reserveStep(this.#o.limiter, state, now, cost, maxWaitMs);
      const answer = toReservation(this.#o.limiter.capacity, booked.allowed, booked.waitMs, sentAt, booked.allowed ? (booked.step.remaining ?? 0) : 0, 'redis');
      if (!booked.allowed) return { answer };
      return { state: booked.step.state, ttlMs: booked.waitMs + (booked.step.ttlMs ?? DEFAULT_TTL_MS), answer };
    });
    if (reservation !== undefined) return reservation;
    const d = this.#fallback();
    return toReservation(d.capacity, d.allowed, 0, sentAt, d.remaining, 'fallback');
  }

  async refund(key: string, cost: number): Promise<void> {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    const refund = this.#o.limiter.refund;
    if (refund === undefined) return;
    await this.#update(key, (state, now) => ({ state: refund.call(this.#o.limiter, state, now, cost), ttlMs: DEFAULT_TTL_MS, answer: undefined }));
  }

  async reset(key: string): Promise<void> {
    if (this.#o.lifecycle.closed) throw new StoreClosedError();
    await this.#update(key, () => ({ delete: true, answer: undefined }));
  }
}
