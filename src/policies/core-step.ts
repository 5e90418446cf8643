import type { RateLimitStep } from './rate-limiter.js';
import { stepCore } from '../core/step-core.js';
import {
  STEP_A_INDEX, STEP_ALLOWED_INDEX, STEP_B_INDEX, STEP_C_INDEX, STEP_EXP_INDEX, STEP_REMAINING_INDEX, STEP_RETRY_AFTER_MS_INDEX,
} from '../../build/abi.js';
import type { CoreParams, CoreState } from './core-params.js';

const INITIAL: CoreState = Object.freeze([0, 0, 0, -Infinity] as const);

/**
 * One step of a built-in policy over a state passed in: the same arithmetic
 * as every store, run by the process's pure stepper (src/core/step-core.ts)
 * without touching any table.
 * @internal
 */
export function coreStep(params: CoreParams, state: CoreState, now: number, cost: number): RateLimitStep<CoreState> {
  const { core, out } = stepCore();
  const [a, b, c, exp] = state;
  core.step(params.code, params.p0, params.p1, params.p2, exp > now ? 1 : 0, a, b, c, cost, now);
  if (out[STEP_ALLOWED_INDEX] === 1) {
    const until = out[STEP_EXP_INDEX]!;
    return { allowed: true, state: [out[STEP_A_INDEX]!, out[STEP_B_INDEX]!, out[STEP_C_INDEX]!, until], remaining: out[STEP_REMAINING_INDEX]!, ttlMs: Math.max(0, until - now) };
  }
  return { allowed: false, retryAfterMs: out[STEP_RETRY_AFTER_MS_INDEX]!, remaining: out[STEP_REMAINING_INDEX]! };
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
