import type { Policy } from './index.js';
import { isCustomLimiter, type RateLimiter } from './rate-limiter.js';

/**
 * The limit a policy was configured with, as `Decision.limit` reports it and
 * the `q=` of the `RateLimit-Policy` header shows it: gcra's and the windows'
 * `limit`, a token bucket's `capacity`, a custom RateLimiter's `capacity`.
 * Not what can pass at once (GCRA's burst): that is `policy.core.capacity`.
 * @internal
 *
 * @example
 * ```ts
 * configuredLimit(gcra({ limit: 5, period: '1s' })); // 5 (its burst, 1, is what passes at once)
 * ```
 */
export function configuredLimit(policy: Policy | RateLimiter): number {
  if (isCustomLimiter(policy)) return policy.capacity;
  const p = policy as Policy;
  return p.kind === 'tokenBucket' ? p.capacity : p.limit;
}
