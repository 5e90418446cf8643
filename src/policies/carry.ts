// What a key's used capacity becomes when its plan changes (Limiter.setPolicy,
// a resolver's new answer): the arithmetic of a carry, the same as
// src/stores/redis/lua/carry.lua's (test/plans.test.ts holds them equal).
//
// A carry goes gate by gate: a gate of the new plan that the old one has too
// (the same parameters) keeps its state as it is; another takes the use of
// the old gate nearest to it in time scale (`carrySources`) among those the
// new plan does not keep, or starts empty when there is none:
// the old state's use at the moment of the change (units of its capacity,
// more than all of it for a key that owes a penalty or has booked ahead) is
// turned into the new gate's by the strategy (a count rounded up to a whole
// unit; GCRA's use stays exact), and the new gate's state is built to hold
// that use now and to be rid of it no later than the old state would have
// been (`carriedState`): nothing the key used is forgotten, nothing is
// granted by the change itself, and a key moved again and again (nodes that
// disagree) is not held past its old state's end by the moves.
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
 * - `'reset'`: the key starts afresh under the new plan, when that is of a
 *   newer version (a choice, never the default; plans of one version that
 *   take turns, such as nodes that disagree, carry the use proportionally).
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
  // Proportional scales the share of the capacity used; what is owed past
  // it (bookings ahead, a penalty's debt) is time to wait, kept as time: the
  // units scale by the rates' ratio (capacity over horizon). Scaled by the
  // capacities' ratio, 28 bookings ahead under gcra 50/s (a burst of 1)
  // would owe 1400 units of a bucket of 50 a second: 28 s for 0.56 s.
  const rates = to.capacity / horizonOf(to) / (from.capacity / horizonOf(from));
  const units =
    carry === 'as-is'
      ? to.capacity - Math.min(from.capacity - used, to.capacity)
      : (Math.min(used, from.capacity) * to.capacity) / from.capacity + Math.max(0, used - from.capacity) * rates;
  if (units <= EPSILON) return 0;
  // GCRA's TAT holds a fraction of a unit; the other algorithms count whole ones.
  return to.code === CODE.gcra ? units : Math.ceil(units - EPSILON);
}

/**
 * Gate `to`'s state holding `units` (> 0) used at `now` and rid of them by
 * `end` (the old state's decay, after `now`) or sooner: a window or a
 * bucket's refill period keeps the old one's end where it can; GCRA's use
 * drains at its own rate. Returns `[a, b, c, exp]`.
 *
 * @example
 * ```ts
 * carriedState(linearWindow({ limit: 20, within: '1m' }).core, 12, now + 10_000, now); // [now - 50_000, 12, 0, now + 10_000]
 * ```
 */
export function carriedState(to: CoreParams, units: number, end: number, now: number): [number, number, number, number] {
  const { code, p0, p1, p2 } = to;
  switch (code) {
    case CODE.gcra: {
      const tat = now + units * p0;
      return [tat, 0, 0, tat];
    }
    case CODE.tokenInterval: {
      // Anchored so that the refills give the units back by `end`, or as
      // soon as refills can: its first refill within a period from now,
      // never at once (that would give back at the change itself).
      const tokens = p0 - units;
      const steps = Math.ceil(units / p1);
      const anchor = Math.max(now - p2 + Math.min(1, p2 / 2), Math.min(now, end - steps * p2));
      return [anchor, tokens, 0, anchor + steps * p2];
    }
    // A window's use past its limit (bookings made ahead, a debt) fills the
    // windows after it, as the window's own reservations would: full ones
    // up to the last, which holds the rest.
    case CODE.fixed: {
      const idx = Math.floor(now / p0);
      const ahead = windowsAhead(units, p1);
      return [idx + ahead, units - ahead * p1, 0, (idx + ahead + 1) * p0];
    }
    case CODE.linear: {
      const ahead = windowsAhead(units, p1);
      const start = Math.min(now, end - p0) + ahead * p0;
      return [start, units - ahead * p1, 0, start + p0];
    }
    case CODE.sliding: {
      const idx = Math.floor(now / p0);
      const ahead = windowsAhead(units, p1);
      if (ahead > 0) return [idx + ahead, units - ahead * p1, 0, (idx + ahead + 2) * p0];
      // Gone by the end of this window: the previous window's count, weighted by what is left of it.
      if (end <= (idx + 1) * p0) return [idx, 0, Math.ceil(units / (1 - (now - idx * p0) / p0) - EPSILON), (idx + 1) * p0];
      return [idx, units, 0, (idx + 2) * p0];
    }
    default:
      throw new TypeError(`cellgate: no carry into algorithm code ${code}`);
  }
}

/** The whole windows of `limit` that `units` fill before the window holding their rest. */
function windowsAhead(units: number, limit: number): number {
  return units > limit ? Math.ceil(units / limit) - 1 : 0;
}

/**
 * How long (ms) a gate's state lasts after its capacity was used up: from
 * full use to none. Its time scale, for matching gates across plans.
 *
 * @example
 * ```ts
 * horizonOf(fixedWindow({ limit: 100, window: '1h' }).core); // 3600000
 * ```
 */
export function horizonOf(core: CoreParams): number {
  const { code, p0, p1, p2 } = core;
  if (code === CODE.gcra) return p2;
  if (code === CODE.tokenInterval) return Math.ceil(p0 / p1) * p2;
  return code === CODE.sliding ? 2 * p0 : p0;
}

const sameGate = (a: CoreParams, b: CoreParams): boolean => a.code === b.code && a.p0 === b.p0 && a.p1 === b.p1 && a.p2 === b.p2;

/**
 * Where each gate of the new plan takes its state from when a key moves
 * from `from` to `to`: `{ from: i, same: true }` when old gate i has the
 * same parameters (its state is kept as is), `{ from: i, same: false }` for
 * the old gate nearest in time scale (horizonOf's ratio, the first on a
 * tie) among the old gates the new plan does not keep, `undefined` when
 * there is none (the gate starts empty). lua/carry.lua's carrySource is the
 * same rule.
 *
 * @example
 * ```ts
 * carrySources([day.core], [perSecond.core, day.core]); // [undefined, { from: 0, same: true }]
 * ```
 */
export function carrySources(from: readonly CoreParams[], to: readonly CoreParams[]): ({ from: number; same: boolean } | undefined)[] {
  const kept = from.map((f) => to.some((t) => sameGate(f, t)));
  return to.map((t) => {
    const same = from.findIndex((f) => sameGate(f, t));
    if (same >= 0) return { from: same, same: true };
    let best = -1;
    let distance = Infinity;
    const h = horizonOf(t);
    from.forEach((f, i) => {
      if (kept[i]) return;
      const hf = horizonOf(f);
      const d = h > hf ? h / hf : hf / h;
      if (d < distance) {
        distance = d;
        best = i;
      }
    });
    return best < 0 ? undefined : { from: best, same: false };
  });
}
