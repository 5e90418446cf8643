import type { RateLimitStep } from '../scheduler/rate-limiter.js';
import { instantiateCore, type CoreExports } from '../core/wasm.js';
import type { CoreParams } from './policy.js';

/**
 * A built-in policy's state in its RateLimiter view: the core's record
 * `[a, b, c, exp]` (assembly/algorithms.ts documents each algorithm's
 * fields); `exp` is when it decays to "never seen" (-Infinity: no state).
 */
export type CoreState = readonly [a: number, b: number, c: number, exp: number];

const INITIAL: CoreState = Object.freeze([0, 0, 0, -Infinity] as const);

/** One core instance with no table, for pure steps (allocated on first use). */
let core: CoreExports | undefined;
let out: Float64Array;

/**
 * One step of a built-in policy over a state passed in: the same arithmetic
 * as every store, run by the core without touching any table.
 * @internal
 */
export function coreStep(params: CoreParams, state: CoreState, now: number, cost: number): RateLimitStep<CoreState> {
  if (core === undefined) {
    core = instantiateCore();
    core.init(0, 0, 0, 1, 1); // no table to speak of: step() touches none
    out = new Float64Array(core.memory.buffer, core.stepPtr(), 8);
  }
  const [a, b, c, exp] = state;
  core.step(params.code, params.p0, params.p1, params.p2, exp > now ? 1 : 0, a, b, c, cost, now);
  if (out[7] === 1) {
    return { allowed: true, state: [out[0]!, out[1]!, out[2]!, out[3]!], remaining: out[4]!, ttlMs: Math.max(0, out[3]! - now) };
  }
  return { allowed: false, retryAfterMs: out[5]!, remaining: out[4]! };
}

/**
 * The RateLimiter face every built-in policy wears: its name (the algorithm
 * and its parameters), its capacity, and pure `initial`/`decide`.
 * @internal
 */
export function limiterView(params: CoreParams) {
  return {
    name: `${params.code}:${params.p0}:${params.p1}:${params.p2}`,
    capacity: params.capacity,
    initial: (): CoreState => INITIAL,
    decide(this: { readonly core: CoreParams }, state: CoreState, now: number, cost: number): RateLimitStep<CoreState> {
      return coreStep(this.core, state, now, cost);
    },
  };
}
