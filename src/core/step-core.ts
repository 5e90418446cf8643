// The process's pure stepper: one core instance with no table, created on
// first use, that runs step() for the RateLimiter face of every built-in
// policy (src/policies/core-step.ts).
//
// Why an instance of its own rather than a store's core: a policy's
// `decide(state, now, cost)` belongs to the policy, not to a store. One
// frozen policy serves any number of stores, and custom limiters that wrap or
// compose policies call it from wherever their states live: a Map beside the
// table (EmbeddedStore's CustomBinding) or JSON in Redis (CustomRedisBinding,
// which has no core at all). No store's core is at hand there, and step()
// touches no table anyway, so one small instance (a page of memory) per
// process serves them all.
import { STEP_BYTES } from '../../build/abi.js';
import { instantiateCore, type CoreExports } from './wasm.js';

/**
 * The pure stepper: its core and a view of step()'s output.
 * @internal
 */
export interface StepCore {
  readonly core: CoreExports;
  /** step()'s output at stepPtr(), one f64 per field (the STEP layout of abi/abi.mjs). */
  readonly out: Float64Array;
}

let shared: StepCore | undefined;

/**
 * The process's one tableless core for pure steps, instantiated on the first
 * call and the same on every later one.
 * @internal
 *
 * @example
 * ```ts
 * const { core, out } = stepCore();
 * core.step(CODE.gcra, 100, 10, 1000, 0, 0, 0, 0, 1, Date.now());
 * const allowed = out[STEP_ALLOWED_INDEX] === 1;
 * ```
 */
export function stepCore(): StepCore {
  if (shared === undefined) {
    const core = instantiateCore();
    core.init(0, 0, 0, 1, 1); // a table of one bucket, one policy, one batch entry: step() uses none
    // init allocates all the memory the instance will have and step() none, so
    // memory never grows and the view never goes stale.
    shared = { core, out: new Float64Array(core.memory.buffer, core.stepPtr(), STEP_BYTES / 8) };
  }
  return shared;
}
