import type { Clock } from '../core/clock.js';
import { checkDuration, MAX_WAIT_BOUNDS, type Duration } from '../core/duration.js';
import { ConfigError } from '../errors.js';
import { Limiter, type LimiterOptions } from '../limiter/limiter.js';
import { linearWindow } from '../policies/linear-window.js';
import { optionNames, strictOptions } from '../core/options.js';
import type { Store } from '../limiter/store.js';

/**
 * Options of {@link rateLimited}: how to key a call, and either `limit` +
 * `within` (a {@link linearWindow}) or any `policy` a {@link Limiter} takes.
 *
 * @example
 * ```ts
 * const perResource: RateLimitedOptions<[resource: { id: string }]> = {
 *   limit: 2,
 *   within: '3s',
 *   key: (resource) => resource.id,
 * };
 * ```
 */
export type RateLimitedOptions<Args extends unknown[] = unknown[]> = {
  /**
   * The resource a call is for, from the method's arguments: calls with the
   * same key share a budget, other keys are unaffected. It may use fewer
   * arguments than the method has.
   */
  key: (...args: Args) => string;
  /**
   * Where state lives (default: a new {@link EmbeddedStore} per decorated
   * method, sized for 100 000 keys; pass one store to many methods to share
   * its memory). In a Redis store, limiters with the same policy share a
   * key's state: the same method in every process shares its budget, and two
   * methods with equal policies need distinct keys (e.g. a prefix) to stay apart.
   */
  store?: Store;
  /** Epoch milliseconds, passed to the {@link Limiter}; inject one in tests. */
  clock?: Clock;
  /**
   * Longest a call may wait for admission; one that would wait longer rejects
   * with {@link AcquireTimeoutError} without running (default: no bound).
   */
  maxWaitMs?: Duration;
} & (
  | {
      /** Calls per key within `within` (a {@link linearWindow}). */
      limit: number;
      /**
       * Window length, counted from the window's first admission (a
       * {@link linearWindow}'s `within`: not a window aligned to the clock,
       * as `fixedWindow`'s `window` is).
       */
      within: Duration;
      policy?: never;
    }
  | {
      /** Any policy, or stacked gates, as {@link LimiterOptions.policy}. */
      policy: LimiterOptions['policy'];
      limit?: never;
      within?: never;
    }
);

const RATE_LIMITED_OPTIONS = optionNames<keyof RateLimitedOptions>({
  key: true,
  store: true,
  clock: true,
  maxWaitMs: true,
  limit: true,
  within: true,
  policy: true,
});

/**
 * A method decorator (TC39 / TypeScript 5 decorators, not
 * `experimentalDecorators`) that admits calls of an async method per resource
 * key, waiting rather than failing: each call waits in
 * {@link Limiter.acquire} until its key has room, then runs with the same
 * `this` and arguments and returns the method's result.
 *
 * One {@link Limiter} is created per decorated method, when the class is
 * defined, and shared by every instance: the key, not the instance, tells
 * budgets apart. A call is counted when admitted, whether the method then
 * succeeds or throws. With a {@link concurrency} gate among the policy's
 * gates, a call holds its permit until the method settles, so at most that
 * many calls of a key run at once. Only methods returning a promise can be decorated,
 * since the wait makes every call asynchronous. Options are validated when the
 * class is defined ({@link ConfigError} naming the option); a key that is not
 * a non-empty string rejects the call with {@link ArgumentError} (`key`).
 *
 * @example
 * ```ts
 * class Reconciler {
 *   @rateLimited({ limit: 2, within: '3s', key: (resource: { id: string }) => resource.id })
 *   async reconcile(resource: { id: string }): Promise<void> {
 *     // at most 2 runs per resource id in any 3 s window; more calls wait
 *   }
 * }
 * ```
 */
export function rateLimited<Args extends unknown[]>(options: RateLimitedOptions<Args>) {
  const o = strictOptions(options, 'rateLimited()', RATE_LIMITED_OPTIONS);
  const key = o.key;
  if (typeof key !== 'function') throw new ConfigError('key', key, 'a function returning the key of a call from its arguments');
  const maxWaitMs = o.maxWaitMs === undefined ? undefined : checkDuration(o.maxWaitMs, 'maxWaitMs', MAX_WAIT_BOUNDS);
  // The union type already forbids mixing the two forms; JavaScript callers
  // (and casts) get the same rule at run time, as early as possible.
  const windowed = o.limit !== undefined || o.within !== undefined;
  if (windowed && o.policy !== undefined) {
    throw new ConfigError('policy', o.policy, 'omitted when limit and within are given (give one or the other)');
  }
  if (!windowed && o.policy === undefined) {
    throw new ConfigError('policy', undefined, 'a policy, or limit and within, to rate-limit by');
  }
  // Built once here, so a bad limit or within fails the class definition, not a call.
  const policy = windowed ? linearWindow({ limit: o.limit as number, within: o.within as Duration }) : (o.policy as LimiterOptions['policy']);
  const acquireOptions = maxWaitMs === undefined ? undefined : { maxWaitMs };
  const keyOf = key as (...args: unknown[]) => unknown;

  // MArgs, not Args: the method may take more arguments than the key reads,
  // as long as the ones the key reads come first and have its types.
  return function decorate<This, MArgs extends [...Args, ...unknown[]], Return extends Promise<unknown>>(
    method: (this: This, ...args: MArgs) => Return,
    context: ClassMethodDecoratorContext<This, (this: This, ...args: MArgs) => Return>,
  ): (this: This, ...args: MArgs) => Return {
    if (context?.kind !== 'method' || typeof method !== 'function') {
      throw new TypeError(`@rateLimited decorates methods only, not ${String(context?.kind ?? typeof method)}`);
    }
    // Per decorated method (not per rateLimited() call): one decorator value
    // reused on two methods must not make them share a budget by accident.
    const limiter = new Limiter({ policy, store: o.store as Store | undefined, clock: o.clock as Clock | undefined });
    const limited = async function (this: This, ...args: MArgs): Promise<Awaited<Return>> {
      // Inside the async function, so a throwing key function or a bad key
      // rejects the call like any other failure of an async method.
      const permit = await limiter.acquire(keyOf(...args) as string, acquireOptions);
      try {
        return await method.apply(this, args);
      } finally {
        // A concurrency gate's slot is held while the method runs (a no-op for rates).
        await permit.release();
      }
    };
    // Stack traces and logs keep showing the method's own name.
    Object.defineProperty(limited, 'name', { value: method.name, configurable: true });
    // A native promise of the method's result: `Return` is a promise type (the
    // constraint), so this only narrows away exotic Promise subclasses.
    return limited as unknown as (this: This, ...args: MArgs) => Return;
  };
}
