// A pure-TypeScript model of the core: the same algorithms over a Map per gate
// instead of a wasm table, written to be read rather than to be fast. It is
// the oracle of the property tests (wasm and model must agree bit for bit on
// the same sequences) and a contender in the benchmark.
//
// It mirrors assembly/algorithms.ts formula by formula; what it does not model
// is the table's bounded size (the model never evicts).
import type { Policy } from '../src/index.js';
import { CODE, MIN_RETRY_MS, REMAINING_EPSILON } from '../build/abi.js';

const { gcra: GCRA, tokenInterval: TOKEN_INTERVAL, fixed: FIXED, linear: LINEAR } = CODE;

interface State {
  a: number;
  b: number;
  c: number;
  exp: number;
}

interface Outcome {
  allowed: boolean;
  state: State;
  remaining: number;
  retry: number;
  reset: number;
}

/** The model's answer; the Decision fields of the library minus `source`. */
export interface ModelDecision {
  allowed: boolean;
  limit: number;
  capacity: number;
  gate: number;
  remaining: number;
  retryAfterMs: number;
  resetAfterMs: number;
}

export interface ModelReservation {
  allowed: boolean;
  waitMs: number;
  limit: number;
  capacity: number;
  gate: number;
  remaining: number;
}

/** What a policy was configured with, as Decision.limit reports it: a token bucket's capacity, the others' limit. */
function configured(policy: Policy): number {
  return policy.kind === 'tokenBucket' ? policy.capacity : policy.limit;
}

function floorRemaining(x: number): number {
  return Math.floor(x + REMAINING_EPSILON);
}

/** One algorithm step: the state (or undefined if never seen) and a request of `cost` at `t`. */
export function evaluate(policy: Policy, s: State | undefined, cost: number, t: number): Outcome {
  const { code, p0, p1, p2 } = policy.core;
  const deny = (wait: number) => Math.max(wait, MIN_RETRY_MS);
  if (code === GCRA) {
    const tat = s !== undefined && s.a > t ? s.a : t;
    const newTat = tat + cost * p0;
    const allowAt = newTat - p2;
    const allowed = allowAt <= t;
    const a = allowed ? newTat : tat;
    const rem = Math.floor((t + p2 - a) / p0 + REMAINING_EPSILON);
    return {
      allowed,
      state: { a, b: 0, c: 0, exp: a },
      remaining: Math.min(Math.max(rem, 0), p1),
      retry: allowed ? 0 : deny(allowAt - t),
      reset: Math.max(a - t, 0),
    };
  }
  if (code === TOKEN_INTERVAL) {
    const full = (anchor: number, tokens: number) => anchor + Math.ceil((p0 - tokens) / p1) * p2;
    let anchor = t;
    let tokens = p0;
    if (s !== undefined) {
      anchor = s.a;
      tokens = s.b;
      if (t < anchor) {
        const exp = full(anchor, tokens);
        return { allowed: false, state: { a: anchor, b: tokens, c: 0, exp }, remaining: 0, retry: deny(anchor - t), reset: exp - t };
      }
      const k = Math.floor((t - anchor) / p2);
      if (k > 0) {
        tokens = Math.min(tokens + k * p1, p0);
        anchor = anchor + k * p2;
      }
    }
    const allowed = tokens >= cost;
    const retry = allowed ? 0 : deny(anchor + Math.ceil((cost - tokens) / p1) * p2 - t);
    if (allowed) tokens = tokens - cost;
    const exp = tokens >= p0 ? -Infinity : full(anchor, tokens);
    return { allowed, state: { a: anchor, b: tokens, c: 0, exp }, remaining: Math.floor(tokens), retry, reset: tokens >= p0 ? 0 : exp - t };
  }
  if (code === FIXED || code === LINEAR) {
    let start: number;
    let end: number;
    let count = 0;
    if (code === FIXED) {
      const idx = Math.floor(t / p0);
      if (s !== undefined && s.a > idx) {
        const exp = (s.a + 1) * p0;
        return { allowed: false, state: { ...s, exp }, remaining: 0, retry: deny(s.a * p0 - t), reset: exp - t };
      }
      if (s !== undefined && s.a === idx) count = s.b;
      start = idx;
      end = (idx + 1) * p0;
    } else {
      start = t;
      if (s !== undefined) {
        if (t < s.a) {
          const exp = s.a + p0;
          return { allowed: false, state: { ...s, exp }, remaining: 0, retry: deny(s.a - t), reset: exp - t };
        }
        if (t < s.a + p0) {
          start = s.a;
          count = s.b;
        }
      }
      end = start + p0;
    }
    const allowed = count + cost <= p1;
    const retry = allowed ? 0 : deny(end - t);
    if (allowed) count = count + cost;
    const exp = count > 0 ? end : -Infinity;
    return { allowed, state: { a: start, b: count, c: 0, exp }, remaining: p1 - count, retry, reset: count > 0 ? exp - t : 0 };
  }
  // Sliding window.
  const idx = Math.floor(t / p0);
  if (s !== undefined && s.a > idx) {
    const exp = (s.a + 2) * p0;
    return { allowed: false, state: { ...s, exp }, remaining: 0, retry: deny(s.a * p0 - t), reset: exp - t };
  }
  let cur = 0;
  let prev = 0;
  if (s !== undefined && s.a === idx) {
    cur = s.b;
    prev = s.c;
  } else if (s !== undefined && s.a === idx - 1) {
    prev = s.b;
  }
  const start = idx * p0;
  const frac = (t - start) / p0;
  let estimate = prev * (1 - frac) + cur;
  let allowed = false;
  let retry = 0;
  if (estimate + cost <= p1) {
    allowed = true;
    cur = cur + cost;
    estimate = estimate + cost;
  } else if (cur + cost <= p1) {
    retry = deny(start + (1 - (p1 - cost - cur) / prev) * p0 - t);
  } else {
    const f = Math.max(1 - (p1 - cost) / cur, 0);
    retry = deny(start + p0 + f * p0 - t);
  }
  const exp = cur > 0 ? (idx + 2) * p0 : prev > 0 ? (idx + 1) * p0 : -Infinity;
  return {
    allowed,
    state: { a: idx, b: cur, c: prev, exp },
    remaining: Math.max(floorRemaining(p1 - estimate), 0),
    retry,
    reset: exp > t ? exp - t : 0,
  };
}

/** Gives `cost` back to a live state at `t`. */
export function refundState(policy: Policy, s: State, cost: number, t: number): State {
  const { code, p0, p1, p2 } = policy.core;
  if (code === GCRA) {
    const a = s.a - cost * p0;
    return { a, b: 0, c: 0, exp: a > t ? a : -Infinity };
  }
  if (code === TOKEN_INTERVAL) {
    let anchor = s.a;
    let tokens = s.b;
    if (t > anchor) {
      const k = Math.floor((t - anchor) / p2);
      if (k > 0) {
        tokens = tokens + k * p1;
        anchor = anchor + k * p2;
      }
    }
    tokens = Math.min(tokens + cost, p0);
    const exp = tokens >= p0 ? -Infinity : anchor + Math.ceil((p0 - tokens) / p1) * p2;
    // A booked interval not yet started replaced an empty one: deny until it starts.
    return { a: anchor, b: tokens, c: 0, exp: anchor > t ? Math.max(exp, anchor) : exp };
  }
  if (code === FIXED || code === LINEAR) {
    const count = Math.max(s.b - cost, 0);
    // Likewise a booked window not yet started: the one it replaced was full.
    const start = code === FIXED ? s.a * p0 : s.a;
    const exp = count > 0 ? (code === FIXED ? (s.a + 1) * p0 : s.a + p0) : start > t ? start : -Infinity;
    return { a: s.a, b: count, c: 0, exp };
  }
  const idx = Math.floor(t / p0);
  let cur = s.b;
  let prev = s.c;
  if (s.a < idx) {
    prev = s.a === idx - 1 ? cur : 0;
    cur = 0;
  }
  const take = Math.min(cur, cost);
  cur -= take;
  prev = Math.max(prev - (cost - take), 0);
  const base = Math.max(s.a, idx);
  return { a: base, b: cur, c: prev, exp: cur > 0 ? (base + 2) * p0 : prev > 0 ? (base + 1) * p0 : -Infinity };
}

/**
 * The model limiter: `policies` are gates that must all admit; a denial
 * charges none. Time is passed in explicitly.
 */
export class ReferenceLimiter {
  readonly #policies: readonly Policy[];
  readonly #states: Map<string, State>[];

  constructor(policies: readonly Policy[]) {
    this.#policies = policies;
    this.#states = policies.map(() => new Map());
  }

  #live(g: number, key: string, now: number): State | undefined {
    const s = this.#states[g]!.get(key);
    return s !== undefined && s.exp > now ? s : undefined;
  }

  #commit(g: number, key: string, state: State, now: number): void {
    if (state.exp <= now) this.#states[g]!.delete(key);
    else this.#states[g]!.set(key, state);
  }

  /** Evaluates every gate at `t` with state as of `now`; commits when all admit and `commit`. */
  #decideAt(key: string, cost: number, t: number, now: number, commit: boolean): ModelDecision {
    const gates = this.#policies;
    const outs = gates.map((p, g) => evaluate(p, this.#live(g, key, now), cost, t));
    if (gates.length === 1) {
      const o = outs[0]!;
      if (o.allowed && commit) this.#commit(0, key, o.state, now);
      return { allowed: o.allowed, limit: configured(gates[0]!), capacity: gates[0]!.core.capacity, gate: 0, remaining: o.remaining, retryAfterMs: o.retry, resetAfterMs: o.reset };
    }
    const all = outs.every((o) => o.allowed);
    if (all) {
      let remaining = Infinity;
      let gate = 0;
      let reset = 0;
      outs.forEach((o, g) => {
        if (o.remaining < remaining) {
          remaining = o.remaining;
          gate = g;
        }
        if (o.reset > reset) reset = o.reset;
        if (commit) this.#commit(g, key, o.state, now);
      });
      return { allowed: true, limit: configured(gates[gate]!), capacity: gates[gate]!.core.capacity, gate, remaining, retryAfterMs: 0, resetAfterMs: reset };
    }
    let retry = 0;
    let gate = 0;
    let first = true;
    let remaining = Infinity;
    let reset = 0;
    outs.forEach((o, g) => {
      let rem = o.remaining;
      let rs = o.reset;
      if (!o.allowed) {
        if (first || o.retry > retry) {
          retry = o.retry;
          gate = g;
        }
        first = false;
      } else {
        const zero = evaluate(gates[g]!, this.#live(g, key, now), 0, t);
        rem = zero.remaining;
        rs = zero.reset;
      }
      if (rem < remaining) remaining = rem;
      if (rs > reset) reset = rs;
    });
    return { allowed: false, limit: configured(gates[gate]!), capacity: gates[gate]!.core.capacity, gate, remaining, retryAfterMs: retry, resetAfterMs: reset };
  }

  limit(key: string, cost: number, now: number, dryRun = false): ModelDecision {
    return this.#decideAt(key, cost, now, now, !dryRun);
  }

  reserve(key: string, cost: number, now: number, maxWait = Infinity): ModelReservation {
    let t = now;
    let last = this.#decideAt(key, cost, t, now, false);
    for (let round = 0; round < 1000; round++) {
      if (round > 0) last = this.#decideAt(key, cost, t, now, false);
      if (last.allowed) {
        if (t - now > maxWait) break;
        const d = this.#decideAt(key, cost, t, now, true);
        return { allowed: true, waitMs: t - now, limit: d.limit, capacity: d.capacity, gate: d.gate, remaining: d.remaining };
      }
      t = t + Math.max(last.retryAfterMs, MIN_RETRY_MS);
      if (t - now > maxWait) break;
    }
    return { allowed: false, waitMs: t - now, limit: last.limit, capacity: last.capacity, gate: last.gate, remaining: last.remaining };
  }

  refund(key: string, cost: number, now: number): void {
    this.#policies.forEach((p, g) => {
      const s = this.#live(g, key, now);
      if (s !== undefined) this.#commit(g, key, refundState(p, s, cost, now), now);
    });
  }

  reset(key: string): void {
    for (const states of this.#states) states.delete(key);
  }
}
