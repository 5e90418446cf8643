// The core's form of a built-in policy and of its state: the types every
// policy module, the RateLimiter face (core-step.ts) and the stores share,
// apart from any of them so that none has to import another for them.

/**
 * The form every policy takes inside the core: an algorithm code and three
 * numbers whose meaning depends on it (abi/abi.mjs documents each).
 * Stores read only this; the other fields of a policy are for people.
 *
 * @example
 * ```ts
 * const { code, p0, p1, p2, capacity } = gcra({ limit: 10, period: '1s' }).core;
 * ```
 */
export interface CoreParams {
  /** Algorithm code of the core (`CODE`, KIND_* in abi/abi.mjs). */
  readonly code: number;
  readonly p0: number;
  readonly p1: number;
  readonly p2: number;
  /**
   * The most one key can pass at once, reported as `Decision.capacity` and the
   * largest cost a request may have.
   */
  readonly capacity: number;
}

/**
 * A built-in policy's state in its RateLimiter view: the core's record
 * `[a, b, c, exp]` (abi/abi.mjs documents each algorithm's fields); `exp` is
 * when it decays to "never seen" (-Infinity: no state).
 *
 * @example
 * ```ts
 * const policy = gcra({ limit: 10, period: '1s' });
 * const step = policy.decide(policy.initial(), Date.now(), 1);
 * const next: CoreState | undefined = step.allowed ? step.state : undefined;
 * ```
 */
export type CoreState = readonly [a: number, b: number, c: number, exp: number];
