import { ConfigError } from '../../errors.js';
import { optionNames, strictOptions } from '../../core/options.js';
import { CODE } from '../../policies/policy.js';
import type { Policy } from '../../policies/index.js';

/**
 * What a {@link RedisStore} decides while Redis is unreachable:
 * - default (the option left out): the policy scaled to this node's share of
 *   the live fleet, 1/N where N is the number of stores that heartbeat into
 *   Redis (the last N seen before the outage); a store that has never heard
 *   from Redis knows no N and denies until it has (from its second
 *   heartbeat on: stores starting together have all beaten by then);
 * - `{ nodes: N }`: the same policy scaled to a fixed share of N nodes, 1/N of
 *   the rate and of the burst (at least 1), decided locally from the last
 *   state Redis reported for the key;
 * - `{ policy }`: an explicit policy (or gates) decided locally;
 * - `'open'`: admit everything; `'closed'`: deny everything.
 */
export type FallbackOption = { nodes: number } | { policy: Policy | readonly Policy[] } | 'open' | 'closed';

/** The default fallback, internally: a share of the fleet whose size Redis reports. @internal */
export const FLEET = 'fleet';
/** {@link FallbackOption} or the default. @internal */
export type FallbackSetting = FallbackOption | typeof FLEET;

/** The names of both object forms of {@link FallbackOption}. */
const FALLBACK_OPTIONS = optionNames<FallbackOption extends infer F ? (F extends object ? keyof F : never) : never>({ nodes: true, policy: true });

/**
 * Scales each gate to one node's share of `nodes`: rates divided by `nodes`
 * exactly, counts (burst, capacity, window limit) divided and floored, but at
 * least 1 so that a request of cost 1 can still pass; a concurrency gate's
 * slots divided and floored, 0 included (never a holder more than the limit).
 */
export function scaleGates(gates: readonly Policy[], nodes: number): Policy[] {
  return gates.map((policy) => {
    const { code, p0, p1, p2, capacity } = policy.core;
    const share = (count: number) => Math.max(1, Math.floor(count / nodes));
    let core;
    if (code === CODE.gcra) {
      // p0 emission interval, p1 burst, p2 = burst * interval.
      const interval = p0 * nodes;
      const burst = share(p1);
      core = { code, p0: interval, p1: burst, p2: burst * interval, capacity: burst };
    } else if (code === CODE.tokenInterval) {
      // p0 capacity, p1 refill, p2 period.
      core = { code, p0: share(p0), p1: p1 / nodes, p2, capacity: share(capacity) };
    } else if (code === CODE.concurrency) {
      // p0 lease, p1 limit: no "at least 1", a slot more per node would be a
      // holder more than the limit (a limit below the fleet's size admits
      // nothing without Redis).
      const slots = Math.floor(p1 / nodes);
      core = { code, p0, p1: slots, p2, capacity: slots };
    } else {
      // Windows: p0 window, p1 limit.
      core = { code, p0, p1: share(p1), p2, capacity: share(capacity) };
    }
    return { ...policy, core: Object.freeze(core) } as Policy;
  });
}

/**
 * Validates the `fallback` option and returns the local gates to decide with
 * (undefined for 'open' and 'closed').
 * @internal
 */
export function fallbackGates(option: unknown, gates: readonly Policy[]): Policy[] | undefined {
  if (option === 'open' || option === 'closed') return undefined;
  // The default: scaled to the fleet's size as Redis reports it (RedisBinding rescales).
  if (option === FLEET) return scaleGates(gates, 1);
  if (typeof option === 'object' && option !== null && !Array.isArray(option)) {
    // One form or the other: a typo (`nodse`) or both names would leave one unread.
    const o = strictOptions(option, 'new RedisStore({ fallback })', FALLBACK_OPTIONS, 'fallback');
    if ('nodes' in o && 'policy' in o) throw new ConfigError('fallback', option, '{ nodes: N } or { policy }, not both');
  }
  if (typeof option === 'object' && option !== null && 'nodes' in option) {
    const nodes = (option as { nodes: unknown }).nodes;
    if (typeof nodes !== 'number' || !Number.isInteger(nodes) || nodes < 1 || nodes > 100_000) {
      throw new ConfigError('fallback.nodes', nodes, 'an integer from 1 to 100000');
    }
    return scaleGates(gates, nodes);
  }
  if (typeof option === 'object' && option !== null && 'policy' in option) {
    const policy = (option as { policy: unknown }).policy;
    const list = Array.isArray(policy) ? policy : [policy];
    for (const p of list) {
      if (typeof (p as Policy | undefined)?.core?.code !== 'number') {
        throw new ConfigError('fallback.policy', p, 'a policy built by gcra(), tokenBucket(), fixedWindow(), linearWindow() or slidingWindow()');
      }
    }
    return list as Policy[];
  }
  throw new ConfigError('fallback', option, "{ nodes: N }, { policy }, 'open' or 'closed'");
}
