// Priorities of waiting callers: who of this process's callers waiting on one
// key goes first. A caller's rank is its priority raised by its waiting time
// (aging), so that a low priority is passed over for a bounded time only.
import { MAX_TIMER_MS } from '../core/clock.js';
import { ArgumentError } from '../errors.js';

/** The bound of a priority, either way: `priority` is a finite number in [-MAX_PRIORITY, MAX_PRIORITY]. */
export const MAX_PRIORITY = 1_000_000;

/**
 * Validates a call's `priority` (default 0; higher goes first).
 * @internal
 *
 * @example
 * ```ts
 * checkPriority(undefined); // 0
 * ```
 */
export function checkPriority(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) > MAX_PRIORITY) {
    throw new ArgumentError('priority', value, `a finite number from -${MAX_PRIORITY} to ${MAX_PRIORITY} (higher goes first; default 0)`);
  }
  return value;
}

/**
 * A waiter's rank, higher first: its priority raised by 1 for every
 * `agingMs` it has waited. Two waiters age alike, so their order is fixed
 * when the later arrives, and this single number (priority × agingMs minus
 * arrival time) orders them; ties go to the earlier arrival (its rank is
 * higher by the time between them). A waiter of priority p that began at
 * `since` is passed over by a newcomer of priority q only while
 * `now < since + (q - p) × agingMs`: after (highest priority − p) × agingMs
 * no one passes it any more.
 * @internal
 *
 * @example
 * ```ts
 * rank(0, 1000, performance.now());
 * ```
 */
export function rank(priority: number, agingMs: number, since: number): number {
  return priority * agingMs - since;
}

/** A caller of acquire() holding a booked moment of a key, not reached yet. */
interface Booked {
  readonly cost: number;
  readonly rank: number;
  /** The latest moment it may be given (performance.now() ms): its call's maxWaitMs. */
  readonly deadline: number;
  /** Its moment (performance.now() ms): when it goes. */
  at: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  go(): void;
}

/**
 * The booked moments of this process's acquire() callers on rate gates, per
 * key. The store books every caller on arrival, first come first served
 * (exact across the fleet); here the moments this process booked for one key
 * and cost are handed out by rank: a caller that outranks others booked
 * before it takes the earliest of their moments, and each of them moves one
 * moment later (never past its own maxWaitMs). The store's bookings are not
 * touched, so the limit holds whatever the order.
 * @internal
 *
 * @example
 * ```ts
 * const booked = new BookedMoments();
 * await booked.wait('partner-api', 1, r.waitMs, rank(5, 1000, performance.now()), Infinity, signal);
 * ```
 */
export class BookedMoments {
  readonly #byKey = new Map<string, Booked[]>();

  /**
   * Resolves at the moment booked `waitMs` from now, or at an earlier one of
   * a caller it outranks; rejects with the signal's reason when `signal`
   * aborts (the caller refunds its booking).
   */
  wait(key: string, cost: number, waitMs: number, callerRank: number, maxWaitMs: number, signal: AbortSignal | undefined): Promise<void> {
    const now = performance.now();
    return new Promise<void>((resolve, reject) => {
      // Aborted while it was being booked: it never waits.
      if (signal?.aborted === true) {
        reject(signal.reason);
        return;
      }
      const list = this.#byKey.get(key) ?? [];
      const leave = (b: Booked) => {
        clearTimeout(b.timer);
        const i = list.indexOf(b);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0 && this.#byKey.get(key) === list) this.#byKey.delete(key);
      };
      const onAbort = () => {
        leave(booked);
        reject(signal!.reason);
      };
      const booked: Booked = {
        cost,
        rank: callerRank,
        deadline: now + maxWaitMs,
        at: now + waitMs,
        timer: undefined,
        go: () => {
          leave(booked);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      if (list.length === 0) this.#byKey.set(key, list);
      this.#outrank(list, booked);
      list.push(booked);
      signal?.addEventListener('abort', onAbort, { once: true });
      for (const b of [...list]) if (b.timer === undefined) arm(b);
    });
  }

  /**
   * Hands `newcomer` (booked last) the earliest moment of the callers of its
   * cost it outranks, each of them moving one such moment later: an
   * insertion by rank into the moments already booked. A caller whose
   * maxWaitMs would not allow the newcomer's moment keeps its own.
   */
  #outrank(list: Booked[], newcomer: Booked): void {
    const movable = list
      .filter((b) => b.cost === newcomer.cost && b.at < newcomer.at && b.rank < newcomer.rank && b.deadline >= newcomer.at)
      .sort((x, y) => x.at - y.at);
    let pending = newcomer;
    for (const b of movable) {
      if (pending.rank <= b.rank) continue;
      const moment = b.at;
      b.at = pending.at;
      pending.at = moment;
      // b, now holding pending's later moment, is the one to place further.
      rearm(pending);
      rearm(b);
      pending = b;
    }
  }
}

function rearm(b: Booked): void {
  clearTimeout(b.timer);
  b.timer = undefined;
}

/**
 * Fires `b.go` at `b.at`, in pieces for waits longer than a timer can hold,
 * counted down by the timers themselves (as clock.ts's sleep: the same
 * under fake timers).
 */
function arm(b: Booked): void {
  let left = b.at - performance.now();
  const piece = () => {
    if (!(left > 0)) {
      b.go();
      return;
    }
    const step = Math.min(left, MAX_TIMER_MS);
    left -= step;
    b.timer = setTimeout(piece, step);
  };
  piece();
}
