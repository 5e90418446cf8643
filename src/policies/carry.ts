// What a key's used capacity becomes when its plan changes (Limiter.setPolicy,
// a resolver's new answer): the arithmetic of a carry, the same as
// src/stores/redis/lua/carry.lua's (test/plans.test.ts holds them equal).
//
// A carry goes gate by gate (gate i of the old plan into gate i of the new):
// the old state's use at the moment of the change (units of its capacity,
// more than all of it for a key that owes a penalty or has booked ahead) is
// turned into the new gate's by the strategy, rounded up to a whole unit,
// and charged into a fresh state of the new gate: nothing the key used is
// forgotten, nothing is granted by the change itself.
import { ConfigError } from '../errors.js';
import { CODE, type CoreParams } from './policy.js';
import { CARRY_AS_IS, CARRY_PROPORTIONAL, CARRY_RESET } from '../../build/abi.js';

/**
 * What a key's used capacity becomes when its plan changes, gate by gate
 * (Bucket4j's strategies):
 * - `'proportional'` (default): the same share of the capacity stays used
 *   (3 of 10 used become 30 of 100);
 * - `'as-is'`: the same units stay available, up to the new capacity (7 of
 *   10 available stay 7 of 100; 70 of 100 become 10 of 10);
 * - `'reset'`: the key starts afresh under the new plan (a choice, never
 *   the default).
 *
 * @example
 * ```ts
 * limiter.setPolicy(gcra({ limit: 100, period: '1m' }), { carry: 'as-is' });
 * ```
 */
export type Carry = 'proportional' | 'as-is' | 'reset';

/** The strategies, for errors and checks. */
const CARRIES: readonly Carry[] = ['proportional', 'as-is', 'reset'];

/**
 * Validates a carry strategy (`parameter` names it in the error).
 * @internal
 */
export function checkCarry(value: unknown, parameter: string): Carry {
  if (value === undefined) return 'proportional';
  if (!CARRIES.includes(value as Carry)) throw new ConfigError(parameter, value, "'proportional', 'as-is' or 'reset'");
  return value as Carry;
}

/** The strategy's number on the wire (CARRY_* of abi/abi.mjs). */
export const carryCode = (carry: Carry): number => (carry === 'proportional' ? CARRY_PROPORTIONAL : carry === 'as-is' ? CARRY_AS_IS : CARRY_RESET);

/** Lets 0.9999999999 of a unit count as 1, as REMAINING_EPSILON does. */
const EPSILON = 1e-9;

/**
 * The units of its capacity a gate's state has used at `now` (0 for no
 * state): what is not available now, plus what is booked ahead of it, plus a
 * debt.
 *
 * @example
 * ```ts
 * usedOf(gcra({ limit: 10, period: '1s' }).core, [now + 300, 0, 0, now + 300], now); // 3
 * ```
 */
export function usedOf(core: CoreParams, state: ArrayLike<number>, now: number): number {
  const a = state[0]!;
  const b = state[1]!;
  const c = state[2]!;
  const { code, p0, p1, p2 } = core;
  switch (code) {
    case CODE.gcra:
      return a > now ? (a - now) / p0 : 0;
    case CODE.tokenInterval: {
      if (now < a) return p0 - b + p1 * Math.ceil((a - now) / p2);
      const k = Math.floor((now - a) / p2);
      return p0 - Math.min(p0, b + k * p1);
    }
    case CODE.fixed: {
      const idx = Math.floor(now / p0);
      return a > idx ? p1 + b : a === idx ? b : 0;
    }
    case CODE.linear:
      return now < a ? p1 + b : now < a + p0 ? b : 0;
    case CODE.sliding: {
      const idx = Math.floor(now / p0);
      const inView = 1 - (now - idx * p0) / p0;
      return a > idx ? p1 + b : a === idx ? c * inView + b : a === idx - 1 ? b * inView : 0;
    }
    default:
      throw new TypeError(`cellgate: no carry for algorithm code ${code}`);
  }
}

/**
 * The whole units gate `to` starts with used when a key that used `used` of
 * gate `from` moves to it under `carry` (0: a fresh state).
 *
 * @example
 * ```ts
 * carriedUse(3, fixedWindow({ limit: 10, window: '1m' }).core, fixedWindow({ limit: 100, window: '1m' }).core, 'proportional'); // 30
 * ```
 */
export function carriedUse(used: number, from: CoreParams, to: CoreParams, carry: Carry): number {
  if (carry === 'reset' || used <= 0) return 0;
  const units = carry === 'as-is' ? to.capacity - Math.min(from.capacity - used, to.capacity) : (used * to.capacity) / from.capacity;
  return units <= EPSILON ? 0 : Math.ceil(units - EPSILON);
}
