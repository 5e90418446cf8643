// A RedisStore's side of the fleet's upstream pace: runs pace.lua for one
// key on the shard that key's states live on, through the store's breaker,
// so that a Redis that is down costs a call nothing but the local pace.
import type { LearnedShape, PaceSlot, PaceStanding, PaceStep, QuotaReport, SharedPace, SharedPacing } from '../../limiter/store.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import { replyText, type RedisConnection } from './connection.js';
import { keyBytes } from './key-bytes.js';
import type { Lifecycle } from './lifecycle.js';
import { PACE_SCRIPT } from './scripts.js';

/** What {@link RedisSharedPace} needs of its store. */
export interface RedisSharedPaceOptions {
  connection: RedisConnection;
  shardKey(shard: number): string;
  shardOf(key: string): number;
  breaker: CircuitBreaker;
  breakerPerShard: boolean;
  lifecycle: Lifecycle;
}

/** A booking as this store answers it: with its start as the script wrote it (for 'cancel'). */
interface BookedSlot extends PaceSlot {
  readonly at: string | undefined;
}

/** The suffix of a pace's Redis key: see pace.lua's header for why it is never a state's. */
const PACE_SUFFIX = Buffer.from('|^');

/**
 * The {@link SharedPace} of a RedisStore (its `sharedPace`). Every method
 * resolves with `undefined` when Redis did not answer (the breaker open,
 * the connection down, a timeout): the caller paces by what it knows alone.
 * @internal
 *
 * @example
 * ```ts
 * const slot = await store.sharedPace.book('https://api.example', 'start'); // { waitMs: 0, ticket: 0, spacingMs: 0, shape: -1, ... }
 * ```
 */
export class RedisSharedPace implements SharedPace {
  readonly #o: RedisSharedPaceOptions;

  constructor(options: RedisSharedPaceOptions) {
    this.#o = options;
  }

  async book(key: string, step: PaceStep): Promise<PaceSlot | undefined> {
    const r = await this.#run(key, ['book', step]);
    if (r === undefined) return undefined;
    const n = r.map(Number);
    // With what 'cancel' needs to give a reserved start back, exactly as the script wrote it.
    const slot: BookedSlot = { waitMs: n[0]!, ticket: n[1]!, spacingMs: n[2]!, shape: n[3]!, shapeVersion: n[4]!, budgeted: n[5] === 1, burstIntolerant: n[6] === 1, forWindow: n[8] === 1, at: r[7] };
    return slot;
  }

  async cancel(key: string, slot: PaceSlot): Promise<void> {
    const { at } = slot as BookedSlot;
    if (at === undefined || at === '') return;
    await this.#run(key, ['cancel', at]);
  }

  async quota(key: string, q: QuotaReport): Promise<{ endsInMs: number; left: number } | undefined> {
    const opt = (v: number | undefined) => (v === undefined ? '' : String(v));
    const r = await this.#run(key, ['quota', String(q.remaining), String(q.resetMs), opt(q.limit), opt(q.windowMs)]);
    return r === undefined ? undefined : { endsInMs: Number(r[0]), left: Number(r[1]) };
  }

  async learn(key: string, evidence: 'quota' | 'burst'): Promise<LearnedShape | undefined> {
    const r = await this.#run(key, ['learn', evidence]);
    return r === undefined ? undefined : { shape: Number(r[0]), version: Number(r[1]), evidence: Number(r[2]) };
  }

  pushback(key: string, ticket: number | undefined, delayMs: number | undefined, pacing: SharedPacing): Promise<PaceStanding | undefined> {
    const args = ['pushback', ticket === undefined ? '' : String(ticket), delayMs === undefined ? '' : String(delayMs)];
    args.push(String(pacing.initialSpacingMs), String(pacing.maxSpacingMs), String(pacing.recoverySuccesses));
    return this.#standing(key, args);
  }

  pause(key: string, delayMs: number): Promise<PaceStanding | undefined> {
    return this.#standing(key, ['pause', String(delayMs)]);
  }

  success(key: string, ticket: number): Promise<PaceStanding | undefined> {
    return this.#standing(key, ['success', String(ticket)]);
  }

  peek(key: string): Promise<PaceStanding | undefined> {
    return this.#standing(key, ['peek']);
  }

  async #standing(key: string, args: string[]): Promise<PaceStanding | undefined> {
    const r = await this.#run(key, args);
    return r === undefined ? undefined : { holdMs: Number(r[0]), spacingMs: Number(r[1]) };
  }

  /** The script's reply as texts (integers, and the strings 'book' answers), or undefined when Redis did not answer (the failure recorded by the breaker). */
  async #run(key: string, args: string[]): Promise<string[] | undefined> {
    const o = this.#o;
    if (o.lifecycle.closed) return undefined;
    const shard = o.shardOf(key);
    const slot = o.breakerPerShard ? shard : 0;
    if (o.breaker.isOpen(slot) || o.connection.state === 'down' || o.connection.state === 'idle') return undefined;
    const redisKey = Buffer.concat([Buffer.from(`${o.shardKey(shard)}:`), keyBytes(key), PACE_SUFFIX]);
    const reply = await o.breaker.run(slot, () => o.connection.evalScript(PACE_SCRIPT, redisKey, args));
    if (!Array.isArray(reply)) return undefined;
    // {-1}: a value of another type at the pace key (pace.lua), left alone.
    if (reply.length === 1 && Number(reply[0]) === -1) return undefined;
    return reply.map((v) => (typeof v === 'number' ? String(v) : replyText(v)));
  }
}
