// Batching: calls queue per route and go to Redis as one script call per
// route, at the next microtask (or after maxDelayMs), at maxSize calls, or for
// background-only work after a short wait for company. A route is what one
// script call can reach: the whole server on a single Redis (every virtual
// shard in one call), one virtual shard on a Cluster (one call's keys must
// share a slot). Inside a route, calls are grouped by shard, then by key.
import type { Hit } from './wire.js';
import { TIMEOUTS_TO_OPEN } from './circuit-breaker.js';

/**
 * How long a background call (a lease prefetch: no caller waits on it) may
 * wait for company: a tick of a busy gateway prefetches for a few keys, and
 * one script call per route per tick would cost more in socket writes than
 * the decisions it saves.
 */
const BACKGROUND_DELAY_MS = 5;

/**
 * Batches of one route in flight at once, before further calls wait for an
 * answer: more than one, so that Redis runs one while the client encodes the
 * next or decodes the last; as many as the timeouts in a row that open the
 * breaker, so that a frozen server is still detected after one timeout
 * (every batch in flight times out together), not after several.
 */
const MAX_IN_FLIGHT = TIMEOUTS_TO_OPEN;

/** Calls below which a queue is not split over several batches. */
const MIN_SPLIT = 64;

/** A shard's queued calls, by key, each key's in order. */
export type Entries = Map<string, Hit[]>;
/** A route's queued calls, by virtual shard. */
export type Groups = Map<number, Entries>;

/**
 * Queues hits per route, shard and key, and hands each route's batch to `send`,
 * with when its oldest call was queued: a call held while others were in
 * flight has spent that much of its time already.
 *
 * @example
 * ```ts
 * const batcher = new Batcher((route, groups, since) => sendRoute(route, groups, since), 1000, 0);
 * batcher.add(route, shard, key, hit, true);
 * await batcher.settle(); // at close: everything sent and answered
 * ```
 * @internal
 */
export class Batcher {
  readonly #send: (route: number, groups: Groups, since: number) => Promise<void>;
  readonly #maxSize: number;
  readonly #maxDelayMs: number;
  /** Per route, its queued calls, how many, and since when (`performance.now()`) the oldest has waited. */
  #pending = new Map<number, { groups: Groups; size: number; since: number }>();
  #scheduled = false;
  /** A flush for background calls only (lease prefetches), if one is due. */
  #lazyTimer: ReturnType<typeof setTimeout> | undefined;
  /** Batches sent and not answered yet. */
  readonly #inFlight = new Set<Promise<void>>();
  /** Per route, how many of its batches are in flight. */
  readonly #routeInFlight = new Map<number, number>();

  constructor(send: (route: number, groups: Groups, since: number) => Promise<void>, maxSize: number, maxDelayMs: number) {
    this.#send = send;
    this.#maxSize = maxSize;
    this.#maxDelayMs = maxDelayMs;
  }

  /** Queues `hit` for `key` of `shard` on `route`; `urgent: false` (no caller waits) lets it wait a few ms for company. */
  add(route: number, shard: number, key: string, hit: Hit, urgent: boolean): void {
    let queue = this.#pending.get(route);
    if (queue === undefined) {
      queue = { groups: new Map(), size: 0, since: performance.now() };
      this.#pending.set(route, queue);
    }
    let entries = queue.groups.get(shard);
    if (entries === undefined) {
      entries = new Map();
      queue.groups.set(shard, entries);
    }
    let hits = entries.get(key);
    if (hits === undefined) {
      hits = [];
      entries.set(key, hits);
    }
    hits.push(hit);
    if (++queue.size >= this.#maxSize) {
      // Full: it goes now, whatever is in flight (split over the free places in flight).
      this.#sendRoute(route, Math.max(1, MAX_IN_FLIGHT - (this.#routeInFlight.get(route) ?? 0)));
    } else if (!urgent) {
      if (!this.#scheduled && this.#lazyTimer === undefined) {
        this.#lazyTimer = setTimeout(this.flush, BACKGROUND_DELAY_MS);
        (this.#lazyTimer as { unref?: () => void }).unref?.();
      }
    } else {
      this.#schedule();
    }
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    if (this.#maxDelayMs > 0) setTimeout(this.flush, this.#maxDelayMs);
    else queueMicrotask(this.flush);
  }

  /**
   * Sends the queued batch of every route that has fewer than
   * MAX_IN_FLIGHT batches in flight; the others' calls keep gathering until
   * one of those is answered. Sending at every microtask regardless, a
   * thousand concurrent callers resumed one answer at a time made batches
   * of one or two calls: a script call each, and Redis's time went to call
   * overhead. An idle route sends at once, so a lone call waits for nothing.
   */
  readonly flush = (): void => {
    this.#scheduled = false;
    if (this.#lazyTimer !== undefined) {
      clearTimeout(this.#lazyTimer);
      this.#lazyTimer = undefined;
    }
    for (const route of [...this.#pending.keys()]) {
      const free = MAX_IN_FLIGHT - (this.#routeInFlight.get(route) ?? 0);
      if (free > 0) this.#sendRoute(route, free);
    }
  };

  /**
   * Sends a route's queue in up to `parts` batches of at least
   * MIN_SPLIT calls each: a thousand callers that queued together then
   * keep Redis busy with one part while the client encodes the next and
   * resolves the last, instead of the two taking turns.
   */
  #sendRoute(route: number, parts = 1): void {
    const queue = this.#pending.get(route);
    if (queue === undefined) return;
    this.#pending.delete(route);
    const n = Math.min(parts, Math.floor(queue.size / MIN_SPLIT));
    if (n <= 1) return this.#sendBatch(route, queue.groups, queue.since);
    // Whole keys go to a part (a key's calls stay in order, in one batch).
    const target = Math.ceil(queue.size / n);
    let part: Groups = new Map();
    let size = 0;
    for (const [shard, entries] of queue.groups) {
      for (const [key, hits] of entries) {
        let into = part.get(shard);
        if (into === undefined) {
          into = new Map();
          part.set(shard, into);
        }
        into.set(key, hits);
        size += hits.length;
        if (size >= target) {
          this.#sendBatch(route, part, queue.since);
          part = new Map();
          size = 0;
        }
      }
    }
    if (size > 0) this.#sendBatch(route, part, queue.since);
  }

  #sendBatch(route: number, groups: Groups, since: number): void {
    this.#routeInFlight.set(route, (this.#routeInFlight.get(route) ?? 0) + 1);
    const sent = this.#send(route, groups, since);
    this.#inFlight.add(sent);
    void sent.finally(() => {
      this.#inFlight.delete(sent);
      const left = this.#routeInFlight.get(route)! - 1;
      if (left === 0) this.#routeInFlight.delete(route);
      else this.#routeInFlight.set(route, left);
      // Calls held for this route go with the next flush.
      if (this.#pending.has(route)) this.#schedule();
    });
  }

  /** Sends everything queued (held or not), and resolves once every batch in flight is answered (or failed). */
  async settle(): Promise<void> {
    this.flush();
    for (const route of [...this.#pending.keys()]) this.#sendRoute(route);
    await Promise.allSettled([...this.#inFlight]);
  }
}
