// A limiter with plans: which policy a key is under (per key, by a resolver;
// or one for all, replaced by setPolicy), and what a change does to the
// key's state. PlannedBinding is the StoreBinding such a Limiter talks to: it
// resolves the key's plan (cached), and hands the call to that plan's own
// binding in the store (one per distinct plan, bound on first use).
//
// Each key keeps a record of the plan its state is under, beside its state:
// in Redis, written by the decide script itself (lua/plan.lua), so every
// node applies the newest plan to a key; in an embedded store, by this file
// (the store's PlanRecords, records in the same table). A key whose record
// names another plan than the one it resolves to moves to it: its use is
// carried (carry.ts), never silently reset. The cache only saves resolving:
// it may drop an entry at any time, since the record knows.
import type { Clock } from '../core/clock.js';
import { ArgumentError, ConfigError } from '../errors.js';
import type { Decision, Reservation } from './decision.js';
import type { Policy } from '../policies/index.js';
import { isConcurrency } from '../policies/concurrency.js';
import { isCustomLimiter } from '../policies/rate-limiter.js';
import { isBuiltIn } from '../policies/policy.js';
import { checkCarry, horizonOf, type Carry } from '../policies/carry.js';
import type { BlockGate } from './blocks.js';
import type { PlanRecords, PlanTag, Store, StoreBinding } from './store.js';
import { MAX_GATES } from '../../build/abi.js';
import { optionNames, strictOptions } from '../core/options.js';
import { PlanCache } from './plan-cache.js';

/**
 * A key's plan, as a resolver answers it: the policy (or stacked gates), and
 * optionally its version (default 0). Across a fleet the newest version of a
 * key's plan wins: a node still answering an older one is corrected by Redis
 * (its decisions are made by the newer plan) and asks its resolver again.
 *
 * @example
 * ```ts
 * const answer: PlanAnswer = { policy: gcra({ limit: 100, period: '1m' }), version: tenant.planRevision };
 * ```
 */
export interface PlanAnswer {
  readonly policy: Policy | readonly Policy[];
  /** An integer from 0 to 2^31 − 1 (default 0): a key moves to a plan of a version at least its recorded one's. */
  readonly version?: number;
}

/**
 * Resolves a key's plan: called once per key (then cached, at most
 * {@link PLAN_CACHE_KEYS} keys; `limiter.invalidate(key)` asks again), so
 * synchronous and cheap, e.g. a lookup in a map of tenants.
 *
 * @example
 * ```ts
 * const plans = { free: gcra({ limit: 10, period: '1m' }), pro: gcra({ limit: 100, period: '1m' }) };
 * const policy: PolicyResolver = (key) => plans[tenantOf(key).plan];
 * ```
 */
export type PolicyResolver = (key: string) => Policy | readonly Policy[] | PlanAnswer;

/**
 * Options of {@link Limiter.setPolicy}.
 *
 * @example
 * ```ts
 * limiter.setPolicy(gcra({ limit: 50, period: '1s' }), { version: config.revision, carry: 'as-is' });
 * ```
 */
export interface SetPolicyOptions {
  /** The new plan's version (default: the current one's + 1): an integer from 0 to 2^31 − 1. */
  version?: number;
  /** What each key's used capacity becomes (default: the limiter's `carry`): see {@link Carry}. */
  carry?: Carry;
}

/**
 * Keys whose resolved plan a limiter remembers, at most; the least recently
 * used are dropped first, half of them at a time (their records keep their
 * plan: a dropped key is resolved again, no more).
 *
 * @example
 * ```ts
 * if (tenants.size > PLAN_CACHE_KEYS) console.warn('the resolver will be asked again for some keys');
 * ```
 */
export const PLAN_CACHE_KEYS = 65_536;
/**
 * Distinct plans one limiter may bind over its life: sets of gates
 * (whatever their versions and carries). A plan per tier, not per key, nor
 * a limit adjusted without end: each is bound in the store once and kept.
 *
 * @example
 * ```ts
 * if (Object.keys(tiers).length > MAX_PLANS) throw new Error('too many tiers for one limiter');
 * ```
 */
export const MAX_PLANS = 64;
/**
 * Largest plan version (versions are integers from 0).
 *
 * @example
 * ```ts
 * limiter.setPolicy(policy, { version: revision % (MAX_VERSION + 1) });
 * ```
 */
export const MAX_VERSION = 2 ** 31 - 1;

const SET_POLICY_OPTIONS = optionNames<keyof SetPolicyOptions>({ version: true, carry: true });
/** A limiter's name: it names its states and records in a shared store, and never holds a separator of theirs. */
const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

/**
 * Validates a limiter's `name`.
 * @internal
 */
export function checkName(value: unknown): string {
  if (typeof value !== 'string' || !NAME.test(value)) {
    throw new ConfigError('name', value, 'a string of 1 to 64 letters, digits, and _ . : -');
  }
  return value;
}

/**
 * Validates a plan version (`parameter` names it).
 * @internal
 */
export function checkVersion(value: unknown, parameter: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_VERSION) {
    throw new ConfigError(parameter, value, `an integer from 0 to ${MAX_VERSION}`);
  }
  return value;
}

/** One plan of a limiter, bound in the store. */
interface Plan {
  readonly serial: number;
  /** Its gates' parameters: what names their states. */
  readonly states: string;
  readonly gates: readonly Policy[];
  readonly version: number;
  readonly carry: Carry;
  /** The most one request may cost under it. */
  readonly capacity: number;
  /** How long (ms) a state of it lasts after a request (what decays from full use to none). */
  readonly horizon: number;
  readonly binding: StoreBinding;
}

/** A key's entry in the cache: its plan, and (embedded records) until when its record is kept. */
interface Cached {
  readonly plan: Plan;
  until: number;
}

/** Where a limiter's plans come from: one for every key, or a resolver. */
export type PlanSource = { readonly policy: readonly Policy[]; readonly version: number } | { readonly resolve: PolicyResolver };

/** @internal What PlannedBinding is built from. */
export interface PlannedOptions {
  readonly store: Store;
  readonly clock: Clock;
  readonly block: BlockGate | undefined;
  readonly name: string;
  readonly carry: Carry;
  readonly source: PlanSource;
}

/**
 * The StoreBinding of a limiter with plans (see the file's header).
 * @internal
 */
export class PlannedBinding implements StoreBinding {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #block: BlockGate | undefined;
  readonly #name: string;
  #carry: Carry;
  /** The resolver of a limiter whose plans are per key (undefined: #current is every key's). */
  #resolver: PolicyResolver | undefined;
  /** The plan of a limiter without a resolver, and its entry for every key (a store keeping the records). */
  #current: Plan | undefined;
  #everyKey: Cached | undefined;
  /** Bound plans by signature, and by serial (what an embedded record names). */
  readonly #plans = new Map<string, Plan>();
  /** The bindings of the plans, by their gates, and the version each tells the store. */
  readonly #bindings = new Map<string, { readonly binding: StoreBinding; version: number }>();
  /** The newest version of the plans bound: setPolicy's default is one more. */
  #newest = 0;
  readonly #bySerial: Plan[] = [];
  readonly #cache = new PlanCache<Cached>(PLAN_CACHE_KEYS);
  /** The plans of a resolver's answers that are one policy, by identity. */
  #answered = new WeakMap<object, Plan>();
  /** An embedded store's records (undefined: the store keeps them, Redis). */
  readonly #records: PlanRecords | undefined;
  /**
   * Whether the keys' records are kept and read (embedded): from the first
   * change of a limiter that began with one policy (until then every key is
   * under it, and a key without a record still is: the hot path is the plain
   * binding's), from the start with a resolver.
   */
  #recording = false;
  /** The constructor's plan of a limiter that began with one policy: the plan of a key without a record. */
  #initial: Plan | undefined;
  /** How long past a state a record is kept: a blockAfter count may outlive the decisions' reset. */
  readonly #margin: number;
  readonly inProcess: boolean;

  constructor(o: PlannedOptions) {
    this.#store = o.store;
    this.#clock = o.clock;
    this.#block = o.block;
    this.#name = o.name;
    this.#carry = o.carry;
    this.#resolver = 'resolve' in o.source ? o.source.resolve : undefined;
    this.#records = o.store.planRecords?.(o.name);
    if (this.#records === undefined && o.store.keepsPlans !== true) {
      throw new ConfigError('store', o.store, 'a store that keeps plans (EmbeddedStore, RedisStore) for a limiter with plans (a policy resolver, or a name)');
    }
    // (p1: its count's window; p2: the block an escalation then sets.)
    this.#margin = o.block === undefined ? 0 : o.block.core.p1 + o.block.core.p2;
    if ('policy' in o.source) {
      this.#initial = this.#plan(o.source.policy, o.source.version, o.carry, 'policy', true);
      this.#setCurrent(this.#initial);
    } else this.#recording = this.#records !== undefined;
    // Records kept here: an embedded store, deciding in process.
    this.inProcess = this.#records !== undefined;
    if (!this.inProcess) {
      this.limitNow = undefined;
      this.limitManyNow = undefined;
    }
  }

  /**
   * Binds (once) the plan of these gates, version and carry. `everyKey`: the
   * plan of every key (no resolver), whose binding through Redis is the one
   * of its gates, told the new version and carry (`retag`): a limiter whose
   * policy changes again and again binds each set of gates once.
   */
  #plan(gates: readonly Policy[], version: number, carry: Carry, parameter: string, everyKey: boolean): Plan {
    const states = gates.map(({ core }) => `${core.code}:${core.p0}:${core.p1}:${core.p2}`).join(',');
    const signature = `${version};${carry};${states}`;
    const known = this.#plans.get(signature);
    if (known !== undefined) {
      if (everyKey) known.binding.retag?.(this.#tag(version, carry));
      return known;
    }
    // Plans of the same gates keep the same states (in Redis their gate ids
    // are the same): embedded, they share a binding; a store that keeps the
    // records is told each plan's version and carry by its own binding.
    // Through Redis a binding tells its batches its plan's version: the
    // newest of its gates' plans (the plan of every key: the current one's).
    const bindKey = states;
    const bound = this.#bindings.get(bindKey);
    let binding = bound?.binding;
    if (bound !== undefined && (everyKey || version > bound.version)) {
      bound.version = version;
      bound.binding.retag?.(this.#tag(version, carry));
    }
    if (binding === undefined) {
      if (this.#bindings.size >= MAX_PLANS) {
        throw new ConfigError(parameter, gates, `at most ${MAX_PLANS} distinct plans (sets of gates) per limiter over its life: a plan per tier, not per key, nor a limit adjusted without end`);
      }
      binding = this.#store.bind(gates, this.#clock, this.#block, this.#tag(version, carry));
      this.#bindings.set(bindKey, { binding, version });
    }
    if (version > this.#newest) this.#newest = version;
    const plan: Plan = { serial: this.#bySerial.length, states, gates, version, carry, capacity: Math.min(...gates.map((g) => g.core.capacity)), horizon: Math.max(...gates.map((g) => horizonOf(g.core))), binding };
    this.#plans.set(signature, plan);
    this.#bySerial.push(plan);
    return plan;
  }

  #setCurrent(plan: Plan | undefined): void {
    this.#current = plan;
    this.#everyKey = plan === undefined ? undefined : { plan, until: Infinity };
  }

  #tag(version: number, carry: Carry): PlanTag {
    return { name: this.#name, version, carry, stale: (key) => this.#cache.delete(key) };
  }

  /** The current policy of a limiter without a resolver (undefined with one). */
  get policy(): readonly Policy[] | undefined {
    return this.#current?.gates;
  }

  /** Replaces the plan of every key (a policy) or the resolver; each key moves on its next call. */
  setPolicy(policy: unknown, options: SetPolicyOptions | undefined): void {
    const o = options === undefined ? {} : strictOptions(options, 'setPolicy()', SET_POLICY_OPTIONS, 'options');
    const carry = o.carry === undefined ? this.#carry : checkCarry(o.carry, 'carry');
    if (typeof policy === 'function') {
      if (o.version !== undefined) throw new ConfigError('version', o.version, "no version with a resolver: its answers carry theirs ({ policy, version })");
      this.#resolver = policy as PolicyResolver;
      this.#setCurrent(undefined);
      this.#carry = carry;
      this.#recording = this.#records !== undefined;
    } else {
      const gates = planGates(policy, 'policy');
      const version = o.version === undefined ? Math.min(MAX_VERSION, this.#newest + 1) : checkVersion(o.version, 'version');
      const plan = this.#plan(gates, version, carry, 'policy', true);
      this.#setCurrent(plan);
      this.#resolver = undefined;
      if (plan.states !== this.#initial?.states) this.#recording = this.#records !== undefined;
    }
    this.#cache.clear();
    this.#answered = new WeakMap();
  }

  /** Forgets the cached plan of `key` (or of every key): resolved again on its next call. */
  invalidate(key: string | undefined): void {
    if (key === undefined) this.#cache.clear();
    else this.#cache.delete(key);
  }

  /** The key's plan (see the header): from the cache, or resolved and reconciled with its record. */
  #planOf(key: string): Cached {
    // Redis keeps the records: one plan for every key needs no cache.
    if (!this.#recording && this.#current !== undefined) return this.#everyKey!;
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    let plan = this.#current ?? this.#resolve(key);
    let until = -Infinity;
    let moved = false;
    // A table full at its cap had no room for a move: the key stays, and is tried again at its next call.
    let full = false;
    const records = this.#records;
    if (records !== undefined) {
      const now = this.#clock();
      const rec = records.get(key, now);
      if (rec === undefined) {
        // No record: the key is under the constructor's plan, if it has a state there.
        const initial = this.#initial;
        if (initial !== undefined && initial.states !== plan.states) {
          const outcome = plan.binding.carryFrom!(initial.binding, key, carryOf(plan, initial));
          moved = outcome === 'moved';
          full = outcome === 'full';
          if (full) plan = initial;
        }
        // Recorded before the key's first state: a table full at its cap
        // then refuses the key's state too (it is new), instead of keeping
        // a state whose plan no record knows.
        // Written for as long as a state of the plan lasts (twice): a key's
        // next decisions need not write it again.
        const ahead = now + 2 * (plan.horizon + this.#margin);
        if (records.put(key, plan.serial, ahead, now)) until = ahead;
      } else {
        const recorded = this.#bySerial[rec.serial];
        if (rec.serial === plan.serial || recorded === undefined) until = rec.until;
        else if (recorded.states === plan.states) {
          // The same gates (another version or carry): the same states, nothing to move.
          if (plan.version >= recorded.version) moved = true;
          else plan = recorded;
        } else if (plan.version >= recorded.version) {
          full = plan.binding.carryFrom!(recorded.binding, key, carryOf(plan, recorded)) === 'full';
          if (full) {
            plan = recorded;
            until = rec.until;
          } else moved = true;
        } else {
          // A newer plan is recorded (a resolver answering an older version): it stands.
          plan = recorded;
          until = rec.until;
        }
      }
    }
    const entry: Cached = { plan, until };
    if (!full) this.#cache.set(key, entry);
    // The record names the new plan at once (whatever the key's next call).
    if (moved) this.#touched(key, entry);
    return entry;
  }

  #resolve(key: string): Plan {
    // (A resolver that throws throws to the caller, as any callback's error.)
    const answer: unknown = this.#resolver!(key);
    // The same policy (frozen) answered again: its plan, without checking it again.
    const known = typeof answer === 'object' && answer !== null ? this.#answered.get(answer) : undefined;
    if (known !== undefined) return known;
    let version = 0;
    let policy = answer;
    if (typeof answer === 'object' && answer !== null && !Array.isArray(answer) && 'policy' in answer) {
      const a = strictOptions(answer as PlanAnswer, 'the resolver', ['policy', 'version'], 'policy');
      policy = a.policy;
      if (a.version !== undefined) version = checkVersion(a.version, 'version');
    }
    const plan = this.#plan(planGates(policy, 'policy'), version, this.#carry, 'policy', false);
    if (answer === policy && !Array.isArray(answer)) this.#answered.set(answer as object, plan);
    return plan;
  }

  /** The key's plan, with `cost` checked against it. */
  #costed(key: string, cost: number): Cached {
    const entry = this.#planOf(key);
    if (cost > entry.plan.capacity) {
      throw new ArgumentError('cost', cost, `a positive integer no larger than ${entry.plan.capacity}, the most the key's plan can ever admit`);
    }
    return entry;
  }

  /**
   * Keeps an embedded record at least until `need` (ms, the clock's): the
   * record must outlive the key's states, or a later change would find none
   * to carry. Written ahead (twice the need) so that a busy key rewrites it
   * rarely.
   */
  #keep(key: string, entry: Cached, need: number, now: number): void {
    if (need <= entry.until || !this.#recording) return;
    const until = need + (need - now);
    if (this.#records!.put(key, entry.plan.serial, until, now)) entry.until = until;
  }

  /** After a decision: its reset says how long the key's states live. */
  #kept<D extends Decision>(key: string, entry: Cached, d: D): D {
    if (this.#recording) {
      const now = this.#clock();
      this.#keep(key, entry, now + d.resetAfterMs + this.#margin, now);
    }
    return d;
  }

  /** After a call that changed the key's states without a decision: a peek tells how long they live. */
  #touched(key: string, entry: Cached): void {
    if (!this.#recording) return;
    this.#kept(key, entry, entry.plan.binding.limit(key, 1, true) as Decision);
  }

  limit(key: string, cost: number, dryRun: boolean): Decision | Promise<Decision> {
    const entry = this.#costed(key, cost);
    const d = entry.plan.binding.limit(key, cost, dryRun);
    return !this.#recording || dryRun ? d : this.#kept(key, entry, d as Decision);
  }

  limitNow?(key: string, cost: number): Decision {
    const entry = this.#costed(key, cost);
    const d = entry.plan.binding.limitNow!(key, cost);
    return this.#recording ? this.#kept(key, entry, d) : d;
  }

  limitMany(keys: readonly string[], cost: number): Decision[] | Promise<Decision[]> {
    if (this.inProcess) return this.limitManyNow!(keys, cost);
    return Promise.all(keys.map((key) => this.limit(key, cost, false)));
  }

  limitManyNow?(keys: readonly string[], cost: number): Decision[] {
    // Each key by its own plan (all checked first: a bad cost charges none),
    // the keys of one plan in one batch of its binding, in their order.
    const entries = keys.map((key) => this.#costed(key, cost));
    const groups = new Map<Plan, number[]>();
    entries.forEach((e, i) => {
      const group = groups.get(e.plan);
      if (group === undefined) groups.set(e.plan, [i]);
      else group.push(i);
    });
    const out: Decision[] = new Array(keys.length);
    for (const [plan, indexes] of groups) {
      const ds = plan.binding.limitManyNow!(indexes.map((i) => keys[i]!), cost);
      indexes.forEach((i, j) => (out[i] = this.#kept(keys[i]!, entries[i]!, ds[j]!)));
    }
    return out;
  }

  reserve(key: string, cost: number, maxWaitMs: number): Reservation | Promise<Reservation> {
    const entry = this.#costed(key, cost);
    const r = entry.plan.binding.reserve(key, cost, maxWaitMs);
    this.#touched(key, entry);
    return r;
  }

  refund(key: string, cost: number): void | Promise<void> {
    return this.#planOf(key).plan.binding.refund(key, cost);
  }

  reset(key: string): void | Promise<void> {
    return this.#planOf(key).plan.binding.reset(key);
  }

  block(key: string, durationMs: number): void | Promise<void> {
    const entry = this.#planOf(key);
    const done = entry.plan.binding.block!(key, durationMs);
    if (this.#recording) {
      const now = this.#clock();
      this.#keep(key, entry, now + durationMs, now);
    }
    return done;
  }

  penalize(key: string, cost: number): void | Promise<void> {
    const entry = this.#planOf(key);
    const done = entry.plan.binding.penalize!(key, cost);
    this.#touched(key, entry);
    return done;
  }

  /** Lowers the key under its plan, as `penalize` charges it there. */
  lower(key: string, remaining: number): void | Promise<void> {
    const entry = this.#planOf(key);
    const done = entry.plan.binding.lower!(key, remaining);
    this.#touched(key, entry);
    return done;
  }
}

/** The gates of a plan: built-in rate policies (no custom limiter, no concurrency gate: a change carries units, not holders). */
export function planGates(value: unknown, parameter: string): readonly Policy[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0 || list.length > MAX_GATES) {
    throw new ConfigError(parameter, value, `a policy or an array of 1 to ${MAX_GATES} policies`);
  }
  for (const p of list) {
    if (isCustomLimiter(p) || isConcurrency(p) || !isBuiltIn(p)) {
      throw new ConfigError(
        parameter,
        p,
        'a rate policy built by gcra(), tokenBucket(), fixedWindow(), linearWindow() or slidingWindow() (a limiter with plans carries units from plan to plan: no custom RateLimiter, no concurrency gate)',
      );
    }
  }
  return Object.freeze([...list]) as readonly Policy[];
}

/**
 * How a key moves from `from` into `to`: `to`'s carry, but a reset only
 * into a newer version (lua/plan.lua's rule): plans of one version that
 * take turns (nodes, or answers, that disagree) carry the key's use.
 */
function carryOf(to: Plan, from: Plan): Carry {
  return to.carry === 'reset' && to.version <= from.version ? 'proportional' : to.carry;
}
