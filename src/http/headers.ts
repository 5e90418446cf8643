import type { Decision } from '../limiter/decision.js';
import type { Policy } from '../policies/index.js';
import type { RateLimiter } from '../scheduler/rate-limiter.js';

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
  readonly quota: number;
  /** Window in whole seconds (undefined: not a windowed quota). */
  readonly window: number | undefined;
  readonly capacity: number;
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
    if (!('kind' in p)) return { name, quota: p.capacity, window: undefined, capacity: p.capacity };
    const policy = p as Policy;
    switch (policy.kind) {
      case 'gcra':
        return { name, quota: policy.limit, window: seconds(policy.periodMs), capacity: policy.core.capacity };
      case 'tokenBucket':
        return { name, quota: policy.capacity, window: seconds(policy.periodMs), capacity: policy.core.capacity };
      default:
        return { name, quota: policy.limit, window: seconds(policy.windowMs), capacity: policy.core.capacity };
    }
  });
}

/**
 * Builds the rate-limit header fields of a limiter's responses.
 *
 * @example
 * ```ts
 * const headers = rateLimitHeaders(limiter.policies, 'draft');
 * headers(decision); // [['RateLimit-Policy', '"gcra";q=5;w=1'], ['RateLimit', '"gcra";r=4;t=1']]
 * ```
 */
export function rateLimitHeaders(policies: readonly (Policy | RateLimiter)[], style: HeaderStyle): (d: Decision) => [string, string][] {
  const described = describe(policies);
  const policyField = described.map((p) => `"${p.name}";q=${p.quota}${p.window === undefined ? '' : `;w=${p.window}`}`).join(', ');
  return (d) => {
    const out: [string, string][] = [];
    const reset = Math.ceil(Math.max(d.resetAfterMs, d.allowed ? 0 : d.retryAfterMs) / 1000);
    const remaining = Math.max(0, Math.floor(d.remaining));
    if (style === 'draft' || style === 'both') {
      // The decision reports the gate that binds; its capacity names it among stacked gates.
      const binding = described.find((p) => p.capacity === d.limit) ?? described[0]!;
      out.push(['RateLimit-Policy', policyField], ['RateLimit', `"${binding.name}";r=${remaining};t=${reset}`]);
    }
    if (style === 'legacy' || style === 'both') {
      out.push(['X-RateLimit-Limit', String(d.limit)], ['X-RateLimit-Remaining', String(remaining)], ['X-RateLimit-Reset', String(reset)]);
    }
    if (!d.allowed) out.push(['Retry-After', String(Math.max(1, Math.ceil(d.retryAfterMs / 1000)))]);
    return out;
  };
}
