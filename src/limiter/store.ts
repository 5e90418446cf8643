import type { Clock } from '../core/clock.js';
import type { Decision, DecisionSource, Reservation } from './decision.js';
import type { Policy } from '../policies/index.js';
import type { RateLimiter } from '../policies/rate-limiter.js';
import type { BlockGate } from './blocks.js';
import type { Carry } from '../policies/carry.js';

/**
 * Where limit state lives. A store is told the policies of a limiter once
 * ({@link Store.bind}) and hands back a binding that decides for them. Every
 * argument reaching a binding has been validated by the {@link Limiter}.
 *
 * @example
 * ```ts
 * const store = new EmbeddedStore({ maxKeys: 1_000_000 }); // shared by two limiters
 * const a = new Limiter({ policy: gcra({ limit: 5, period: '1s' }), store });
 * const b = new Limiter({ policy: fixedWindow({ limit: 100, window: '1m' }), store });
 * ```
 */
export interface Store {
  /**
   * Registers the gates of one limiter (all must admit a request) and returns
   * what decides for them. `block`, the limiter's block gate (blocks.ts), is
   * decided after them: a store that supports blocks keeps it with the key's
   * state and answers `block` and `penalize`.
   */
  bind(gates: readonly Policy[], clock: Clock, block?: BlockGate, plan?: PlanTag): StoreBinding;
  /**
   * Whether `bind` honours a {@link PlanTag}, keeping each key's plan record
   * itself (the Redis store, in its decide script).
   */
  readonly keepsPlans?: boolean;
  /**
   * The plan records of the limiter named `name`, kept in this store beside
   * the states (the embedded store): a limiter with plans keeps them itself.
   */
  planRecords?(name: string): PlanRecords;
  /** Registers a limiter whose policy is a custom {@link RateLimiter} (stores that support them). */
  bindCustom?(limiter: RateLimiter, clock: Clock): StoreBinding;
  /**
   * Where the processes sharing this store share what an upstream said of a
   * key (the Redis store): `limitedFetch` holds and paces every process's
   * calls by it. A store without it (the embedded one) paces each process
   * alone.
   */
  readonly sharedPace?: SharedPace;
}

/**
 * The constants of an AIMD pace, as a shared pace is told them with each
 * pushback (the pushing process's {@link AdaptivePacer}'s).
 *
 * @example
 * ```ts
 * const pacing: SharedPacing = { initialSpacingMs: 100, maxSpacingMs: 60_000, recoverySuccesses: 20 };
 * ```
 */
export interface SharedPacing {
  readonly initialSpacingMs: number;
  readonly maxSpacingMs: number;
  readonly recoverySuccesses: number;
}

/**
 * A call's turn in a shared pace: wait `waitMs`, then book again with
 * `again` (a hold set meanwhile moves it); `ticket` goes back with the
 * call's outcome.
 *
 * @example
 * ```ts
 * const slot: PaceSlot = { waitMs: 0, ticket: 0, spacingMs: 0, shape: -1, shapeVersion: 0, budgeted: false, burstIntolerant: false, forWindow: false }; // an upstream that never pushed back
 * ```
 */
export interface PaceSlot {
  readonly waitMs: number;
  readonly ticket: number;
  readonly spacingMs: number;
  /** The shape the fleet learned for the key (SHAPE_* of abi/abi.mjs), -1 before it learns one. */
  readonly shape: number;
  /** That shape's version (a plan version for setPolicy), 0 before. */
  readonly shapeVersion: number;
  /** Whether the call took one of the calls the upstream's window still accepts (as its quota headers said). */
  readonly budgeted: boolean;
  /** Whether the fleet saw the upstream refuse within its own quota (shape 'auto' paces the key for good). */
  readonly burstIntolerant: boolean;
  /** Whether the wait is for the upstream's window to end (nothing reserved: ask again with 'start', or 'go' again). */
  readonly forWindow: boolean;
}

/**
 * A call's step through a shared pace (src/stores/redis/pace.lua's 'book'
 * has the rule): `'start'` before the limiter, `'kept'` once a reserved
 * start has come, `'go'` once the limiter admitted it, just before it is sent.
 *
 * @example
 * ```ts
 * const step: PaceStep = 'start';
 * ```
 */
export type PaceStep = 'start' | 'kept' | 'go';

/**
 * What an upstream's quota headers said, as a shared pace is told it: the
 * calls it still accepts in its window, and when that window ends.
 *
 * @example
 * ```ts
 * const q: QuotaReport = { remaining: 40, resetMs: 20_000, limit: 100, windowMs: 60_000 };
 * ```
 */
export interface QuotaReport {
  readonly remaining: number;
  readonly resetMs: number;
  readonly limit?: number | undefined;
  readonly windowMs?: number | undefined;
}

/**
 * A key's shape as a shared pace has learned it (see {@link SharedPace.learn}).
 *
 * @example
 * ```ts
 * const learned: LearnedShape = { shape: 1, version: 61_000_000, evidence: 5 }; // SHAPE_QUOTA
 * ```
 */
export interface LearnedShape {
  readonly shape: number;
  readonly version: number;
  /** Accepted answers seen with quota headers and a reset. */
  readonly evidence: number;
}

/**
 * How a key stands in a shared pace: held for `holdMs` more, its calls
 * `spacingMs` apart across the fleet.
 *
 * @example
 * ```ts
 * const s: PaceStanding = { holdMs: 2000, spacingMs: 100 };
 * ```
 */
export interface PaceStanding {
  readonly holdMs: number;
  readonly spacingMs: number;
}

/**
 * An upstream's pace of each key, kept where every process sharing a store
 * reads it (src/stores/redis/pace.lua has the rule, the same as
 * AdaptivePacer's). Every method resolves with `undefined` when the store
 * could not answer: the caller paces by what its own process knows.
 *
 * @example
 * ```ts
 * const slot = await store.sharedPace?.book('https://api.example', 'start');
 * ```
 */
export interface SharedPace {
  /** A call's `step` (see {@link PaceStep}): wait `waitMs`, then take the next step (the same after a wait for a hold or a window's end). */
  book(key: string, step: PaceStep): Promise<PaceSlot | undefined>;
  /** The upstream refused a call: hold the key `delayMs` (or one spacing), and halve its pace if the ticket is current. */
  pushback(key: string, ticket: number | undefined, delayMs: number | undefined, pacing: SharedPacing): Promise<PaceStanding | undefined>;
  /** Hold the key `delayMs` without slowing it (a quota spent until its reset). */
  pause(key: string, delayMs: number): Promise<PaceStanding | undefined>;
  /** The upstream accepted a call: its pace recovers by a step if the ticket is current. */
  success(key: string, ticket: number): Promise<PaceStanding | undefined>;
  /** How the key stands, changing nothing. */
  peek(key: string): Promise<PaceStanding | undefined>;
  /** A caller stopped waiting for the start `slot` booked: what the booking took is given back while it is still ahead. */
  cancel(key: string, slot: PaceSlot): Promise<void>;
  /**
   * An answer's quota headers: the fleet's starts are booked into the
   * upstream's window, at most what it accepts before its reset, the rest
   * into the next window. Resolves with the ms to the window's end and the
   * calls still bookable in it.
   */
  quota(key: string, report: QuotaReport): Promise<{ readonly endsInMs: number; readonly left: number } | undefined>;
  /** What an answer showed of the upstream: `'quota'` (accepted, with quota headers) or `'burst'` (refused while quota remained). */
  learn(key: string, evidence: 'quota' | 'burst'): Promise<LearnedShape | undefined>;
}

/** What decides for one limiter's gates in a {@link Store}. */
export interface StoreBinding {
  limit(key: string, cost: number, dryRun: boolean): Decision | Promise<Decision>;
  limitMany(keys: readonly string[], cost: number): Decision[] | Promise<Decision[]>;
  reserve(key: string, cost: number, maxWaitMs: number): Reservation | Promise<Reservation>;
  refund(key: string, cost: number): void | Promise<void>;
  reset(key: string): void | Promise<void>;
  /**
   * `limit` without a dry run, answered at once, for bindings that decide in
   * process (the embedded store, leased mode); `limitSync` needs it. One
   * method name for all of them keeps `limitSync`'s call site cheap when
   * limiters of different stores share a process.
   */
  limitNow?(key: string, cost: number): Decision;
  /**
   * Whether every decision is made in process, exactly and synchronously
   * (the embedded store): `limitNow` then answers whatever `limit` would.
   * (Leased mode also has `limitNow`, but denies keys it holds no lease for.)
   */
  readonly inProcess?: boolean;
  /** `limitMany`, answered at once (see `limitNow`). */
  limitManyNow?(keys: readonly string[], cost: number): Decision[];
  /**
   * For gates that include a concurrency gate: `limit`, answering also the
   * time (on the deciding store's clock) the admitted holders count from,
   * which `release` and `renew` are given back.
   */
  hold?(key: string, cost: number): Held | Promise<Held>;
  /** `hold`, answered at once (see `limitNow`). */
  holdNow?(key: string, cost: number): Held;
  /** Returns the holders of a permit `hold` admitted (`at`, `source`: its Held) to the concurrency gates. */
  release?(key: string, cost: number, at: number, source: DecisionSource): void | Promise<void>;
  /**
   * Renews a permit (`at`, `source`: its Held, or its last Renewal): answers
   * when and where its holders count from now, or undefined when its lease
   * is lost and there is no room to take it again.
   */
  renew?(key: string, cost: number, at: number, source: DecisionSource): Renewal | undefined | Promise<Renewal | undefined>;
  /**
   * A permit was dropped without release and collected (`at`: its time): it
   * is no longer renewed, and its holders stop counting when its lease runs
   * out. For a store that counts its own holders (the Redis store's share).
   */
  abandon?(key: string, cost: number, at: number): void;
  /**
   * Blocks the key for `durationMs` from now (its block gate), or unblocks it
   * when `durationMs` is 0 (its denials counted toward a block forgotten too).
   */
  block?(key: string, durationMs: number): void | Promise<void>;
  /** Spends `cost` in every rate gate of the key without asking, past its limit if need be: the key owes it. */
  penalize?(key: string, cost: number): void | Promise<void>;
  /**
   * Lowers the key's remaining to `remaining` (an integer from 0), never
   * raising it, in one atomic step: with r_g each rate gate's remaining as
   * a peek of cost 1 finds it admissible now (0 when it would deny, else its
   * remaining + 1), when the fewest is above `remaining` the gate with the
   * fewest (the first on ties) is charged the difference now, as `penalize`
   * charges; no other gate changes (concurrency gates, the block: never).
   */
  lower?(key: string, remaining: number): void | Promise<void>;
  /**
   * Moves the key's state from `from` (another plan's binding of the same
   * store and limiter) into this one's gates, converting its use by `carry`
   * (src/policies/carry.ts), and forgets it there: for stores whose plan
   * records the limiter keeps (embedded). Answers what became of it (see
   * {@link CarryOutcome}).
   */
  carryFrom?(from: StoreBinding, key: string, carry: Carry): CarryOutcome;
  /**
   * The binding's plan becomes this one's (the same gates, another version
   * or carry): for a store that keeps the plan records (Redis), what its
   * next batches say.
   */
  retag?(plan: PlanTag): void;
  /**
   * Registers what renews every held permit of the limiter now: called when
   * the store's view of them changes at once (Redis gone, or back).
   */
  onRenewalDue?(renewNow: () => void): void;
}

/** What `StoreBinding.renew` answers for a permit still held. */
export interface Renewal {
  /** When its holders count from now, on the deciding store's clock. */
  readonly at: number;
  /** Where they are counted (a permit the fallback admitted moves to Redis once it is back). */
  readonly source: DecisionSource;
}

/**
 * What `StoreBinding.hold` answers: the decision, and when allowed the time
 * its holders count from (the deciding clock's), for release and renewal.
 */
export interface Held {
  readonly decision: Decision;
  readonly at: number;
}

/**
 * What a binding of one plan of a limiter with plans (src/limiter/plans.ts)
 * is bound with.
 *
 * @example
 * ```ts
 * const binding = store.bind(gates, clock, block, { name: 'api', version: 2, carry: 'proportional', stale: (key) => cache.delete(key) });
 * ```
 */
export interface PlanTag {
  /** The limiter's name: its states and records are its own. */
  readonly name: string;
  /** The plan's version: across a fleet the newest recorded plan of a key wins. */
  readonly version: number;
  /** How a key moves into this plan from its recorded one. */
  readonly carry: Carry;
  /** Called when the store decided a call of `key` by a newer plan recorded for it: the limiter resolves the key again. */
  readonly stale: (key: string) => void;
}

/**
 * Each key's record of its plan, in an embedded store (src/limiter/plans.ts).
 *
 * @example
 * ```ts
 * const records = store.planRecords!('api');
 * if (records.get(key, now)?.serial !== plan.serial) moveKey(key);
 * ```
 */
export interface PlanRecords {
  /** The key's record at `now`: the plan's serial (the limiter's numbering), kept until `until`. */
  get(key: string, now: number): { readonly serial: number; readonly until: number } | undefined;
  /** Records the key's plan until `until`; false when the table, full at its cap, could not keep it. */
  put(key: string, serial: number, until: number, now: number): boolean;
}

/**
 * What `StoreBinding.carryFrom` did: `'none'`, the old binding held nothing
 * of the key; `'moved'`, its states are the new binding's now; `'full'`, a
 * table full at its cap had no room for them, and the key stays whole where
 * it was.
 *
 * @example
 * ```ts
 * if (binding.carryFrom!(old, key, 'proportional') === 'full') plan = recorded;
 * ```
 */
export type CarryOutcome = 'none' | 'moved' | 'full';
