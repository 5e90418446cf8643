import { MAX_TIMER_MS, systemClock, type Clock } from '../core/clock.js';
import { checkDuration, DELAY_BOUNDS, MAX_DURATION_MS, type Duration } from '../core/duration.js';
import { ArgumentError, ConfigError } from '../errors.js';
import { checkKey } from '../core/key-hash.js';
import { strictOptions } from '../core/options.js';
import { timersOption, type Timers } from '../core/timers.js';

/**
 * Options of {@link AdaptivePacer}. Every field is optional.
 *
 * @example
 * ```ts
 * const options: AdaptivePacerOptions = { initialSpacingMs: 250, maxSpacingMs: 10_000, recoverySuccesses: 40 };
 * ```
 */
export interface AdaptivePacerOptions {
  /** Spacing between call starts set by a key's first pushback, above 0, at most 1000 days (default {@link DEFAULT_PACING}: 100 ms). */
  initialSpacingMs?: Duration;
  /** Most spacing that doubling reaches, from `initialSpacingMs` to 1000 days (default 60 s). */
  maxSpacingMs?: Duration;
  /**
   * Successes that bring the spacing from its last peak back to 0 (default
   * 20): each success takes `peak / recoverySuccesses` off it.
   */
  recoverySuccesses?: number;
  /** Milliseconds (default {@link systemClock}: a fresh reading per call); inject one in tests. */
  clock?: Clock;
  /** Default: the global `setTimeout`/`clearTimeout`, looked up at each call (so fake timers apply). */
  timers?: Timers;
}

/**
 * The constants of {@link AdaptivePacer} when none are given: a first
 * pushback spaces a key's calls 100 ms apart, each further one doubles that up
 * to 60 s, and 20 successes bring it back to 0.
 *
 * @example
 * ```ts
 * new AdaptivePacer({ ...DEFAULT_PACING, initialSpacingMs: 500 });
 * ```
 */
export const DEFAULT_PACING = Object.freeze({ initialSpacingMs: 100, maxSpacingMs: 60_000, recoverySuccesses: 20 });

/**
 * How a key stands in an {@link AdaptivePacer}, as returned by
 * {@link AdaptivePacer.stats}.
 *
 * @example
 * ```ts
 * const s: PaceStats | undefined = pacer.stats('https://api.example');
 * if (s !== undefined) console.log(`${s.waiting} calls wait ${s.waitMs} ms, then go ${s.spacingMs} ms apart`);
 * ```
 */
export interface PaceStats {
  /** Extra spacing between the starts of the key's calls, in ms (0: the limiter's pace alone). */
  readonly spacingMs: number;
  /** How long from now until the next call may start, in ms. */
  readonly waitMs: number;
  /** Calls waiting to start. */
  readonly waiting: number;
}

/** Most successes a recovery may take: beyond that the steps are too small to matter. */
const MAX_RECOVERY_SUCCESSES = 1_000_000;

interface Waiter {
  resolve(ticket: number): void;
  reject(error: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** What the pacer knows of one key: only keys the upstream pushed back on have one. */
interface KeyPace {
  /** Extra spacing between call starts, ms. */
  spacing: number;
  /** What each counted success takes off `spacing`: the peak over `recoverySuccesses`. */
  step: number;
  /** Generation of the last reduction: only calls admitted since then move the pace. */
  reducedAt: number;
  /** No call starts before this moment (pacer clock). */
  notBefore: number;
  /** When the last call started (pacer clock). */
  lastStart: number;
  /** Calls waiting to start, in arrival order. */
  readonly queue: Set<Waiter>;
  timer: unknown;
  hasTimer: boolean;
}

/**
 * Per-key pacing driven by what an upstream answers: the "listen to the
 * upstream" half of `limitedFetch` (limited-fetch.ts), HTTP-agnostic. Two controls per key:
 *
 * - **A not-before gate.** {@link AdaptivePacer.pushback} with a retry delay,
 *   or {@link AdaptivePacer.pause}, holds every call of the key until that
 *   moment: all callers of the process wait together, instead of each one
 *   finding out with its own refused request.
 * - **An extra spacing between call starts (AIMD).** A pushback on a call
 *   admitted under the current pace doubles the spacing (from 0 to
 *   `initialSpacingMs`, then x2 up to `maxSpacingMs`): the rate halves.
 *   Pushbacks on calls that were admitted before that reduction (the rest of
 *   the burst that provoked it) do not reduce it again, as TCP reduces once
 *   per window. Each success of a call admitted since the last reduction
 *   takes `peak / recoverySuccesses` off the spacing, so that
 *   `recoverySuccesses` successes in a row bring it back to 0: multiplicative
 *   decrease, additive recovery. A pushback without a retry delay also holds
 *   the key for one spacing from the moment it is reported.
 *
 * Waiting calls start in arrival order, one per spacing, under one timer per
 * key. A key is forgotten once its spacing is back to 0 and its gate is
 * open, so keys the upstream never pushed back on cost nothing. Timers exist
 * only while calls wait, and are not `unref`'d: waiting calls must run.
 *
 * Share one pacer between `limitedFetch` wrappers that call the same
 * upstream to make them slow down together.
 *
 * @example
 * ```ts
 * const pacer = new AdaptivePacer({ initialSpacingMs: 200 });
 * const ticket = await pacer.admit('partner');
 * const res = await fetch('https://partner.example/api');
 * if (res.status === 429) pacer.pushback('partner', ticket, 1000);
 * else pacer.success('partner', ticket);
 * ```
 */
export class AdaptivePacer {
  readonly #initial: number;
  readonly #max: number;
  readonly #recovery: number;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #keys = new Map<string, KeyPace>();
  /** Incremented at every reduction, of any key: a call's ticket is its value when the call was admitted. */
  #generation = 0;

  constructor(options?: AdaptivePacerOptions) {
    const o = options === undefined ? {} : strictOptions(options, 'AdaptivePacer', ['initialSpacingMs', 'maxSpacingMs', 'recoverySuccesses', 'clock', 'timers']);
    const initial =
      o.initialSpacingMs === undefined ? DEFAULT_PACING.initialSpacingMs : checkDuration(o.initialSpacingMs, 'initialSpacingMs', { ...DELAY_BOUNDS, above: true });
    // A shorter initial spacing given alone keeps the default cap; a longer one raises it.
    const max =
      o.maxSpacingMs === undefined
        ? Math.max(DEFAULT_PACING.maxSpacingMs, initial)
        : checkDuration(o.maxSpacingMs, 'maxSpacingMs', { min: initial, minName: 'initialSpacingMs', max: MAX_DURATION_MS });
    const recovery = o.recoverySuccesses === undefined ? DEFAULT_PACING.recoverySuccesses : o.recoverySuccesses;
    if (typeof recovery !== 'number' || !Number.isInteger(recovery) || recovery < 1 || recovery > MAX_RECOVERY_SUCCESSES) {
      throw new ConfigError('recoverySuccesses', recovery, `a positive integer up to ${MAX_RECOVERY_SUCCESSES}`);
    }
    const clock = o.clock === undefined ? systemClock : o.clock;
    if (typeof clock !== 'function') throw new ConfigError('clock', clock, 'a function returning milliseconds');
    const timers = timersOption(o.timers);
    this.#initial = initial;
    this.#max = max;
    this.#recovery = recovery;
    this.#clock = clock as Clock;
    this.#timers = timers;
  }

  /**
   * The pacer's constants, as given or defaulted: what a shared pace is told
   * with each pushback, so that the fleet's pace follows the same rule.
   *
   * @example
   * ```ts
   * new AdaptivePacer().pacing; // { initialSpacingMs: 100, maxSpacingMs: 60000, recoverySuccesses: 20 }
   * ```
   */
  get pacing(): { readonly initialSpacingMs: number; readonly maxSpacingMs: number; readonly recoverySuccesses: number } {
    return { initialSpacingMs: this.#initial, maxSpacingMs: this.#max, recoverySuccesses: this.#recovery };
  }

  /**
   * Waits until a call of `key` may start: past the key's gate and one
   * spacing after the previous start, behind the calls that waited before it.
   * Resolves with a ticket to hand back with the call's outcome; rejects with
   * the signal's reason when `signal` aborts (the call then never counts).
   * A key the upstream never pushed back on passes at once.
   *
   * @example
   * ```ts
   * const ticket = await pacer.admit('https://api.example', AbortSignal.timeout(30_000));
   * ```
   */
  async admit(key: string, signal?: AbortSignal): Promise<number> {
    checkKey(key);
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new ArgumentError('signal', signal, 'an AbortSignal');
    signal?.throwIfAborted();
    const pace = this.#keys.get(key);
    if (pace === undefined) return this.#generation;
    const now = this.#clock();
    if (pace.queue.size === 0 && now >= readyAt(pace)) {
      pace.lastStart = now;
      this.#forgetIfIdle(key, pace, now);
      return this.#generation;
    }
    return new Promise<number>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        waiter.onAbort = () => {
          if (!pace.queue.delete(waiter)) return;
          reject(signal.reason);
          this.#pump(key, pace);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      pace.queue.add(waiter);
      if (pace.queue.size === 1) this.#pump(key, pace);
    });
  }

  /**
   * The upstream refused a call of `key` (an HTTP 429, or a 503 with
   * `Retry-After`). Holds the key for `retryAfterMs` from now (or, when the
   * upstream named no moment, for one spacing), and halves the key's pace if
   * the call (`ticket`, from {@link AdaptivePacer.admit}) was admitted under
   * the current one.
   *
   * @example
   * ```ts
   * if (res.status === 429) pacer.pushback(key, ticket, Number(res.headers.get('retry-after')) * 1000);
   * ```
   */
  pushback(key: string, ticket: number, retryAfterMs?: Duration): void {
    checkKey(key);
    checkTicket(ticket);
    const delay = retryAfterMs === undefined ? undefined : checkDelay(retryAfterMs, 'retryAfterMs');
    const now = this.#clock();
    const pace = this.#pace(key);
    if (ticket >= pace.reducedAt) {
      pace.spacing = pace.spacing === 0 ? this.#initial : Math.min(this.#max, pace.spacing * 2);
      pace.step = pace.spacing / this.#recovery;
      pace.reducedAt = ++this.#generation;
    }
    pace.notBefore = Math.max(pace.notBefore, now + (delay ?? pace.spacing));
    this.#pump(key, pace);
  }

  /**
   * Holds the calls of `key` for `delayMs` from now without slowing its pace
   * afterwards: the upstream said its quota is spent until then (e.g.
   * `RateLimit-Remaining: 0` with a reset), which is information, not a
   * complaint.
   *
   * @example
   * ```ts
   * if (res.headers.get('x-ratelimit-remaining') === '0') pacer.pause(key, '30s');
   * ```
   */
  pause(key: string, delayMs: Duration): void {
    checkKey(key);
    const delay = checkDelay(delayMs, 'delayMs');
    const now = this.#clock();
    const pace = this.#pace(key);
    pace.notBefore = Math.max(pace.notBefore, now + delay);
    this.#pump(key, pace);
  }

  /**
   * The upstream accepted a call of `key`: if it was admitted since the last
   * reduction, the spacing recovers by one step (`peak /
   * recoverySuccesses`), and the key is forgotten once it is back to 0.
   *
   * @example
   * ```ts
   * if (res.ok) pacer.success(key, ticket);
   * ```
   */
  success(key: string, ticket: number): void {
    checkKey(key);
    checkTicket(ticket);
    const pace = this.#keys.get(key);
    if (pace === undefined) return;
    if (pace.spacing > 0 && ticket >= pace.reducedAt) {
      pace.spacing -= pace.step;
      // Floating-point steps rarely land on 0 exactly.
      if (pace.spacing < pace.step / 2) pace.spacing = 0;
    }
    this.#pump(key, pace);
  }

  /**
   * How `key` stands, or `undefined` when the pacer holds nothing for it
   * (its calls go at the limiter's pace alone).
   *
   * @example
   * ```ts
   * pacer.stats('https://api.example'); // { spacingMs: 200, waitMs: 840, waiting: 12 }
   * ```
   */
  stats(key: string): PaceStats | undefined {
    checkKey(key);
    const pace = this.#keys.get(key);
    if (pace === undefined) return undefined;
    return { spacingMs: pace.spacing, waitMs: Math.max(0, readyAt(pace) - this.#clock()), waiting: pace.queue.size };
  }

  #pace(key: string): KeyPace {
    let pace = this.#keys.get(key);
    if (pace === undefined) {
      pace = { spacing: 0, step: 0, reducedAt: 0, notBefore: -Infinity, lastStart: -Infinity, queue: new Set(), timer: undefined, hasTimer: false };
      this.#keys.set(key, pace);
    }
    return pace;
  }

  /** Starts the waiting calls that may start now, and sets the key's one timer for the next. */
  #pump(key: string, pace: KeyPace): void {
    if (pace.hasTimer) {
      this.#timers.clearTimeout(pace.timer);
      pace.hasTimer = false;
    }
    const now = this.#clock();
    while (pace.queue.size > 0) {
      const at = readyAt(pace);
      if (now < at) {
        // Rounded up: a timer that fires early only sets another one, never starts a call early.
        pace.timer = this.#timers.setTimeout(() => {
          pace.hasTimer = false;
          this.#pump(key, pace);
        }, Math.min(Math.ceil(at - now), MAX_TIMER_MS));
        pace.hasTimer = true;
        return;
      }
      const waiter = pace.queue.values().next().value as Waiter;
      pace.queue.delete(waiter);
      if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener('abort', waiter.onAbort);
      pace.lastStart = now;
      waiter.resolve(this.#generation);
    }
    this.#forgetIfIdle(key, pace, now);
  }

  #forgetIfIdle(key: string, pace: KeyPace, now: number): void {
    if (pace.spacing === 0 && pace.queue.size === 0 && now >= pace.notBefore) this.#keys.delete(key);
  }
}

/** The earliest moment the key's next call may start. */
function readyAt(pace: KeyPace): number {
  return Math.max(pace.notBefore, pace.lastStart + pace.spacing);
}

function checkTicket(ticket: unknown): void {
  if (typeof ticket !== 'number' || !Number.isInteger(ticket) || ticket < 0) {
    throw new ArgumentError('ticket', ticket, 'a ticket returned by AdaptivePacer.admit');
  }
}

function checkDelay(value: unknown, parameter: string): number {
  return checkDuration(value, parameter, DELAY_BOUNDS, ArgumentError);
}
