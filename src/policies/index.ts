import type { GcraPolicy } from './gcra.js';
import type { TokenBucketPolicy } from './token-bucket.js';
import type { FixedWindowPolicy } from './fixed-window.js';
import type { LinearWindowPolicy } from './linear-window.js';
import type { SlidingWindowPolicy } from './sliding-window.js';
import type { ConcurrencyPolicy } from './concurrency.js';

export { gcra, type GcraOptions, type GcraPolicy } from './gcra.js';
export { tokenBucket, type TokenBucketOptions, type TokenBucketPolicy } from './token-bucket.js';
export { fixedWindow, type FixedWindowOptions, type FixedWindowPolicy } from './fixed-window.js';
export { linearWindow, type LinearWindowOptions, type LinearWindowPolicy } from './linear-window.js';
export { slidingWindow, type SlidingWindowOptions, type SlidingWindowPolicy } from './sliding-window.js';
export { concurrency, MIN_LEASE_MS, MAX_LEASE_MS, DEFAULT_LEASE_MS, type ConcurrencyOptions, type ConcurrencyPolicy } from './concurrency.js';
export { MAX_COUNT, MIN_INTERVAL_MS } from './policy.js';

/** Any built-in policy. */
export type Policy = GcraPolicy | TokenBucketPolicy | FixedWindowPolicy | LinearWindowPolicy | SlidingWindowPolicy | ConcurrencyPolicy;
