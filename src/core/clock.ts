import { ConfigError } from '../errors.js';

/** A source of time: returns epoch milliseconds, fractions allowed. */
export type Clock = () => number;

/**
 * Largest magnitude of time a clock may return: 2^42 ms, about the year 2109.
 * Time is an f64, and the gap between neighbouring doubles grows with their
 * size: at today's 1.8e12 ms it is 2^-12 ms, at 2^42 ms 2^-10 ms, and at a
 * clock in nanoseconds (1.8e18) 256 ms, where every interval below that
 * rounds away and a limit admits without end. Clocks past the bound are
 * refused, not believed.
 */
export const MAX_CLOCK_MS = 2 ** 42;

/**
 * A clock reading, checked: a finite number of epoch milliseconds within
 * ±{@link MAX_CLOCK_MS}; otherwise a ConfigError naming the clock.
 * @internal
 */
export function checkNow(now: unknown): number {
  // The throw is out of line: this is on every decision's path, and a small
  // body is what V8 inlines into its callers.
  if (typeof now !== 'number' || !(now <= MAX_CLOCK_MS && now >= -MAX_CLOCK_MS)) badClock(now);
  return now as number;
}

function badClock(now: unknown): never {
  throw new ConfigError('clock', now, `a function returning epoch milliseconds within ±2^42 (finite, and not nanoseconds)`);
}

/**
 * `clock` with every reading checked by {@link checkNow}: what a `Limiter`
 * decides by when it is given a clock of the caller's.
 * @internal
 */
export function checkedClock(clock: Clock): Clock {
  return () => checkNow(clock());
}

const origin = performance.timeOrigin;

/**
 * Epoch milliseconds with sub-millisecond precision, read afresh at every
 * call, from the monotonic `performance.now()` (it never steps back when the
 * system clock is adjusted).
 *
 * @example
 * ```ts
 * const limiter = new Limiter({ policy, clock: systemClock }); // one clock read per decision
 * ```
 */
export const systemClock: Clock = () => origin + performance.now();

/** Decisions that may share one reading within a task before it is read again. */
const READS_PER_TASK = 64;
let cached = 0;
let uses = 0;
let expiryQueued = false;
const expire = () => {
  uses = 0;
  expiryQueued = false;
};
/**
 * The expiry is queued as a reaction of a settled promise rather than by
 * `queueMicrotask`: both run at the same microtask checkpoint, but Node's
 * `queueMicrotask` wraps each callback for async hooks, which cost about
 * 220 ns per fresh reading here against about 100 ns for a reaction, and a
 * loop of `await limit()` pays it on every decision.
 */
const settled = Promise.resolve();

/**
 * The default clock of a {@link Limiter}: {@link systemClock}, read at most
 * once per task and again after 64 decisions. A clock read costs 50-100 ns,
 * more than a whole decision in the core, so decisions made in one
 * synchronous run of code share the run's starting time; the reading expires
 * at the next microtask checkpoint, so every `await`, timer or I/O callback
 * sees fresh time, and a synchronous spin loop still sees time move.
 *
 * The price: a decision is timestamped up to one synchronous run early. Pass
 * `clock: systemClock` for one reading per decision.
 *
 * @example
 * ```ts
 * const t0 = taskClock();
 * taskClock() === t0; // true: same task
 * await Promise.resolve();
 * taskClock() >= t0;  // true: a fresh reading
 * ```
 */
export const taskClock: Clock = () => {
  if (uses > 0) {
    uses--;
    return cached;
  }
  cached = origin + performance.now();
  uses = READS_PER_TASK - 1;
  if (!expiryQueued) {
    expiryQueued = true;
    void settled.then(expire);
  }
  return cached;
};

/** setTimeout fires at once for longer delays (they overflow an int32): longer waits are slept in pieces. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Resolves after `ms` (slept in pieces of at most {@link MAX_TIMER_MS}, so a
 * wait of 30 days is 30 days, not the 1 ms a plain setTimeout would give it),
 * or rejects with the signal's reason when it aborts.
 * @internal
 *
 * @example
 * ```ts
 * await sleep(r.waitMs, signal);
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    // Counted down by the timers themselves, not by reading a clock: the same under fake timers.
    let left = ms;
    const arm = () => {
      if (!(left > 0)) {
        signal?.removeEventListener('abort', onAbort);
        resolve();
        return;
      }
      const step = Math.min(left, MAX_TIMER_MS);
      left -= step;
      timer = setTimeout(arm, step);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    arm();
  });
}
