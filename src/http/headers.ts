import type { Decision } from '../limiter/decision.js';
import type { Policy } from '../policies/index.js';
import { configuredLimit } from '../policies/configured-limit.js';
import type { RateLimiter } from '../policies/rate-limiter.js';

/**
 * Which rate-limit header fields a response carries: `'draft'` (default),
 * the IETF `RateLimit` / `RateLimit-Policy` fields of
 * draft-ietf-httpapi-ratelimit-headers (structured-field form); `'legacy'`,
 * the older `X-RateLimit-Limit` / `-Remaining` / `-Reset` trio; `'both'`;
 * or `false` for none. `Retry-After` is always sent on a denial.
 */
export type HeaderStyle = 'draft' | 'legacy' | 'both' | false;

/** A policy as the headers describe it: its name, quota and window. */
interface Described {
  readonly name: string;
  /** The limit it was configured with (`Decision.limit`). */
  readonly quota: number;
  /** Window in whole seconds (undefined: not a windowed quota). */
  readonly window: number | undefined;
  /** A concurrency gate: its units come back on release, not after a time. */
  readonly slots?: boolean;
}

const seconds = (ms: number) => Math.max(1, Math.round(ms / 1000));

/** Names, quotas and windows of a limiter's policies, computed once per middleware. */
function describe(policies: readonly (Policy | RateLimiter)[]): Described[] {
  const used = new Map<string, number>();
  return policies.map((p) => {
    const base = 'kind' in p ? (p as Policy).kind : p.name;
    const n = (used.get(base) ?? 0) + 1;
    used.set(base, n);
    const name = n === 1 ? base : `${base}-${n}`;
    const quota = configuredLimit(p);
    if (!('kind' in p)) return { name, quota, window: undefined };
    const policy = p as Policy;
    if (policy.kind === 'concurrency') return { name, quota, window: undefined, slots: true };
    return { name, quota, window: seconds(policy.kind === 'gcra' || policy.kind === 'tokenBucket' ? policy.periodMs : policy.windowMs) };
  });
}

/** How a decision of a per-key plan (a policy resolver) is named in the headers. */
const PER_KEY = { name: 'default', slots: false } as const;

/**
 * Builds the rate-limit header fields of a limiter's responses. Every
 * policy is listed in `RateLimit-Policy` with its configured limit (`q=`)
 * and period or window (`w=`, seconds); `RateLimit` names the gate that
 * binds the decision (`Decision.gate`). `r=` and `X-RateLimit-Remaining`
 * count what would pass right now (`Decision.remaining`), out of what the
 * gate passes at once (`Decision.capacity`: GCRA's burst, not its `limit`);
 * `X-RateLimit-Limit` is the binding gate's `q=` (`Decision.limit`); `t=` and
 * `X-RateLimit-Reset` are whole seconds until the key is full again.
 *
 * A concurrency gate is listed without a window (`"concurrency";q=3`): its
 * `r=` is the slots free, and when it binds, `t=` is 0 on an admission (no
 * time to wait out: slots come back as requests finish) and 1 on a denial,
 * as is `Retry-After`: a slot frees whenever a request in flight ends, which
 * no one can know in advance (the decision's `retryAfterMs`, the lease of
 * the oldest holders, is only a bound), so the client is told to try again
 * in the smallest whole second.
 *
 * @example
 * ```ts
 * const headers = rateLimitHeaders(limiter.policies, 'draft');
 * headers(decision); // [['RateLimit-Policy', '"gcra";q=5;w=1'], ['RateLimit', '"gcra";r=0;t=1']]
 * ```
 */
export function rateLimitHeaders(policies: readonly (Policy | RateLimiter)[], style: HeaderStyle): (d: Decision) => [string, string][] {
  const described = describe(policies);
  const policyField = described.map((p) => `"${p.name}";q=${p.quota}${p.window === undefined ? '' : `;w=${p.window}`}`).join(', ');
  return (d) => {
    const out: [string, string][] = [];
    // A fallback policy of its own (RedisStore's fallback: { policy }) may have more gates than the limiter.
    // (A limiter with a policy resolver has no policies of its own: its plans are per key.)
    const binding = described[d.gate] ?? described[0] ?? PER_KEY;
    const retryAfterMs = binding.slots === true ? 1000 : d.retryAfterMs;
    const reset = binding.slots === true ? (d.allowed ? 0 : 1) : Math.ceil(Math.max(d.resetAfterMs, d.allowed ? 0 : d.retryAfterMs) / 1000);
    const remaining = Math.max(0, Math.floor(d.remaining));
    if (style === 'draft' || style === 'both') {
      if (policyField !== '') out.push(['RateLimit-Policy', policyField]);
      out.push(['RateLimit', `"${binding.name}";r=${remaining};t=${reset}`]);
    }
    if (style === 'legacy' || style === 'both') {
      out.push(['X-RateLimit-Limit', String(d.limit)], ['X-RateLimit-Remaining', String(remaining)], ['X-RateLimit-Reset', String(reset)]);
    }
    if (!d.allowed) out.push(['Retry-After', String(Math.max(1, Math.ceil(retryAfterMs / 1000)))]);
    return out;
  };
}
