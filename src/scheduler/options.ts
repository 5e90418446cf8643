// The Scheduler's options, and their checks: what a scheduler, a request
// and a close are given, with the defaults for what is left out.
import { DEFAULT_RETRY, retryPolicy, type RetryOptions, type RetryPolicy } from './backoff.js';
import { systemClock, type Clock } from '../core/clock.js';
import { checkDuration, DELAY_BOUNDS, MAX_DURATION_MS, type Duration } from '../core/duration.js';
import { checkPriority } from '../limiter/priority.js';
import { ArgumentError, ConfigError } from '../errors.js';
import type { Limiter } from '../limiter/limiter.js';
import { optionNames, strictOptions } from '../core/options.js';
import { holdsSlots } from '../policies/concurrency.js';
import { timersOption, type Timers } from '../core/timers.js';

/**
 * What a {@link Scheduler} needs of its limiter: a {@link Limiter} is one.
 * `reserve` books an execution and `refund` gives a cancelled booking back;
 * when `policies` include a {@link concurrency} gate, `limit` and `acquire`
 * take the permit an execution holds while it runs instead (`reserve`
 * refuses such a limiter). An object with only `reserve` and `refund` is
 * taken as a limiter of rates.
 *
 * @example
 * ```ts
 * const limiter: SchedulerLimiter = new Limiter({ policy: [gcra({ limit: 10, period: '1s' }), concurrency({ limit: 2 })] });
 * ```
 */
export type SchedulerLimiter = Pick<Limiter, 'reserve' | 'refund'> & Partial<Pick<Limiter, 'policies' | 'limit' | 'acquire'>>;

/** The timers a {@link Scheduler} waits with: see {@link Timers}. */
export type SchedulerTimers = Timers;

/**
 * Options of {@link Scheduler}.
 *
 * @example
 * ```ts
 * const options: SchedulerOptions = { limiter, concurrency: 4, retry: { attempts: Infinity, maxMs: 300_000 }, onError: console.error };
 * ```
 */
export interface SchedulerOptions {
  /**
   * Admits every execution: its `reserve` books it and its `refund` gives a
   * cancelled booking back; a limiter with a {@link concurrency} gate hands
   * each execution a permit instead, held while it runs (see
   * {@link SchedulerLimiter}).
   */
  limiter: SchedulerLimiter;
  /** Most executions running at once, across keys: a positive integer or `Infinity` (default {@link DEFAULT_CONCURRENCY}). */
  concurrency?: number;
  /** How failed tasks are retried (default {@link DEFAULT_RETRY}); `schedule` may override fields per call. */
  retry?: RetryOptions;
  /** Epoch milliseconds (default {@link systemClock}); inject the limiter's clock in tests. */
  clock?: Clock;
  /** Default: the global `setTimeout`/`clearTimeout`, looked up at each call (so fake timers apply). */
  timers?: SchedulerTimers;
  /**
   * Told of every failure that is final: the task failed on its last attempt
   * and no newer request for the key was waiting. The promises of the
   * requests it covered reject with the same error.
   */
  onError?: (error: unknown, key: string) => void;
  /**
   * How fast a due execution's `priority` rises while it waits for a slot
   * (default `'1s'`: by 1 a second, on the scheduler's clock): one of
   * priority p is passed over by later ones of priority q only during its
   * first (q − p) × aging of waiting. A {@link Duration} from 1 ms to 1000 days.
   */
  aging?: Duration;
}

/**
 * Options of {@link Scheduler.schedule}.
 *
 * @example
 * ```ts
 * scheduler.schedule('job:42', runJob, { delayMs: 30_000, retry: { attempts: 1 } });
 * ```
 */
export interface ScheduleOptions {
  /** Run no sooner than this long from now (default 0; at most 1000 days). */
  delayMs?: Duration;
  /** Retry fields for this request, over the scheduler's own. */
  retry?: RetryOptions;
  /**
   * Among executions due and waiting for one of the scheduler's
   * `concurrency` slots, higher goes first (default 0; a finite number up
   * to ±1,000,000), raised by 1 for every `aging` it has waited; requests
   * that coalesce run at the highest of their priorities. Passed on to
   * `limiter.acquire` with a concurrency gate.
   */
  priority?: number;
}

/**
 * Options of {@link Scheduler.close}.
 *
 * @example
 * ```ts
 * process.once('SIGTERM', () => void scheduler.close({ drain: false }));
 * ```
 */
export interface CloseOptions {
  /**
   * `true` (the default): run everything pending, retries included, and wait
   * for it. `false`: cancel what has not started (its promises reject with
   * {@link SchedulerClosedError}, its limiter bookings are refunded), abort
   * what runs through its signal, and wait for that to settle.
   */
  drain?: boolean;
}

const SCHEDULER_OPTIONS = optionNames<keyof SchedulerOptions>({ limiter: true, concurrency: true, retry: true, clock: true, timers: true, onError: true, aging: true });
const SCHEDULE_OPTIONS = optionNames<keyof ScheduleOptions>({ delayMs: true, retry: true, priority: true });
const CLOSE_OPTIONS = optionNames<keyof CloseOptions>({ drain: true });

/**
 * Executions running at once when `concurrency` is not given: enough for I/O
 * bound reconcilers, low enough that a burst of thousands of due keys does not
 * open thousands of connections at once.
 *
 * @example
 * ```ts
 * new Scheduler({ limiter, concurrency: DEFAULT_CONCURRENCY * 2 });
 * ```
 */
export const DEFAULT_CONCURRENCY = 10;

/** A Scheduler's options, checked and completed. @internal */
export interface SchedulerSettings {
  readonly limiter: SchedulerLimiter;
  /** How long (ms, scheduler clock) of waiting for a slot raises an execution's priority by 1. */
  readonly agingMs: number;
  /** Whether the limiter has a concurrency gate: executions hold its permits, not bookings. */
  readonly slots: boolean;
  readonly concurrency: number;
  readonly retry: RetryPolicy;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly onError: ((error: unknown, key: string) => void) | undefined;
}

/**
 * Checks the options of `new Scheduler()` (a ConfigError naming the first
 * bad one) and completes them with the defaults.
 * @internal
 */
export function schedulerSettings(options: SchedulerOptions): SchedulerSettings {
  const o = strictOptions(options, 'new Scheduler()', SCHEDULER_OPTIONS);
  const limiter = o.limiter as Partial<Limiter> | undefined;
  if (typeof limiter !== 'object' || limiter === null || typeof limiter.reserve !== 'function' || typeof limiter.refund !== 'function') {
    throw new ConfigError('limiter', limiter, 'a Limiter');
  }
  if (limiter.policies !== undefined && !Array.isArray(limiter.policies)) throw new ConfigError('limiter', limiter, 'a Limiter (its policies an array)');
  const slots = holdsSlots(limiter.policies);
  if (slots && (typeof limiter.limit !== 'function' || typeof limiter.acquire !== 'function')) {
    throw new ConfigError('limiter', limiter, 'a Limiter with limit and acquire, which its concurrency gate is taken through');
  }
  const concurrency = o.concurrency === undefined ? DEFAULT_CONCURRENCY : o.concurrency;
  if (typeof concurrency !== 'number' || !(concurrency === Infinity || (Number.isInteger(concurrency) && concurrency >= 1))) {
    throw new ConfigError('concurrency', concurrency, 'a positive integer or Infinity');
  }
  const retry = retryPolicy(o.retry, DEFAULT_RETRY, 'retry', ConfigError, 'new Scheduler({ retry })');
  const clock = o.clock === undefined ? systemClock : o.clock;
  if (typeof clock !== 'function') throw new ConfigError('clock', clock, 'a function returning epoch milliseconds');
  const timers = timersOption(o.timers);
  if (o.onError !== undefined && typeof o.onError !== 'function') throw new ConfigError('onError', o.onError, 'a function (error, key) => void');
  const agingMs = o.aging === undefined ? 1000 : checkDuration(o.aging, 'aging', { min: 1, max: MAX_DURATION_MS });
  return {
    limiter: limiter as SchedulerLimiter,
    agingMs,
    slots,
    concurrency,
    retry,
    clock: clock as Clock,
    timers,
    onError: o.onError as ((error: unknown, key: string) => void) | undefined,
  };
}

/**
 * Checks the options of one `schedule()` call (an ArgumentError naming the
 * first bad one): its delay, and its retry fields over the scheduler's own.
 * @internal
 */
export function scheduleSettings(options: ScheduleOptions | undefined, inherited: RetryPolicy): { delayMs: number; retry: RetryPolicy; priority: number } {
  if (options === undefined) return { delayMs: 0, retry: inherited, priority: 0 };
  const o = strictOptions(options, 'schedule()', SCHEDULE_OPTIONS, 'options', ArgumentError) as ScheduleOptions;
  const delayMs = o.delayMs === undefined ? 0 : checkDuration(o.delayMs, 'delayMs', DELAY_BOUNDS, ArgumentError);
  const priority = checkPriority(o.priority);
  return { delayMs, retry: retryPolicy(o.retry, inherited, 'retry', ArgumentError, 'schedule({ retry })'), priority };
}

/**
 * Checks the options of `close()` (an ArgumentError naming the bad one) and
 * tells whether to drain.
 * @internal
 */
export function drains(options: CloseOptions | undefined): boolean {
  if (options === undefined) return true;
  const { drain } = strictOptions(options, 'close()', CLOSE_OPTIONS, 'options', ArgumentError) as CloseOptions;
  if (drain !== undefined && typeof drain !== 'boolean') throw new ArgumentError('drain', drain, 'a boolean');
  return drain ?? true;
}
