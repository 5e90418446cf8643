/** A source of time: returns epoch milliseconds, fractions allowed. */
export type Clock = () => number;

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
    queueMicrotask(expire);
  }
  return cached;
};
