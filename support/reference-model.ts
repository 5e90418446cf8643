// A pure-TypeScript model of the core: the same algorithms over a Map per gate
// instead of a wasm table, written to be read rather than to be fast. It is
// the oracle of the property tests (wasm and model must agree bit for bit on
// the same sequences) and a contender in the benchmark.
//
// It mirrors assembly/algorithms.ts formula by formula; what it does not model
// is the table's bounded size (the model never evicts). It also models what
// only the Redis script does (src/stores/redis/lua/): an outage's charge and
// a lease, written from their documented meaning, for the agreement tests of
// test/redis-script.test.ts.
import type { Policy } from '../build/lib/src/index.js';
import { CHARGE_MEMORY_MS, CODE, MIN_RETRY_MS, REMAINING_EPSILON } from '../build/lib/build/abi.js';

const { gcra: GCRA, tokenInterval: TOKEN_INTERVAL, fixed: FIXED, linear: LINEAR, concurrency: CONCURRENCY } = CODE;

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

/**
 * What a lease gets: `granted` units debited at once, the last of which may
 * be spent `lastMs` from now and all of which within `validMs`; or none, and
 * the denial of a single unit.
 */
export type ModelLease =
  | { granted: number; limit: number; lastMs: number; validMs: number }
  | { granted: 0; limit: number; retryAfterMs: number; resetAfterMs: number };

/** A gate's state of one key, or undefined for none (as never seen). */
export type ModelState = State | undefined;

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
    // An outage's charges (see chargePastGcra) are remembered until c, as
    // long as that outlasts the TAT. (The core never charges: c is 0 there.)
    const remembers = s !== undefined && s.c > a;
    return {
      allowed,
      state: remembers ? { a, b: s.b, c: s.c, exp: s.c } : { a, b: 0, c: 0, exp: a },
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
      ({ anchor, tokens } = refill(policy, anchor, tokens, t));
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
  if (code === CONCURRENCY) {
    const h = holdersAt(policy, s, t);
    const allowed = h.counted() + cost <= p1;
    let retry = 0;
    if (allowed) h.current += cost;
    // Denied: wait for the lease of the oldest holders whose end makes room.
    else retry = deny((h.previous > 0 && h.current + cost <= p1 ? h.epochEnd(h.epoch - 1) : h.epochEnd(h.epoch)) - t);
    return { allowed, ...h.outcome(t), retry };
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

/**
 * A concurrency gate's holders as of `t`, from its definition: a holder taken
 * or renewed at `at` counts in lease epoch floor(at / leaseMs) and the one
 * after it. `epoch` is the latest epoch (the current one, or the state's own
 * when a clock went back), `current` the holders counted from it, `previous`
 * those counted from the one before.
 */
function holdersAt(policy: Policy, s: State | undefined, t: number) {
  const { p0: lease, p1: limit } = policy.core;
  const now = Math.floor(t / lease);
  const epoch = s !== undefined ? Math.max(s.a, now) : now;
  const h = {
    epoch,
    current: s !== undefined && s.a === epoch ? s.b : 0,
    previous: s === undefined ? 0 : s.a === epoch ? s.c : s.a === epoch - 1 ? s.b : 0,
    counted: () => h.current + h.previous,
    /** When the holders counted from epoch e stop counting. */
    epochEnd: (e: number) => (e + 2) * lease,
    outcome(at: number) {
      const exp = h.current > 0 ? h.epochEnd(h.epoch) : h.previous > 0 ? h.epochEnd(h.epoch - 1) : -Infinity;
      return {
        state: { a: h.epoch, b: h.current, c: h.previous, exp },
        remaining: Math.max(limit - h.counted(), 0),
        reset: exp > at ? exp - at : 0,
      };
    },
  };
  return h;
}

/**
 * A permit of `cost` holders taken or renewed at `at`, released (or renewed)
 * at `t`: the holders leave the epoch they count from; a renewal counts them
 * from the current epoch instead, or takes them anew when they no longer
 * count and there is room (`held` false when there is none).
 */
export function holdState(policy: Policy, s: State | undefined, cost: number, at: number, t: number, renew: boolean): { held: boolean; state: State } {
  const h = holdersAt(policy, s, t);
  const from = Math.floor(at / policy.core.p0);
  let held = true;
  if (from === h.epoch && h.current >= cost) {
    if (!renew) h.current -= cost;
  } else if (from === h.epoch - 1 && h.previous >= cost) {
    h.previous -= cost;
    if (renew) h.current += cost;
  } else if (renew) {
    held = h.counted() + cost <= policy.core.p1;
    if (held) h.current += cost;
  }
  return { held, state: h.outcome(t).state };
}

/** An interval bucket's tokens at `t`: `refill` more for each whole period since the anchor, up to the capacity. */
function refill(policy: Policy, anchor: number, tokens: number, t: number): { anchor: number; tokens: number } {
  const { p0: capacity, p1: perPeriod, p2: period } = policy.core;
  const periods = Math.floor((t - anchor) / period);
  if (periods <= 0) return { anchor, tokens };
  return { anchor: anchor + periods * period, tokens: Math.min(tokens + periods * perPeriod, capacity) };
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
    tokens += cost;
    // A booked interval not yet started, given back whole: the rest goes back to the interval before it.
    const unbooked = Math.min(p0, p1);
    while (tokens > unbooked && anchor > t) [tokens, anchor] = [tokens - unbooked, anchor - p2];
    tokens = Math.min(tokens, p0);
    const exp = tokens >= p0 ? -Infinity : anchor + Math.ceil((p0 - tokens) / p1) * p2;
    // A booked interval not yet started replaced an empty one: deny until it starts.
    return { a: anchor, b: tokens, c: 0, exp: anchor > t ? Math.max(exp, anchor) : exp };
  }
  if (code === FIXED || code === LINEAR) {
    let count = s.b - cost;
    let win = s.a;
    const opens = (w: number) => (code === FIXED ? w * p0 : w);
    // A booked window not yet open, given back whole: the rest goes to the window before it.
    while (count < 0 && opens(win) > t) [count, win] = [count + p1, code === FIXED ? win - 1 : win - p0];
    count = Math.max(count, 0);
    // Likewise a booked window not yet started: the one it replaced was full.
    const start = opens(win);
    const exp = count > 0 ? (code === FIXED ? (win + 1) * p0 : win + p0) : start > t ? start : -Infinity;
    return { a: win, b: count, c: 0, exp };
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
 * Spends `cost` at `t` without asking (an outage's admissions, a lease's
 * debit), counted where a request at `t` would count: the state may go past
 * the limit, and the key then waits it off. A charge drops GCRA's memory of
 * an outage (see chargePastGcra).
 */
export function chargeState(policy: Policy, s: State | undefined, cost: number, t: number): State {
  const { code, p0, p1, p2 } = policy.core;
  if (code === GCRA) {
    // From the TAT, or from t when the TAT is past.
    const a = Math.max(s === undefined ? t : s.a, t) + cost * p0;
    return { a, b: 0, c: 0, exp: a };
  }
  if (code === TOKEN_INTERVAL) {
    const { anchor, tokens } = s === undefined ? { anchor: t, tokens: p0 } : refill(policy, s.a, s.b, t);
    const left = tokens - cost;
    return { a: anchor, b: left, c: 0, exp: anchor + Math.ceil((p0 - left) / p1) * p2 };
  }
  if (code === FIXED) {
    // Into the window of t, or into a later one the state has booked.
    const window = Math.floor(t / p0);
    const kept = s !== undefined && s.a >= window;
    const idx = kept ? s.a : window;
    return { a: idx, b: (kept ? s.b : 0) + cost, c: 0, exp: (idx + 1) * p0 };
  }
  if (code === LINEAR) {
    // Into the state's window while it has not closed by t, else into one opening at t.
    const open = s !== undefined && t < s.a + p0;
    const start = open ? s.a : t;
    return { a: start, b: (open ? s.b : 0) + cost, c: 0, exp: start + p0 };
  }
  const window = Math.floor(t / p0);
  if (s !== undefined && s.a >= window) return { a: s.a, b: s.b + cost, c: s.c, exp: (s.a + 2) * p0 };
  // A new current window; the state's, if it was the one before, is now the previous.
  const previous = s !== undefined && s.a === window - 1 ? s.b : 0;
  return { a: window, b: cost, c: previous, exp: (window + 2) * p0 };
}

/**
 * GCRA's charge of an outage's units as of a past moment `t` (`now` is the
 * present). Several stores charge the same outage as of the same moment, and
 * their charges must add up in the past: the state remembers, in b, the TAT
 * of the outage's charges alone, until c, a minute (CHARGE_MEMORY_MS) after
 * the moment r when Redis began admitting again. Only what was spent while
 * Redis admitted nothing counts in the past: what lies past r (spent beside
 * what Redis granted the stores already back) goes on top of the TAT.
 *
 * - Redis is idle when it admitted nothing for a while: no state, or a TAT a
 *   burst behind now. An outage's charges then start a chain with r = now.
 * - While Redis admits, a remembered chain keeps its r; with no chain (one
 *   store fell back while the others decided in Redis) the whole charge goes
 *   on top of the TAT.
 */
export function chargePastGcra(policy: Policy, s: State | undefined, cost: number, t: number, now: number): State {
  const { p0: interval, p2: tolerance } = policy.core;
  const idle = s === undefined || s.a + tolerance <= now;
  const chained = s !== undefined && s.c > now;
  if (!idle && !chained) {
    const a = s!.a + cost * interval;
    return { a, b: s!.b, c: s!.c, exp: Math.max(a, s!.c) };
  }
  const r = chained && !idle ? s!.c - CHARGE_MEMORY_MS : now;
  const chain = chained ? s!.b : -Infinity;
  // The outage's own TAT with this charge: from where the chain ends, or t.
  const outage = Math.max(t, chain) + cost * interval;
  // The part of this charge's span that lies past r.
  const beyond = Math.max(r, outage) - Math.max(r, chain, t);
  const tat = Math.max((s === undefined ? r : Math.max(r, s.a)) + beyond, outage);
  const keepUntil = r + CHARGE_MEMORY_MS;
  return { a: tat, b: outage, c: keepUntil, exp: Math.max(tat, keepUntil) };
}

/**
 * The most units, up to `want`, that one gate can lease at `now`: what a
 * count-based gate admits at once; for GCRA also its future slots up to
 * `now + horizon` (the burst is there at the TAT, and one more unit every
 * interval after it).
 */
export function grantable(policy: Policy, s: State | undefined, want: number, horizon: number, now: number): number {
  const { code, p0, p1 } = policy.core;
  if (code === GCRA) {
    const tat = s !== undefined && s.a > now ? s.a : now;
    const slots = Math.floor((now + horizon - tat) / p0 + p1 + REMAINING_EPSILON);
    return Math.min(Math.max(slots, 0), want);
  }
  for (let k = want; k > 0; k--) if (evaluate(policy, s, k, now).allowed) return k;
  return 0;
}

/**
 * When units a count-based gate has counted in `s` stop being spendable: the
 * end of the window (or refill interval) they were counted in, since in the
 * next one they would come on top of its own limit.
 */
function countedUntil(policy: Policy, s: State): number {
  const { code, p0, p2 } = policy.core;
  if (code === TOKEN_INTERVAL) return s.a + p2;
  if (code === LINEAR) return s.a + p0;
  return (s.a + 1) * p0;
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

  /** Gives `cost` back to every gate but a concurrency gate (whose slots come back by release only). */
  refund(key: string, cost: number, now: number): void {
    this.#policies.forEach((p, g) => {
      const s = this.#live(g, key, now);
      if (s !== undefined && p.core.code !== CONCURRENCY) this.#commit(g, key, refundState(p, s, cost, now), now);
    });
  }

  reset(key: string): void {
    for (const states of this.#states) states.delete(key);
  }

  /** Returns a permit's `cost` holders, taken or renewed at `at`, to every concurrency gate. */
  release(key: string, cost: number, at: number, now: number): void {
    this.#hold(key, cost, at, now, false);
  }

  /** Renews a permit in every concurrency gate; whether all of them still hold it. */
  renew(key: string, cost: number, at: number, now: number): boolean {
    return this.#hold(key, cost, at, now, true);
  }

  #hold(key: string, cost: number, at: number, now: number, renew: boolean): boolean {
    let all = true;
    this.#policies.forEach((p, g) => {
      if (p.core.code !== CONCURRENCY) return;
      const s = this.#live(g, key, now);
      if (s === undefined && !renew) return;
      const { held, state } = holdState(p, s, cost, at, now, renew);
      if (held) this.#commit(g, key, state, now);
      else all = false;
    });
    return all;
  }

  /**
   * Charges what was admitted without the store (an outage's `cost` units,
   * spent as of `spentAt`, or `now` if later). Each state is kept at least
   * CHARGE_MEMORY_MS, even one that has already run out: the other stores'
   * charges for the outage come as of the same moment and must add up. GCRA
   * keeps its own memory (chargePastGcra).
   */
  charge(key: string, cost: number, spentAt: number, now: number): void {
    const t = Math.min(spentAt, now);
    this.#policies.forEach((p, g) => {
      const s = this.#live(g, key, now);
      // An outage's holders come back by their own renewals: nothing to charge.
      if (p.core.code === CONCURRENCY) return;
      if (p.core.code === GCRA) {
        this.#commit(g, key, chargePastGcra(p, s, cost, t, now), now);
      } else {
        const charged = chargeState(p, s, cost, t);
        this.#commit(g, key, { ...charged, exp: Math.max(charged.exp, now + CHARGE_MEMORY_MS) }, now);
      }
    });
  }

  /**
   * Debits at once the most units, up to `want`, that every gate grants
   * (GCRA's slots up to `horizon` ahead), for a client to spend on its own:
   * the last one `lastMs` from now at the earliest (the latest of the GCRA
   * gates' last slots), all of them within `validMs` (the earliest end of a
   * count-based gate's window). None granted: the denial of one unit.
   */
  lease(key: string, want: number, horizon: number, now: number): ModelLease {
    const gates = this.#policies;
    const granted = Math.min(want, ...gates.map((p, g) => grantable(p, this.#live(g, key, now), want, horizon, now)));
    if (granted === 0) {
      const d = this.#decideAt(key, 1, now, now, false);
      return { granted: 0, limit: d.capacity, retryAfterMs: d.retryAfterMs, resetAfterMs: d.resetAfterMs };
    }
    let last = now;
    let valid = Infinity;
    gates.forEach((p, g) => {
      const charged = chargeState(p, this.#live(g, key, now), granted, now);
      this.#commit(g, key, charged, now);
      // GCRA: the last unit conforms once its TAT is within the tolerance.
      if (p.core.code === GCRA) last = Math.max(last, charged.a - p.core.p2);
      else valid = Math.min(valid, countedUntil(p, charged));
    });
    return { granted, limit: gates[0]!.core.capacity, lastMs: last - now, validMs: valid - now };
  }

  /** Each gate's state of `key` at `now`. */
  states(key: string, now: number): ModelState[] {
    return this.#policies.map((_, g) => this.#live(g, key, now));
  }
}
