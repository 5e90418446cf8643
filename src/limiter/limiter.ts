import { checkedClock, MAX_TIMER_MS, sleep, taskClock, type Clock } from '../core/clock.js';
import { checkDuration, MAX_DURATION_MS, MAX_WAIT_BOUNDS, type Duration } from '../core/duration.js';
import type { Decision, Reservation } from './decision.js';
import { EmbeddedStore } from '../stores/embedded/embedded-store.js';
import { AcquireTimeoutError, ArgumentError, ConfigError } from '../errors.js';
import { checkKey, isKey } from '../core/key-hash.js';
import { optionNames, strictOptions } from '../core/options.js';
import type { Policy } from '../policies/index.js';
import type { Store, StoreBinding } from './store.js';
import { checkCustomLimiter, isCustomLimiter, type RateLimiter } from '../policies/rate-limiter.js';
import { checkMetrics, DECISION_ATTRIBUTES, type MetricsSink } from '../core/metrics.js';
import { MAX_GATES } from '../../build/abi.js';
import { isConcurrency } from '../policies/concurrency.js';
import { Holdings, PermitImpl, type Permit } from './permit.js';
import { blockDuration, blockGate, type BlockAfter } from './blocks.js';
import { BookedMoments, checkPriority, rank } from './priority.js';
import { checkName, checkVersion, planGates, PlannedBinding, type PolicyResolver, type SetPolicyOptions } from './plans.js';
import { checkCarry, type Carry } from '../policies/carry.js';
import { isBuiltIn, MAX_COUNT } from '../policies/policy.js';

// The core's per-gate scratch is sized from the same definition (abi/abi.mjs).
export { MAX_GATES };

/** Options of {@link Limiter}. */
export interface LimiterOptions {
  /**
   * One policy, or several gates that must all admit a request (a denial by
   * one charges none), or one custom {@link RateLimiter}; or a
   * {@link PolicyResolver}, which answers each key's plan (a limiter with
   * plans: see `name`).
   */
  policy: Policy | readonly Policy[] | RateLimiter | PolicyResolver;
  /**
   * Makes a limiter with plans: each key keeps a record of the plan its
   * state is under, so that {@link Limiter.setPolicy} and a resolver's new
   * answers move keys to their new plan carrying their use (see `carry`),
   * the same on every node of a fleet. The name owns the limiter's states and
   * records in a shared store: 1 to 64 letters, digits, and `_ . : -`.
   * Required with a resolver on a RedisStore. Not with a custom
   * RateLimiter or a concurrency gate.
   */
  name?: string;
  /** The version of the constructor's plan (default 0): see {@link SetPolicyOptions.version}. A limiter with plans only. */
  version?: number;
  /** What a key's used capacity becomes when its plan changes (default `'proportional'`): see {@link Carry}. A limiter with plans only. */
  carry?: Carry;
  /** Where state lives (default: a new {@link EmbeddedStore}). */
  store?: Store;
  /** Epoch milliseconds (default: {@link taskClock}, one reading per task); inject one in tests. */
  clock?: Clock;
  /** Counts decisions by outcome and source (`cellgate.decisions`): see {@link MetricsSink}. */
  metrics?: MetricsSink;
  /**
   * Blocks a key for `duration` once it was denied `denials` times within
   * `within` (see {@link BlockAfter}): its requests are then denied with
   * `reason: 'blocked'`. Not with a custom RateLimiter, a concurrency gate,
   * or a RedisStore in leased mode.
   */
  blockAfter?: BlockAfter;
  /**
   * How fast a waiting caller's `priority` rises (default `'1s'`: by 1 a
   * second), so that a low priority is passed over for a bounded time only:
   * see {@link AcquireOptions.priority}. A {@link Duration} from 1 ms to 1000 days.
   */
  aging?: Duration;
}

/** Options of {@link Limiter.limit}, {@link Limiter.limitSync} and {@link Limiter.peek}. */
export interface LimitOptions {
  /** Units this request takes (default 1): a positive integer no larger than the policy's capacity. */
  cost?: number;
}

/** Options of {@link Limiter.reserve}. */
export interface ReserveOptions extends LimitOptions {
  /** Book only if the wait is at most this long (default: no bound): a {@link Duration} from 0, or `Infinity`. */
  maxWaitMs?: Duration;
}

/** Options of {@link Limiter.acquire}. */
export interface AcquireOptions extends ReserveOptions {
  /** Aborts the wait; the booked capacity is refunded. */
  signal?: AbortSignal;
  /**
   * Among this process's callers waiting on the key, higher goes first
   * (default 0; a finite number up to ±1,000,000), raised by 1 for every
   * `aging` (the limiter's option) it has waited: a caller of priority p is
   * passed over by later ones of priority q only during its first
   * (q − p) × aging of waiting.
   */
  priority?: number;
}

const LIMITER_OPTIONS = optionNames<keyof LimiterOptions>({ policy: true, store: true, clock: true, metrics: true, blockAfter: true, aging: true, name: true, version: true, carry: true });
const LIMIT_OPTIONS = optionNames<keyof LimitOptions>({ cost: true });
const RESERVE_OPTIONS = optionNames<keyof ReserveOptions>({ cost: true, maxWaitMs: true });
const ACQUIRE_OPTIONS = optionNames<keyof AcquireOptions>({ cost: true, maxWaitMs: true, signal: true, priority: true });
/** Why `version` and `carry` need a limiter with plans. */
const NOT_PLANNED = 'a limiter with plans (new Limiter({ name, policy }), or a policy resolver): only its keys keep the record of their plan that a change carries their state by';
/** How long acquire() waits before asking again when nothing could be booked (see acquire). */
const UNBOOKABLE_RETRY_MS = 100;

/** What a synchronous call needs of the store (the method's name follows). */
const SYNC_STORE = 'a store that decides synchronously (an EmbeddedStore, or a RedisStore in leased mode) for ';

/**
 * Rate-limits keys under one policy (or several stacked gates), in process by
 * default or in a shared store. Being limited is data: every method answers
 * with a {@link Decision}, and only bad input throws.
 *
 * @example
 * ```ts
 * const limiter = new Limiter({ policy: gcra({ limit: 5, period: '1s' }) });
 * const d = await limiter.limit('user:42');
 * if (!d.allowed) console.log(`retry in ${d.retryAfterMs} ms`);
 * ```
 */
export class Limiter {
  readonly #binding: StoreBinding;
  /** For the error of a synchronous call its store cannot serve. */
  readonly #store: Store;

  readonly #maxCost: number;
  readonly #metrics: MetricsSink | undefined;
  /** The permits of a limiter with a concurrency gate (undefined: none). */
  readonly #holdings: Holdings | undefined;
  /** The gates, in order (of a limiter without plans). */
  readonly #policies: readonly (Policy | RateLimiter)[];
  /** A limiter with plans: its binding (undefined: none). */
  readonly #planned: PlannedBinding | undefined;
  /** How long (ms) of waiting raises a caller's priority by 1. */
  readonly #agingMs: number;
  /** The moments booked for this process's acquire() callers, handed out by priority. */
  readonly #booked = new BookedMoments();

  constructor(options: LimiterOptions) {
    const o = strictOptions(options, 'new Limiter()', LIMITER_OPTIONS);
    const planned = typeof o.policy === 'function' || o.name !== undefined;
    if (!planned && o.version !== undefined) throw new ConfigError('version', o.version, NOT_PLANNED);
    if (!planned && o.carry !== undefined) throw new ConfigError('carry', o.carry, NOT_PLANNED);
    const policies = planned ? (typeof o.policy === 'function' ? [] : planGates(o.policy, 'policy')) : checkPolicies(o.policy);
    if (o.clock !== undefined && typeof o.clock !== 'function') throw new ConfigError('clock', o.clock, 'a function returning epoch milliseconds');
    // A clock of the caller's is checked at every reading (range and type): see MAX_CLOCK_MS.
    const clock = o.clock === undefined ? taskClock : checkedClock(o.clock as Clock);
    const store = o.store === undefined ? new EmbeddedStore() : o.store;
    if (typeof store !== 'object' || store === null || typeof (store as Store).bind !== 'function') {
      throw new ConfigError('store', store, 'a Store such as new EmbeddedStore()');
    }
    this.#policies = policies;
    this.#agingMs = o.aging === undefined ? 1000 : checkDuration(o.aging, 'aging', { min: 1, max: MAX_DURATION_MS });
    this.#store = store as Store;
    this.#metrics = checkMetrics(o.metrics);
    const custom = policies.length === 1 && isCustomLimiter(policies[0]) ? checkCustomLimiter(policies[0]) : undefined;
    if (o.blockAfter !== undefined && (custom !== undefined || policies.some(isConcurrency))) {
      // A caller waiting in acquire() for a slot is denied at each try: queueing, not abuse.
      throw new ConfigError('blockAfter', o.blockAfter, 'a limiter of rate policies (not a custom RateLimiter, nor a concurrency gate, whose waiting callers are denied at every try)');
    }
    if (planned) {
      const bound = store as Store;
      if (o.name === undefined && bound.planRecords === undefined) {
        throw new ConfigError('name', o.name, 'a name for a limiter with plans on a shared store: it owns the limiter\'s states and plan records there');
      }
      const carry = checkCarry(o.carry, 'carry');
      const version = o.version === undefined ? 0 : checkVersion(o.version, 'version');
      this.#planned = new PlannedBinding({
        store: bound,
        clock: clock as Clock,
        block: blockGate(o.blockAfter),
        name: o.name === undefined ? 'plans' : checkName(o.name),
        carry,
        source: typeof o.policy === 'function' ? { resolve: o.policy as PolicyResolver } : { policy: policies as readonly Policy[], version },
      });
      this.#binding = this.#planned;
      this.#maxCost = MAX_COUNT;
      this.#holdings = undefined;
      return;
    }
    this.#planned = undefined;
    if (custom !== undefined) {
      // A custom algorithm runs in JS, not in the core: the store binds it on its own.
      const bindCustom = (store as Store).bindCustom;
      if (bindCustom === undefined) throw new ConfigError('store', store, 'a store that supports custom limiters (EmbeddedStore, RedisStore)');
      this.#maxCost = custom.capacity;
      this.#binding = bindCustom.call(store, custom, clock as Clock);
    } else {
      this.#maxCost = Math.min(...(policies as readonly Policy[]).map((p) => p.core.capacity));
      this.#binding = (store as Store).bind(policies as readonly Policy[], clock as Clock, blockGate(o.blockAfter));
      if (o.blockAfter !== undefined && this.#binding.block === undefined) {
        throw new ConfigError('blockAfter', o.blockAfter, 'a store that keeps blocks (EmbeddedStore, a RedisStore in strict mode)');
      }
    }
    const leases = policies.filter(isConcurrency).map((p) => p.leaseMs);
    if (leases.length > 1) {
      // A permit names the lease epoch its holders count in by one time, which names one gate's epoch.
      throw new ConfigError('policy', o.policy, 'gates with at most one concurrency gate (the smaller limit would decide anyway: a key is one resource)');
    }
    if (leases.length > 0) {
      const b = this.#binding;
      if (b.hold === undefined || b.release === undefined || b.renew === undefined) {
        throw new ConfigError('store', store, 'a store that holds concurrency gates (EmbeddedStore, RedisStore)');
      }
      this.#holdings = new Holdings(b, leases[0]!, b.inProcess === true);
    }
  }

  /**
   * The store the limiter decides in: what `limitedFetch` asks whether the
   * fleet can share what an upstream says (a {@link RedisStore} can).
   *
   * @example
   * ```ts
   * limiter.store instanceof RedisStore; // false for the default EmbeddedStore
   * ```
   */
  get store(): Store {
    return this.#store;
  }

  /**
   * The gates, in order: of the current plan of a limiter with plans (none
   * with a resolver, whose plans are per key).
   *
   * @example
   * ```ts
   * const [first] = limiter.policies;
   * ```
   */
  get policies(): readonly (Policy | RateLimiter)[] {
    return this.#planned === undefined ? this.#policies : (this.#planned.policy ?? []);
  }

  /**
   * Replaces the plan of every key (a policy, or stacked gates), or the
   * resolver, of a limiter with plans (one with a `name`, or a resolver).
   * No key is reset: each moves on its next call, its used capacity carried
   * by `carry` (default: the limiter's), never a burst. Across a fleet the
   * newest version wins (default: the current one's + 1): a node not yet
   * changed has its calls decided by the newer plan Redis records for the
   * key.
   *
   * @example
   * ```ts
   * limiter.setPolicy(gcra({ limit: 200, period: '1m' }), { carry: 'as-is' });
   * ```
   */
  setPolicy(policy: Policy | readonly Policy[] | PolicyResolver, options?: SetPolicyOptions): void {
    this.#plansOf('setPolicy()').setPolicy(policy, options);
  }

  /**
   * Forgets the plan a resolver answered for `key` (or for every key, with
   * no argument): it is asked again on the key's next call, and the key moves
   * to the new answer, its used capacity carried. A limiter with plans only.
   *
   * @example
   * ```ts
   * tenants.set('acme', 'pro');
   * limiter.invalidate('acme');
   * ```
   */
  invalidate(key?: string): void {
    if (key !== undefined) checkKey(key);
    this.#plansOf('invalidate()').invalidate(key);
  }

  #plansOf(call: string): PlannedBinding {
    if (this.#planned === undefined) throw new ConfigError('name', undefined, `${NOT_PLANNED}, for ${call}`);
    return this.#planned;
  }

  /**
   * Whether every decision is made in process, exactly and synchronously
   * (the embedded store, custom limiters on it): `limitSync` then answers
   * whatever `limit` would, with no promise. Adapters use it to stay
   * synchronous on the hot path.
   *
   * @example
   * ```ts
   * const d = limiter.inProcess ? limiter.limitSync(key) : await limiter.limit(key);
   * ```
   */
  get inProcess(): boolean {
    return this.#binding.inProcess === true;
  }

  /**
   * Decides whether `key` may pass now and charges it if so.
   *
   * @example
   * ```ts
   * const { allowed, retryAfterMs } = await limiter.limit('user:42', { cost: 2 });
   * ```
   */
  async limit(key: string, options?: LimitOptions): Promise<Decision> {
    const cost = this.#cost(key, options, 'limit()', LIMIT_OPTIONS);
    if (this.#holdings !== undefined) {
      const d = this.#permitOf(key, cost, await this.#binding.hold!(key, cost));
      if (this.#metrics !== undefined) this.#observe(d);
      return d;
    }
    const pending = this.#binding.limit(key, cost, false);
    if (this.#metrics === undefined) return pending;
    const d = await pending;
    this.#observe(d);
    return d;
  }

  /**
   * {@link Limiter.limit}, synchronously: for stores that decide in process
   * (the embedded store; a Redis store in leased mode, which spends its
   * lease here and denies a key it holds no lease for yet while it leases
   * one). The fastest path. On a store that decides only asynchronously (a
   * strict `RedisStore`) it throws {@link ArgumentError} (`store`).
   *
   * @example
   * ```ts
   * if (!limiter.limitSync(ip).allowed) res.statusCode = 429;
   * ```
   */
  limitSync(key: string, options?: LimitOptions): Decision {
    // The common call (no options) checks the key inline: a smaller hot path
    // leaves V8 room to inline the binding's decision into the caller.
    let cost = 1;
    if (options === undefined) checkKey(key);
    else cost = this.#cost(key, options, 'limitSync()', LIMIT_OPTIONS);
    const binding = this.#binding;
    if (binding.limitNow === undefined) this.#notSync('limitSync(); use await limit()');
    const d = this.#holdings === undefined ? binding.limitNow!(key, cost) : this.#holdSync(key, cost);
    if (this.#metrics !== undefined) this.#observe(d);
    return d;
  }

  /**
   * Decides many keys at once, in order, at one instant: one clock read and
   * one call into the core per 1024 keys. The same decisions as calling
   * `limit` for each key in turn.
   *
   * @example
   * ```ts
   * const decisions = await limiter.limitMany(['a', 'b', 'a']);
   * ```
   */
  async limitMany(keys: readonly string[], options?: LimitOptions): Promise<Decision[]> {
    const cost = this.#manyCost(keys, options, 'limitMany()');
    if (this.#holdings !== undefined) {
      const settled = await Promise.allSettled(keys.map((key) => this.#binding.hold!(key, cost)));
      const ds = settled.map((s, i) => (s.status === 'fulfilled' ? this.#permitOf(keys[i]!, cost, s.value) : undefined));
      const failed = settled.find((s) => s.status === 'rejected');
      if (failed !== undefined) {
        // No one receives the others' permits: given back, not left to their leases.
        await Promise.all(ds.map((d) => d?.release?.()));
        throw failed.reason;
      }
      if (this.#metrics !== undefined) for (const d of ds) this.#observe(d!);
      return ds as Decision[];
    }
    const pending = this.#binding.limitMany(keys, cost);
    if (this.#metrics === undefined) return pending;
    const ds = await pending;
    for (const d of ds) this.#observe(d);
    return ds;
  }

  /**
   * {@link Limiter.limitMany}, synchronously (embedded store).
   *
   * @example
   * ```ts
   * const allowed = limiter.limitManySync(keys).filter((d) => d.allowed).length;
   * ```
   */
  limitManySync(keys: readonly string[], options?: LimitOptions): Decision[] {
    const cost = this.#manyCost(keys, options, 'limitManySync()');
    const binding = this.#binding;
    if (binding.limitManyNow === undefined) this.#notSync('limitManySync(); use await limitMany()');
    const ds = this.#holdings === undefined ? binding.limitManyNow!(keys, cost) : this.#holdManySync(keys, cost);
    if (this.#metrics !== undefined) for (const d of ds) this.#observe(d);
    return ds;
  }

  /**
   * The decision `limit` would make now, without charging anything.
   *
   * @example
   * ```ts
   * const { remaining } = await limiter.peek('user:42');
   * ```
   */
  async peek(key: string, options?: LimitOptions): Promise<Decision> {
    return this.#binding.limit(key, this.#cost(key, options, 'peek()', LIMIT_OPTIONS), true);
  }

  /**
   * Books the earliest moment the request can pass and charges it as of then:
   * callers that each fire after their `waitMs` arrive exactly spaced, first
   * come first served, instead of retrying in a herd.
   *
   * @example
   * ```ts
   * const r = await limiter.reserve('partner-api');
   * await new Promise((ok) => setTimeout(ok, r.waitMs));
   * ```
   */
  async reserve(key: string, options?: ReserveOptions): Promise<Reservation> {
    const cost = this.#cost(key, options, 'reserve()', RESERVE_OPTIONS);
    if (this.#holdings !== undefined) {
      // A booking is a moment at which the gates admit; a concurrency gate
      // admits when a holder leaves, which no one can know in advance.
      throw new ArgumentError('policy', this.policies, 'gates without a concurrency gate for reserve(), which books a future moment; use acquire(), which waits for a slot');
    }
    return this.#binding.reserve(key, cost, maxWait(options));
  }

  /**
   * Waits until the request is admitted, then resolves with its decision.
   * Never drops: it rejects only when `signal` aborts (with the signal's
   * reason; the booking is refunded) or when admission would take longer than
   * `maxWaitMs` ({@link AcquireTimeoutError}, nothing charged). A store
   * that can book nothing for now (a `RedisStore` while Redis is unreachable,
   * with fallback `'closed'` or before it has heard the fleet's size) makes
   * it ask again every 100 ms, within `maxWaitMs`.
   *
   * @example
   * ```ts
   * await limiter.acquire('partner-api', { signal: AbortSignal.timeout(5000) });
   * await fetch(url);
   * ```
   */
  async acquire(key: string, options?: AcquireOptions): Promise<Permit> {
    const cost = this.#cost(key, options, 'acquire()', ACQUIRE_OPTIONS);
    const limit = maxWait(options);
    const signal = options?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new ArgumentError('signal', signal, 'an AbortSignal');
    }
    const priority = checkPriority(options?.priority);
    const callerRank = rank(priority, this.#agingMs, performance.now());
    signal?.throwIfAborted();
    if (this.#holdings !== undefined) return this.#acquireSlot(key, cost, limit, signal, callerRank, priority);
    const deadline = performance.now() + limit;
    let r = await this.#binding.reserve(key, cost, limit);
    while (!r.allowed) {
      // Refused within maxWaitMs: nothing can be booked now (a Redis store's
      // fallback that has not heard the fleet's size, or 'closed', books
      // nothing while Redis is unreachable). The caller waits and asks
      // again, as for a slot, within its maxWaitMs: acquire never drops.
      const pause = Math.max(r.waitMs, UNBOOKABLE_RETRY_MS);
      if (r.waitMs > limit || pause > deadline - performance.now()) throw new AcquireTimeoutError(key, r.waitMs, limit);
      await sleep(pause, signal);
      r = await this.#binding.reserve(key, cost, Math.max(0, deadline - performance.now()));
    }
    if (r.waitMs > 0) {
      try {
        await this.#booked.wait(key, cost, r.waitMs, callerRank, limit, signal);
      } catch (error) {
        await this.#binding.refund(key, cost);
        throw error;
      }
    }
    const d: Decision = { allowed: true, limit: r.limit, capacity: r.capacity, gate: r.gate, remaining: r.remaining, retryAfterMs: 0, resetAfterMs: 0, source: r.source };
    if (this.#metrics !== undefined) this.#observe(d);
    // No slot to hold: a permit whose release does nothing.
    return new PermitImpl(undefined, key, cost, { decision: d, at: NaN });
  }

  /**
   * acquire() with a concurrency gate: asks until every gate admits. A
   * concurrency gate's denial waits for a release of the key in this process
   * (at once) or polls (slots freed in other processes); a rate gate's waits
   * its retryAfterMs. Times out when the next try would come after
   * `maxWaitMs`.
   */
  async #acquireSlot(key: string, cost: number, maxWaitMs: number, signal: AbortSignal | undefined, callerRank: number, priority: number): Promise<Permit> {
    const holdings = this.#holdings!;
    let took = false;
    try {
      const p = await this.#waitForSlot(key, cost, maxWaitMs, signal, callerRank, priority);
      took = true;
      return p;
    } finally {
      holdings.promote(key, took);
    }
  }

  async #waitForSlot(key: string, cost: number, maxWaitMs: number, signal: AbortSignal | undefined, callerRank: number, priority: number): Promise<Permit> {
    const started = performance.now();
    const holdings = this.#holdings!;
    for (let tries = 0; ; tries++) {
      const releases = holdings.releases;
      if (tries === 0 && holdings.outranked(key, callerRank, priority)) {
        // A caller of this process that outranks it waits for a slot: it goes first.
        await holdings.wait(key, Math.min(maxWaitMs, MAX_TIMER_MS), signal, releases, true, cost, callerRank, priority);
        if (performance.now() - started >= maxWaitMs) throw new AcquireTimeoutError(key, 0, maxWaitMs);
        continue;
      }
      const held = await this.#binding.hold!(key, cost);
      const d = held.decision;
      if (d.allowed) {
        const p = this.#permitOf(key, cost, held) as PermitImpl;
        if (signal?.aborted === true) {
          await p.release();
          signal.throwIfAborted();
        }
        if (this.#metrics !== undefined) this.#observe(p);
        return p;
      }
      const left = maxWaitMs - (performance.now() - started);
      const slot = isConcurrency(this.policies[d.gate]);
      // A slot may come back at any moment (a release), a rate's unit only after its wait.
      if (left <= 0 || (!slot && d.retryAfterMs > left)) throw new AcquireTimeoutError(key, d.retryAfterMs, maxWaitMs);
      await holdings.wait(key, Math.min(d.retryAfterMs, left), signal, releases, slot, cost, callerRank, priority);
    }
  }

  /** What hold answered, as a decision: a permit when admitted. */
  #permitOf(key: string, cost: number, held: { decision: Decision; at: number }): Decision {
    return held.decision.allowed ? this.#holdings!.permit(key, cost, held) : held.decision;
  }

  /** limitManySync() with a concurrency gate: all or none handed out (a throw gives back the permits made before it). */
  #holdManySync(keys: readonly string[], cost: number): Decision[] {
    const ds: Decision[] = [];
    try {
      for (const key of keys) ds.push(this.#holdSync(key, cost));
    } catch (error) {
      for (const d of ds) void d.release?.();
      throw error;
    }
    return ds;
  }

  /** limitSync() with a concurrency gate (out of line: off the hot path of the others). */
  #holdSync(key: string, cost: number): Decision {
    return this.#permitOf(key, cost, this.#binding.holdNow!(key, cost));
  }

  /**
   * Gives `cost` units back to `key` (e.g. the work was not done after all).
   * Refunding more than was taken leaves the key full.
   *
   * @example
   * ```ts
   * await limiter.refund('user:42', 1);
   * ```
   */
  async refund(key: string, cost: number): Promise<void> {
    checkKey(key);
    if (typeof cost !== 'number' || !Number.isInteger(cost) || cost < 1 || cost > 1_000_000_000) {
      throw new ArgumentError('cost', cost, 'a positive integer');
    }
    await this.#binding.refund(key, cost);
  }

  /**
   * Forgets `key`: its next request is treated as its first.
   *
   * @example
   * ```ts
   * await limiter.reset('user:42');
   * ```
   */
  async reset(key: string): Promise<void> {
    checkKey(key);
    await this.#binding.reset(key);
  }

  /**
   * Blocks `key` for `duration` (a {@link Duration} from 1 ms to 1000 days,
   * from now on the deciding store's clock; it replaces any block the key
   * had): its requests are denied with `reason: 'blocked'` and charged
   * nothing until then, in every process sharing the store. Rejects with
   * {@link RedisUnavailableError} when Redis cannot be reached (nothing is
   * blocked then), with {@link StoreFullError} when an embedded table full
   * at its cap has no room for it.
   *
   * @example
   * ```ts
   * await limiter.block('ip:203.0.113.9', '15m');
   * (await limiter.limit('ip:203.0.113.9')).reason; // 'blocked'
   * ```
   */
  async block(key: string, duration: Duration): Promise<void> {
    checkKey(key);
    const ms = blockDuration(duration);
    await this.#blocks('block()').block!(key, ms);
  }

  /**
   * Lifts `key`'s block, and forgets the denials counted toward one
   * (`blockAfter`). Its limits' state is untouched. Another process's local
   * mirror of a RedisStore may still deny it for up to 1 s.
   *
   * @example
   * ```ts
   * await limiter.unblock('ip:203.0.113.9');
   * ```
   */
  async unblock(key: string): Promise<void> {
    checkKey(key);
    await this.#blocks('unblock()').block!(key, 0);
  }

  /**
   * Charges `key` `cost` units in every rate gate without asking, past its
   * limit if need be: the key owes them and is denied until it has waited
   * them off (GCRA and token buckets refill, windows move on; a concurrency
   * gate is untouched). For work found expensive after the fact, or abuse.
   * While Redis is unreachable the fallback takes the charge and Redis is
   * charged once it is back (with `reconcile`, the default).
   *
   * @example
   * ```ts
   * await limiter.penalize('user:42', 10);
   * ```
   */
  async penalize(key: string, cost: number): Promise<void> {
    checkKey(key);
    if (typeof cost !== 'number' || !Number.isInteger(cost) || cost < 1 || cost > 1_000_000_000) {
      throw new ArgumentError('cost', cost, 'a positive integer up to 1000000000');
    }
    await this.#blocks('penalize()').penalize!(key, cost);
  }

  /**
   * Brings `key`'s remaining down to `remaining`, what an upstream's own
   * counter reported (a response's "40 remain"), never up: afterwards the
   * key admits at most `remaining` more units until its gates refill.
   *
   * Each rate gate's remaining is what a {@link Limiter.peek} of cost 1
   * finds admissible now: its `remaining` + 1 when it would admit (the
   * peek counts its own request), 0 when it would deny. When the fewest of
   * them is at most `remaining`, nothing changes. Otherwise the gate with the
   * fewest (the first in gate order on ties) is charged the difference now,
   * the charge {@link Limiter.penalize} makes (GCRA's theoretical arrival
   * time moves on, a bucket loses tokens, a window's count grows), so that
   * the key has exactly `remaining` left: the minimal change that makes the
   * key admit no more than the upstream said. Only that gate: a stacked day
   * quota keeps its own count rather than being drained to a minute's.
   * Concurrency gates and the key's block are untouched.
   *
   * Atomic in Redis (computed and applied in the decide script): stores
   * applying the same report at once lower the key once, never below it.
   * While Redis is unreachable the fallback's state of the key is lowered
   * instead, and nothing is owed to Redis afterwards (a report is a moment's
   * truth; the next one lowers Redis). In leased mode Redis is lowered and
   * this process's lease of the key dropped (other processes spend theirs
   * until they run out, as after a block). A limiter with plans lowers the
   * key under its plan. A custom {@link RateLimiter} cannot: {@link ArgumentError}
   * (`policy`).
   *
   * @param remaining - an integer from 0 to 1000000000; anything else is an
   * {@link ArgumentError} naming `remaining`, and nothing changes.
   *
   * @example
   * ```ts
   * const res = await fetch(url);
   * const left = Number(res.headers.get('x-ratelimit-remaining'));
   * if (Number.isInteger(left) && left >= 0) await limiter.lower('partner-api', left);
   * ```
   */
  async lower(key: string, remaining: number): Promise<void> {
    checkKey(key);
    if (typeof remaining !== 'number' || !Number.isInteger(remaining) || remaining < 0 || remaining > MAX_COUNT) {
      throw new ArgumentError('remaining', remaining, `an integer from 0 to ${MAX_COUNT}`);
    }
    await this.#blocks('lower()', 'lower').lower!(key, remaining);
  }

  /** The binding, when it keeps blocks and penalties (and `also`, when given); else the typed error of `call`. */
  #blocks(call: string, also?: 'lower'): StoreBinding {
    const b = this.#binding;
    if (b.block === undefined || b.penalize === undefined || (also !== undefined && b[also] === undefined)) {
      throw new ArgumentError('policy', this.policies, `built-in policies on a store that keeps blocks (EmbeddedStore, RedisStore) for ${call}`);
    }
    return b;
  }

  /** The error of a synchronous call on a store that decides only asynchronously (out of line: it is on the hot path's way). */
  #notSync(call: string): never {
    throw new ArgumentError('store', this.#store, SYNC_STORE + call);
  }

  #observe(d: Decision): void {
    this.#metrics!.count('cellgate.decisions', 1, DECISION_ATTRIBUTES[d.allowed ? 'allowed' : 'denied'][d.source]);
  }

  /** Checks the key and the names of `options` (`known`, the options of the method `where`), and returns the cost. */
  #cost(key: unknown, options: LimitOptions | undefined, where: string, known: readonly string[]): number {
    checkKey(key);
    if (options === undefined) return 1;
    return checkCost(strictOptions(options, where, known, 'options', ArgumentError).cost, this.#maxCost);
  }

  #manyCost(keys: unknown, options: LimitOptions | undefined, where: string): number {
    if (!Array.isArray(keys)) throw new ArgumentError('keys', keys, 'an array of keys');
    for (let i = 0; i < keys.length; i++) {
      // The parameter's name is built only for the error: not a string per key.
      if (!isKey(keys[i])) checkKey(keys[i], `keys[${i}]`);
    }
    if (options === undefined) return 1;
    return checkCost(strictOptions(options, where, LIMIT_OPTIONS, 'options', ArgumentError).cost, this.#maxCost);
  }
}

function checkCost(cost: unknown, max: number): number {
  if (cost === undefined) return 1;
  if (typeof cost !== 'number' || !Number.isInteger(cost) || cost < 1 || cost > max) {
    throw new ArgumentError('cost', cost, `a positive integer no larger than ${max}, the most this policy can ever admit`);
  }
  return cost;
}

function maxWait(options: ReserveOptions | undefined): number {
  const value = options?.maxWaitMs;
  return value === undefined ? Infinity : checkDuration(value, 'maxWaitMs', MAX_WAIT_BOUNDS, ArgumentError);
}

function checkPolicies(value: unknown): readonly (Policy | RateLimiter)[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0 || list.length > MAX_GATES) {
    throw new ConfigError('policy', value, `a policy or an array of 1 to ${MAX_GATES} policies`);
  }
  if (list.length === 1 && isCustomLimiter(list[0])) return Object.freeze([list[0]]);
  for (const p of list) {
    if (!isBuiltIn(p)) {
      throw new ConfigError(
        'policy',
        p,
        'a policy built by gcra(), tokenBucket(), fixedWindow(), linearWindow() or slidingWindow() (a custom RateLimiter must be the only policy: compose inside it)',
      );
    }
  }
  return Object.freeze([...list]) as readonly Policy[];
}

