import type { Clock } from '../clock.js';
import type { Decision, Reservation } from '../decision.js';
import type { EmbeddedBinding, EmbeddedStore } from '../embedded-store.js';
import { hashKey, keyHi } from '../key-hash.js';
import type { Policy } from '../policies/index.js';
import type { StoreBinding } from '../store.js';
import { DECIDE_COMMAND, type RedisClient } from './redis-client.js';

/** Script operations (decide.lua's `op`). */
const OP_LIMIT = 0;
const OP_PEEK = 1;
const OP_RESERVE = 2;
const OP_REFUND = 3;
const OP_RESET = 4;

/**
 * A local denial is trusted only when it has at least this long to run: near
 * its end the estimate of Redis's clock (good to half a round trip) decides,
 * and Redis should.
 */
const NEGATIVE_CACHE_MARGIN_MS = 1;

/** Bytes of `s` in UTF-8, as Redis receives it. */
function utf8Length(s: string): number {
  let bytes = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c < 0xdc00) {
      bytes += 2; // a surrogate pair: 4 bytes for 2 units
      i++;
    } else bytes += 2;
  }
  return bytes;
}

interface Hit {
  op: number;
  cost: number;
  maxWait: number;
  resolve(value: Decision | Reservation | undefined): void;
  reject(error: unknown): void;
}

/** @internal Everything a binding needs from its store. */
export interface RedisBindingOptions {
  client: RedisClient;
  gates: readonly Policy[];
  clock: Clock;
  shardKey(shard: number): string;
  shardShift: number;
  clientTime: boolean;
  maxDelayMs: number;
  maxSize: number;
  negativeCache: boolean;
  mirror: EmbeddedStore;
}


/**
 * Decides for one limiter's gates in Redis: queues calls per virtual shard,
 * sends each shard's batch as one script call, and mirrors the answers into a
 * local table.
 */
export class RedisBinding implements StoreBinding {
  readonly sync = false;
  readonly #o: RedisBindingOptions;
  readonly #send: (anchor: string, ...argv: string[]) => Promise<Buffer>;
  readonly #gateArgs: string[];
  readonly #capacity: number[];
  readonly #mirror: EmbeddedBinding;
  /** Redis time minus local time, estimated at each answer (0 with client time). */
  #offset = 0;
  #pending = new Map<number, Map<string, Hit[]>>();
  #size = 0;
  #scheduled = false;

  constructor(options: RedisBindingOptions) {
    this.#o = options;
    // The Buffer variant ioredis defines beside every command: the reply is packed doubles.
    const client = options.client as unknown as Record<string, (...args: string[]) => Promise<Buffer>>;
    this.#send = (anchor, ...argv) => client[`${DECIDE_COMMAND}Buffer`]!.call(client, anchor, ...argv);
    this.#gateArgs = [String(options.gates.length)];
    for (const { core } of options.gates) {
      // The gate id names the policy, so limiters with the same policy share state and others don't.
      const id = `${core.code}:${core.p0}:${core.p1}:${core.p2}`;
      this.#gateArgs.push(id, String(core.code), String(core.p0), String(core.p1), String(core.p2));
    }
    this.#capacity = options.gates.map((g) => g.core.capacity);
    const clock = options.clock;
    this.#mirror = options.mirror.bind(options.gates, () => clock() + this.#offset);
  }

  limit(key: string, cost: number, dryRun: boolean): Decision | Promise<Decision> {
    if (this.#o.negativeCache) {
      const local = this.#mirror.limit(key, cost, true);
      if (!local.allowed && local.retryAfterMs > NEGATIVE_CACHE_MARGIN_MS) return local;
    }
    return this.#enqueue(key, dryRun ? OP_PEEK : OP_LIMIT, cost, 0) as Promise<Decision>;
  }

  limitMany(keys: readonly string[], cost: number): Promise<Decision[]> {
    return Promise.all(keys.map((key) => this.limit(key, cost, false)));
  }

  reserve(key: string, cost: number, maxWaitMs: number): Promise<Reservation> {
    return this.#enqueue(key, OP_RESERVE, cost, maxWaitMs) as Promise<Reservation>;
  }

  async refund(key: string, cost: number): Promise<void> {
    await this.#enqueue(key, OP_REFUND, cost, 0);
  }

  async reset(key: string): Promise<void> {
    await this.#enqueue(key, OP_RESET, 1, 0);
  }

  #enqueue(key: string, op: number, cost: number, maxWait: number): Promise<Decision | Reservation | undefined> {
    return new Promise((resolve, reject) => {
      hashKey(key);
      const shift = this.#o.shardShift;
      const shard = shift >= 32 ? 0 : keyHi >>> shift;
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
      } else if (!this.#scheduled) {
        this.#scheduled = true;
        if (this.#o.maxDelayMs > 0) setTimeout(this.#flush, this.#o.maxDelayMs);
        else queueMicrotask(this.#flush);
      }
    });
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    if (this.#size === 0) return;
    const pending = this.#pending;
    this.#pending = new Map();
    this.#size = 0;
    for (const [shard, entries] of pending) void this.#sendShard(shard, entries);
  };

  async #sendShard(shard: number, entries: Map<string, Hit[]>): Promise<void> {
    const argv = [this.#o.clientTime ? String(this.#o.clock()) : '', ...this.#gateArgs];
    // Three strings for the whole batch (decide.lua documents the format).
    let lengths = '';
    let keys = '';
    let specs = '';
    for (const [key, hits] of entries) {
      lengths += `${utf8Length(key)},`;
      keys += key;
      const only = hits.length === 1 ? hits[0]! : undefined;
      if (only === undefined || only.op !== OP_LIMIT || only.cost !== 1) {
        specs += hits.map((h) => `${h.op} ${h.cost} ${h.maxWait === Infinity ? 'inf' : h.maxWait}`).join(' ');
      }
      specs += ',';
    }
    argv.push(lengths, keys, specs);
    const sentAt = this.#o.clock();
    let reply: Buffer;
    try {
      reply = await this.#send(this.#o.shardKey(shard), ...argv);
    } catch (error) {
      for (const hits of entries.values()) for (const hit of hits) hit.reject(error);
      return;
    }
    const receivedAt = this.#o.clock();
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
        const allowed = (flags & 1) === 1;
        const limit = this.#capacity[flags >>> 1]!;
        if (hit.op === OP_LIMIT || hit.op === OP_PEEK) {
          hit.resolve({ allowed, limit, remaining, retryAfterMs: retry, resetAfterMs: reset, source: 'redis' });
        } else if (hit.op === OP_RESERVE) {
          hit.resolve({ allowed, waitMs: retry, at: receivedAt + retry, limit, remaining, source: 'redis' });
        } else {
          hit.resolve(undefined);
        }
      }
      this.#mirror.putStates(key, out, m);
      m += gates * 4;
    }
  }
}
