// Batching: calls queue per virtual shard and go to Redis as one script call
// per shard, at the next microtask (or after maxDelayMs), at maxSize calls,
// or for background-only work after a short wait for company.
import type { Hit } from './wire.js';

/**
 * How long a background call (a lease prefetch: no caller waits on it) may
 * wait for company: a tick of a busy gateway prefetches for a few keys per
 * shard, and one script call per shard per tick would cost more in socket
 * writes than the decisions it saves.
 */
const BACKGROUND_DELAY_MS = 5;

/** A shard's queued calls, by key, each key's in order. */
export type Entries = Map<string, Hit[]>;

/**
 * Queues hits per shard and key, and hands each shard's batch to `send`.
 *
 * @example
 * ```ts
 * const batcher = new Batcher((shard, entries) => sendShard(shard, entries), 1000, 0);
 * batcher.add(shard, key, hit, true);
 * await batcher.settle(); // at close: everything sent and answered
 * ```
 * @internal
 */
export class Batcher {
  readonly #send: (shard: number, entries: Entries) => Promise<void>;
  readonly #maxSize: number;
  readonly #maxDelayMs: number;
  #pending = new Map<number, Entries>();
  #size = 0;
  #scheduled = false;
  /** A flush for background calls only (lease prefetches), if one is due. */
  #lazyTimer: ReturnType<typeof setTimeout> | undefined;
  /** Batches sent and not answered yet. */
  readonly #inFlight = new Set<Promise<void>>();

  constructor(send: (shard: number, entries: Entries) => Promise<void>, maxSize: number, maxDelayMs: number) {
    this.#send = send;
    this.#maxSize = maxSize;
    this.#maxDelayMs = maxDelayMs;
  }

  /** Queues `hit` for `key` on `shard`; `urgent: false` (no caller waits) lets it wait a few ms for company. */
  add(shard: number, key: string, hit: Hit, urgent: boolean): void {
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
    hits.push(hit);
    if (++this.#size >= this.#maxSize) {
      this.flush();
    } else if (!urgent) {
      if (!this.#scheduled && this.#lazyTimer === undefined) {
        this.#lazyTimer = setTimeout(this.flush, BACKGROUND_DELAY_MS);
        (this.#lazyTimer as { unref?: () => void }).unref?.();
      }
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      if (this.#maxDelayMs > 0) setTimeout(this.flush, this.#maxDelayMs);
      else queueMicrotask(this.flush);
    }
  }

  /** Sends every shard's queued batch now. */
  readonly flush = (): void => {
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
      const sent = this.#send(shard, entries);
      this.#inFlight.add(sent);
      void sent.finally(() => this.#inFlight.delete(sent));
    }
  };

  /** Sends what is queued, and resolves once every batch in flight is answered (or failed). */
  async settle(): Promise<void> {
    this.flush();
    await Promise.allSettled([...this.#inFlight]);
  }
}
