// How limitedFetch paces a key's calls by what the upstream answered: in
// this process alone (an AdaptivePacer), or across the fleet (a store's
// SharedPace, with the AdaptivePacer for the moments the store cannot
// answer). One interface, so that limitedFetch has one code path.
import { sleep } from '../core/clock.js';
import type { PaceSlot, QuotaReport, SharedPace } from '../limiter/store.js';
import type { AdaptivePacer } from './adaptive.js';

/** A call's turn: the ticket(s) its outcome is reported with. */
export interface Turn {
  /** The local pacer's ticket, when it admitted the call (the store could not answer). */
  readonly local: number | undefined;
  /** The shared pace's ticket, when it admitted the call. */
  readonly fleet: number | undefined;
  /** The fleet's spacing when the call was booked: 0 means a success moves nothing. */
  readonly spacingMs: number;
  /** The booking's slot in the shared pace (its shape, whether it took a known quota), when it admitted the call. */
  readonly slot?: PaceSlot | undefined;
}

/**
 * The pace of a key's calls, as limitedFetch uses it.
 * @internal
 */
export interface CallPace {
  /** Waits until a call of `key` may start (rejects with the signal's reason on abort). */
  admit(key: string, signal: AbortSignal | undefined): Promise<Turn>;
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
    async admit(key, signal) {
      return { local: await pacer.admit(key, signal), fleet: undefined, spacingMs: 0 };
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
 * The fleet's pace: every call books its start in the store's shared pace
 * (a hold any process learned, the fleet's AIMD spacing) and, after waiting
 * for it, books again, so that a hold written while it waited still holds
 * it. What the upstream answers is written there before the caller sees the
 * answer. Whenever the store cannot answer, the process's own pacer
 * decides, and it keeps every hold this process learned, so that an outage
 * of the store does not release what the upstream asked for.
 * @internal
 *
 * @example
 * ```ts
 * const pace = fleetPace(store.sharedPace, new AdaptivePacer());
 * ```
 */
export function fleetPace(shared: SharedPace, pacer: AdaptivePacer): CallPace {
  return {
    async admit(key, signal) {
      let again: PaceSlot | undefined;
      for (;;) {
        const slot = await shared.book(key, again);
        if (slot === undefined) return { local: await pacer.admit(key, signal), fleet: undefined, spacingMs: 0 };
        if (slot.waitMs <= 0) return { local: undefined, fleet: slot.ticket, spacingMs: slot.spacingMs, slot };
        await sleep(slot.waitMs, signal);
        again = slot;
      }
    },
    async pushback(key, turn, holdMs) {
      const standing = await shared.pushback(key, turn.fleet, holdMs, pacer.pacing);
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
      else if (turn.spacingMs > 0 && turn.fleet !== undefined) void shared.success(key, turn.fleet);
    },
    async quota(key, report) {
      await shared.quota(key, report);
    },
  };
}
