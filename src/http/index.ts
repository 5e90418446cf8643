export { rateLimit, type RateLimitOptions } from './fetch.js';
export { nodeRateLimit, fastifyRateLimit, type NodeRateLimitOptions } from './node.js';
export { rateLimitHeaders, type HeaderStyle } from './headers.js';
export { clientAddress, type ForwardedHeader, type TrustProxy } from './client-address.js';
export { canonicalIp, ipKey } from './ip.js';
export { keyDigest } from './sha256.js';
export type { CommonOptions } from './options.js';
export { limitedFetch, parseRetryAfter, parseQuotaHeaders, type FetchFunction, type LimitedFetchOptions, type UpstreamQuota } from './limited-fetch.js';
export { AdaptivePacer, DEFAULT_PACING, type AdaptivePacerOptions, type PaceStats } from './adaptive.js';
