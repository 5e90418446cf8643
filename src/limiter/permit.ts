/// <reference lib="esnext.disposable" preserve="true" />
// Permits of a limiter with a concurrency gate: the admitted decision as an
// object that gives its slot back, renews its lease while held, and wakes
// this process's waiters for the key when released.
import { LeaseLostError, StoreClosedError } from '../errors.js';
import type { Decision, DecisionSource } from './decision.js';
import type { Held, Renewal, StoreBinding } from './store.js';

/**
 * An admission that holds a slot of a {@link concurrency} gate until
 * released: what `limiter.acquire` answers (and `limit`/`limitSync` on an
 * admission, by a limiter with a concurrency gate). It is the Decision, plus:
 *
 * - `release()` gives the slot back (idempotent; never rejects: a slot the
 *   store cannot take back stops counting when its lease runs out);
 * - `await using permit = ...` releases it at the end of the block;
 * - while held, the permit is renewed every `leaseMs / 2` (one batched call
 *   per limiter, not a timer per permit), so only a process that dies (or a
 *   permit dropped without release and collected) lets the lease run out;
 * - `extend()` renews it now;
 * - `signal` aborts with {@link LeaseLostError} when a renewal finds the
 *   lease gone and the slot taken: the work it guards is then over the limit.
 *
 * For a limiter without a concurrency gate, `acquire` answers a Permit too,
 * whose release does nothing.
 *
 * @example
 * ```ts
 * const permit = await limiter.acquire('db');
 * try {
 *   await query(permit.signal);
 * } finally {
 *   await permit.release();
 * }
 * ```
 */
export interface Permit extends Decision, AsyncDisposable {
  /** The key the permit holds a slot of. */
  readonly key: string;
  /** Whether the permit still holds its slot (false once released or lost). */
  readonly held: boolean;
  /** Aborted with {@link LeaseLostError} when the lease was lost to another holder. */
  readonly signal: AbortSignal;
  /** Gives the slot back; the same promise for every call. */
  release(): Promise<void>;
  /** Renews the lease now; resolves whether the permit still holds its slot. */
  extend(): Promise<boolean>;
}

/** A weak reference, or a strong one where the runtime has none (Cloudflare Workers: a dropped permit is then renewed until its isolate ends). */
const weakly: <T extends object>(target: T) => { deref(): T | undefined } =
  typeof WeakRef === 'function' ? (target) => new WeakRef(target) : (target) => ({ deref: () => target });

/**
 * A held permit as the renewal sweep knows it: weakly, beside what the store
 * needs to forget it once it is dropped without release and collected.
 */
interface HeldEntry {
  readonly ref: { deref(): PermitImpl | undefined };
  readonly key: string;
  readonly cost: number;
  /** The permit's time (see PermitImpl.at), kept in step with it. */
  at: number;
}

/** An acquire of this process waiting for a slot of a key. */
interface Waiter {
  readonly cost: number;
  /** Its rank (priority.ts): higher is woken first. */
  readonly rank: number;
  /** Its caller's priority: only the first waiters, of one priority, poll. */
  readonly priority: number;
  /** Whether it waits for a slot (a concurrency gate denied it), not a rate gate's unit. */
  readonly slot: boolean;
  /** Whether it asks the store again every POLL_MS or so (the first waiter for a slot freed in another process). */
  polls: boolean;
  /** Ask the store again now. */
  wake(): void;
  /** Stop polling: another waiter is first now. */
  demote(): void;
  /** Start polling: it is the first waiter now. */
  poll(): void;
}

/** How long a waiter for a slot held in another process waits before asking again (ms), at most. */
export const POLL_MS = 10;

/**
 * The permits of one limiter: creates them, renews the held ones in one
 * sweep every half lease, and wakes the waiters of a key on its release.
 * @internal
 *
 * @example
 * ```ts
 * const holdings = new Holdings(binding, 30_000, false);
 * const permit = holdings.permit('db', 1, held);
 * ```
 */
export class Holdings {
  readonly #binding: StoreBinding;
  readonly #renewEveryMs: number;
  /** Whether a slot is freed only in this process (an embedded store): waiters need no polling. */
  readonly #local: boolean;
  /** Held permits, weakly: one dropped without release stops being renewed, and its lease runs out. */
  readonly #held = new Set<HeldEntry>();
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Per key, this process's acquires waiting for a slot, highest rank first (ties: the order they began to wait). */
  readonly #waiters = new Map<string, Waiter[]>();

  constructor(binding: StoreBinding, leaseMs: number, local: boolean) {
    this.#binding = binding;
    this.#renewEveryMs = leaseMs / 2;
    this.#local = local;
    // Redis gone or back: a sweep now, not at the next half lease (see RedisBinding).
    binding.onRenewalDue?.(() => this.#renewAll());
  }

  /** A permit for what `hold` admitted, held and renewed from now on. */
  permit(key: string, cost: number, held: Held): PermitImpl {
    const p = new PermitImpl(this, key, cost, held);
    p.entry = { ref: weakly(p), key, cost, at: held.at };
    this.#held.add(p.entry);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#renewAll(), this.#renewEveryMs);
      (this.#timer as { unref?: () => void }).unref?.();
    }
    return p;
  }

  /** Releases so far: a waiter that saw a denial before one of them asks again at once. */
  #releases = 0;

  /** What {@link Holdings.wait} is given: the releases counted before the denial it waits after. */
  get releases(): number {
    return this.#releases;
  }

  /**
   * Gives the permit's slot back and wakes as many of the key's waiters as
   * it frees slots: at once, with the release on its way (a store decides
   * in order, so their asks come after it), not after its answer.
   */
  release(p: PermitImpl): Promise<void> {
    this.#drop(p);
    // After a renewal in flight: it may move the slot to another epoch, whose time the release must name.
    return p.serial(async () => {
      let sent: void | Promise<void> = undefined;
      try {
        // A lease lost meanwhile (the renewal in flight found it gone) counts nothing to give back.
        if (!p.lost) sent = this.#binding.release!(p.key, p.cost, p.at, p.heldSource);
      } catch {
        // Never rejects: the slot stops counting with its lease (a closed store, a refused key).
      }
      this.#releases++;
      this.#wake(p.key, p.cost);
      await Promise.resolve(sent).catch(() => undefined);
    });
  }

  /** Renews one permit; false (and its signal aborted) when the lease was lost. */
  renew(p: PermitImpl): Promise<boolean> {
    // One call at a time per permit: two renewals naming the same old time would both move a slot.
    return p.serial(() => (p.held ? this.#renewNow(p) : Promise.resolve(false)));
  }

  async #renewNow(p: PermitImpl): Promise<boolean> {
    let renewal: Renewal | undefined;
    try {
      renewal = await this.#binding.renew!(p.key, p.cost, p.at, p.heldSource);
    } catch (error) {
      // A closed store renews nothing again: the sweep lets the permit be.
      if (error instanceof StoreClosedError) this.#drop(p);
      return p.held; // not renewed this time: the next sweep tries again
    }
    if (renewal !== undefined) {
      p.at = renewal.at;
      p.entry!.at = renewal.at;
      p.heldSource = renewal.source;
      return true;
    }
    this.#drop(p);
    p.lose();
    return false;
  }

  /**
   * Waits for a slot of `key` (`slot`: denied by a concurrency gate, else by
   * a rate gate): until a permit of it is released in this process, or `ms`
   * has passed (for a slot freed in another process, at most about
   * {@link POLL_MS}), or `signal` aborts.
   */
  wait(key: string, ms: number, signal: AbortSignal | undefined, releasesBefore: number, slot: boolean, cost: number, rank = 0, priority = 0): Promise<void> {
    // A release between the denial and now (the await in between) woke no one: ask again.
    if (this.#releases !== releasesBefore) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let wakers = this.#waiters.get(key);
      if (wakers === undefined) this.#waiters.set(key, (wakers = []));
      // By rank: after the last waiter it does not outrank.
      let at = wakers.length;
      while (at > 0 && wakers[at - 1]!.rank < rank) at--;
      // A rate gate's unit comes back after its wait, wherever it is decided;
      // a slot at any moment: waiters for a slot freed in another process
      // poll the store, but only the first ones, of one priority (see #refresh).
      const polls = !this.#local && slot && wakers.slice(0, at).every((w) => !w.slot || w.priority === priority);
      const wait = polls ? Math.min(ms, POLL_MS * (0.5 + Math.random())) : ms;
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = wakers.indexOf(waiter);
        if (i >= 0) wakers.splice(i, 1);
        if (wakers.length === 0 && this.#waiters.get(key) === wakers) this.#waiters.delete(key);
        else if (slot && !this.#local) this.#refresh(wakers);
      };
      const onAbort = () => {
        done();
        reject(signal!.reason);
      };
      const expire = () => {
        done();
        resolve();
      };
      let timer = setTimeout(expire, wait);
      const waiter: Waiter = {
        cost,
        rank,
        priority,
        slot,
        polls,
        wake: expire,
        demote: () => {
          // Outranked by a newer first waiter: it stops polling and waits its own bound.
          clearTimeout(timer);
          timer = setTimeout(expire, ms);
          waiter.polls = false;
        },
        poll: () => {
          // The first waiter now: it asks within a poll interval, and from then on.
          clearTimeout(timer);
          timer = setTimeout(expire, Math.min(ms, POLL_MS * (0.5 + Math.random())));
          waiter.polls = true;
        },
      };
      wakers.splice(at, 0, waiter);
      if (slot && !this.#local) this.#refresh(wakers);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Whether a caller of rank `rank` and `priority` should wait before asking
   * for a slot of `key`: a waiter of this process of another priority that
   * outranks it (by priority, or by age) waits for one already. Among equal
   * priorities a newcomer asks at once, as without priorities: the slot may
   * have been freed elsewhere, unseen by the waiters until they poll.
   */
  outranked(key: string, rank: number, priority: number): boolean {
    const wakers = this.#waiters.get(key);
    return wakers !== undefined && wakers.some((w) => w.slot && w.rank > rank && w.priority !== priority);
  }

  /**
   * Wakes the key's first waiters, as many as `freed` slots serve: one
   * release, one retry (not every waiter of the key, each asking again for a
   * slot only one of them can take). A woken waiter that finds the slot taken
   * (by an acquire that did not wait) waits again; the taker's release wakes
   * the next.
   */
  /**
   * An acquire of `key` stopped waiting for good (`took`: with a slot; else
   * it timed out or was aborted): the next waiter for a slot becomes the
   * first, polling from then on, when it did not already. A slot freed here
   * wakes waiters anyway, so an embedded store's waiters are only asked (at
   * once) when one left without a slot (one may be free).
   */
  promote(key: string, took: boolean): void {
    if (took || !this.#local) return;
    // Locally only a release frees a slot, and one may be free now. (A
    // remote one is polled for: #refresh, when a waiter leaves.)
    this.#waiters.get(key)?.find((w) => w.slot)?.wake();
  }

  /**
   * Which waiters for a slot freed in another process poll the store: the
   * first ones, as long as they share the first's priority. With one
   * priority (the default) all of them poll, as fast as the slots free; a
   * waiter behind one of another priority does not, so that it cannot take
   * a slot before a waiter that outranks it (by priority, or by age).
   */
  #refresh(wakers: readonly Waiter[]): void {
    let first: number | undefined;
    let open = true;
    for (const w of wakers) {
      if (!w.slot) continue;
      first ??= w.priority;
      if (w.priority !== first) open = false;
      if (open && !w.polls) w.poll();
      else if (!open && w.polls) w.demote();
    }
  }

  #wake(key: string, freed: number): void {
    const wakers = this.#waiters.get(key);
    if (wakers === undefined) return;
    // (A copy: each woken waiter leaves the list.)
    for (const w of [...wakers]) {
      if (freed <= 0) break;
      freed -= w.cost;
      w.wake();
    }
  }

  #drop(p: PermitImpl): void {
    this.#held.delete(p.entry!);
    this.#stopWhenIdle();
  }

  /** No timer runs while nothing is held. */
  #stopWhenIdle(): void {
    if (this.#held.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** One sweep: every permit still held is renewed (the store batches the calls). */
  #renewAll(): void {
    for (const entry of this.#held) {
      const p = entry.ref.deref();
      if (p !== undefined) {
        void this.renew(p);
        continue;
      }
      // Dropped without release: its holders count until its lease runs out, no longer renewed.
      this.#held.delete(entry);
      this.#binding.abandon?.(entry.key, entry.cost, entry.at);
    }
    this.#stopWhenIdle();
  }
}

/** @internal A {@link Permit}. */
export class PermitImpl implements Permit {
  readonly allowed: boolean;
  readonly limit: number;
  readonly capacity: number;
  readonly gate: number;
  readonly remaining: number;
  readonly retryAfterMs: number;
  readonly resetAfterMs: number;
  readonly source: DecisionSource;
  readonly key: string;
  /** @internal The holders the permit counts for (the request's cost). */
  readonly cost: number;
  /** @internal When its holders count from, on the deciding store's clock. */
  at: number;
  /** @internal Where its holders are counted (first: where it was decided), for the store to release it there. */
  heldSource: DecisionSource;
  /** @internal What the renewal sweep holds of it (a permit of Holdings). */
  entry: HeldEntry | undefined;
  readonly #holdings: Holdings | undefined;
  /** Made when `signal` is first read: most permits are released without. */
  #abort: AbortController | undefined;
  #released: Promise<void> | undefined;
  #lost = false;
  /** The permit's store calls, one after another: the last one's settling, and how many are not settled. */
  #queue: Promise<unknown> = Promise.resolve();
  #pending = 0;

  constructor(holdings: Holdings | undefined, key: string, cost: number, held: Held) {
    const d = held.decision;
    this.allowed = d.allowed;
    this.limit = d.limit;
    this.capacity = d.capacity;
    this.gate = d.gate;
    this.remaining = d.remaining;
    this.retryAfterMs = d.retryAfterMs;
    this.resetAfterMs = d.resetAfterMs;
    this.source = d.source;
    this.heldSource = d.source;
    this.key = key;
    this.cost = cost;
    this.at = held.at;
    this.#holdings = holdings;
    // Callable detached, as a Decision's `release` is (`const { release } = d`).
    this.release = this.release.bind(this);
  }

  get held(): boolean {
    return this.#holdings !== undefined && this.#released === undefined && !this.#lost;
  }

  /** @internal Whether a renewal found the lease lost. */
  get lost(): boolean {
    return this.#lost;
  }

  get signal(): AbortSignal {
    return (this.#abort ??= new AbortController()).signal;
  }

  release(): Promise<void> {
    if (this.#released === undefined) {
      this.#released = this.#holdings === undefined || this.#lost ? Promise.resolve() : this.#holdings.release(this);
    }
    return this.#released;
  }

  extend(): Promise<boolean> {
    if (!this.held) return Promise.resolve(false);
    return this.#holdings!.renew(this);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  /** @internal Runs `f` after the permit's store calls before it (a release after a renewal in flight). */
  serial<T>(f: () => Promise<T>): Promise<T> {
    // Nothing before it: run now, so that an embedded store's release is done when release() returns.
    const next = this.#pending === 0 ? f() : this.#queue.then(f);
    this.#pending++;
    this.#queue = next.then(
      () => void this.#pending--,
      () => void this.#pending--,
    );
    return next;
  }

  /** @internal The lease was lost: no longer held, and the signal says so. */
  lose(): void {
    if (this.#lost) return;
    this.#lost = true;
    (this.#abort ??= new AbortController()).abort(new LeaseLostError(this.key));
  }
}
