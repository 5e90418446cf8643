// How limitedFetch paces a key's calls by what the upstream answered: in
// this process alone (an AdaptivePacer), or across the fleet (a store's
// SharedPace, with the AdaptivePacer for the moments the store cannot
// answer). One interface, so that limitedFetch has one code path.
import { sleep } from '../core/clock.js';
import type { PaceSlot, PaceStep, QuotaReport, SharedPace } from '../limiter/store.js';
import type { AdaptivePacer } from './adaptive.js';

/** A call's turn: what its outcome is reported with. */
export interface Turn {
  /** The local pacer's ticket, when it admitted the call (no shared pace, or the store could not answer). */
  readonly local: number | undefined;
  /** The shared pace's answer, when it admitted the call: its ticket, the fleet's spacing then, the shape learned. */
  readonly slot: PaceSlot | undefined;
}

/**
 * The pace of a key's calls, as limitedFetch uses it: `before` the limiter,
 * then `admit` once the limiter admitted the call, just before it is sent.
 * @internal
 */
export interface CallPace {
  /**
   * Waits, before the limiter is asked, until the key is not held and its
   * start has come (rejects with the signal's reason on abort); resolves with
   * what `giveBack` needs if the call is then not sent.
   */
  before(key: string, signal: AbortSignal | undefined): Promise<unknown>;
  /** A call that passed `before` was not sent (it gave up waiting for the limiter, or `admit` sent it back): its start goes back. */
  giveBack(key: string, start: unknown): Promise<void>;
  /**
   * Waits until a call of `key` may start (rejects with the signal's reason
   * on abort), or answers `undefined` when it must wait (a hold written, or
   * the upstream's window spent, since `before`): the caller then gives its
   * admission back and starts over from `before`, so that what waited is
   * spaced again by the limiter instead of released at once.
   */
  admit(key: string, signal: AbortSignal | undefined): Promise<Turn | undefined>;
  /** The upstream refused the call: hold the key `holdMs` (undefined: one spacing) and slow it. */
  pushback(key: string, turn: Turn, holdMs: number | undefined): Promise<void>;
  /** The upstream's quota is spent for `holdMs`: hold without slowing. */
  pause(key: string, holdMs: number): Promise<void>;
  /** The upstream accepted the call. */
  success(key: string, turn: Turn): void;
  /** An answer's request quota with its reset: the fleet's starts are booked into the upstream's window (a shared pace only). */
  quota(key: string, report: QuotaReport): Promise<void>;
}

/** A ticket that counts as current in an AdaptivePacer: for a call it did not admit. */
const CURRENT = Number.MAX_SAFE_INTEGER;

/**
 * One process's pace: the AdaptivePacer alone (an embedded store, or
 * `shared: false`).
 * @internal
 *
 * @example
 * ```ts
 * const pace = localPace(new AdaptivePacer());
 * const turn = await pace.admit('https://api.example', undefined);
 * ```
 */
export function localPace(pacer: AdaptivePacer): CallPace {
  return {
    // One process's hold is in its pacer's queue, after the limiter.
    async before() {},
    async giveBack() {},
    async admit(key, signal) {
      return { local: await pacer.admit(key, signal), slot: undefined };
    },
    async pushback(key, turn, holdMs) {
      pacer.pushback(key, turn.local ?? CURRENT, holdMs);
    },
    async pause(key, holdMs) {
      pacer.pause(key, holdMs);
    },
    success(key, turn) {
      if (turn.local !== undefined) pacer.success(key, turn.local);
    },
    // One process alone holds at a spent quota (limitedFetch's pause), no more.
    async quota() {},
  };
}

/**
 * The fleet's pace: before the limiter, every call waits in the store's
 * shared pace for a hold any process learned to end and for its start, one
 * fleet spacing after the previous one (reserved: a caller that gives up
 * gives it back), while the upstream's window has room; so the limiter,
 * asked after, spaces what a hold held back instead of releasing it at once.
 * Once admitted, just before the send, it asks again: it takes one of the
 * calls the upstream's window still accepts, or, held by a hold written
 * while it waited for the limiter (or the window spent meanwhile), gives its
 * admission back and starts over. What the upstream answers is written
 * there before the caller sees the answer.
 * Whenever the store cannot answer, the process's own pacer decides, and it
 * keeps every hold this process learned, so that an outage of the store
 * does not release what the upstream asked for.
 * @internal
 *
 * @example
 * ```ts
 * const pace = fleetPace(store.sharedPace, new AdaptivePacer(), 20); // a limiter of 50 a second
 * ```
 */
export function fleetPace(shared: SharedPace, pacer: AdaptivePacer, rateIntervalMs?: number): CallPace {
  // A first pushback halves the fleet's rate: twice the limiter's interval
  // (at most the pacer's initial spacing), not a fixed spacing that cuts a
  // fast upstream's rate many times over.
  const pacing =
    rateIntervalMs === undefined || !(rateIntervalMs > 0)
      ? pacer.pacing
      : { ...pacer.pacing, initialSpacingMs: Math.min(pacer.pacing.initialSpacingMs, 2 * rateIntervalMs) };
  /** 'start', then 'kept' after each wait, until an answer without a wait: the booking that reserved the start (for giveBack), undefined when none did or the store did not answer. */
  const walk = async (key: string, signal: AbortSignal | undefined): Promise<PaceSlot | undefined> => {
    let step: PaceStep = 'start';
    // The booking that reserved the call's start: what giveBack returns.
    let reserved: PaceSlot | undefined;
    for (;;) {
      const slot = await shared.book(key, step);
      if (slot !== undefined && step === 'start') reserved = slot;
      if (slot === undefined || slot.waitMs <= 0) return reserved;
      try {
        await sleep(slot.waitMs, signal);
      } catch (error) {
        // Aborted while waiting: a start it reserved goes back to the fleet.
        await shared.cancel(key, slot);
        throw error;
      }
      // After a reserved start, 'kept'; after a window's end, 'start' afresh.
      step = slot.forWindow ? 'start' : 'kept';
    }
  };
  return {
    async before(key, signal) {
      return walk(key, signal);
    },
    async giveBack(key, start) {
      if (start !== undefined) await shared.cancel(key, start as PaceSlot);
    },
    async admit(key, signal) {
      const slot = await shared.book(key, 'go');
      if (slot === undefined) return { local: await pacer.admit(key, signal), slot: undefined };
      return slot.waitMs > 0 ? undefined : { local: undefined, slot };
    },
    async pushback(key, turn, holdMs) {
      const standing = await shared.pushback(key, turn.slot?.ticket, holdMs, pacing);
      if (standing === undefined) pacer.pushback(key, turn.local ?? CURRENT, holdMs);
      else if (standing.holdMs > 0) pacer.pause(key, standing.holdMs);
    },
    async pause(key, holdMs) {
      await shared.pause(key, holdMs);
      pacer.pause(key, holdMs);
    },
    success(key, turn) {
      if (turn.local !== undefined) pacer.success(key, turn.local);
      // A call booked at full pace moves nothing (see pace.lua): no round trip.
      else if (turn.slot !== undefined && turn.slot.spacingMs > 0) void shared.success(key, turn.slot.ticket);
    },
    async quota(key, report) {
      await shared.quota(key, report);
    },
  };
}
