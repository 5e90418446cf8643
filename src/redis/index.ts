export { RedisStore, type RedisStoreOptions, type RedisStoreStats } from './redis-store.js';
export { DECIDE_COMMAND, type RedisClient } from './redis-client.js';
export { RedisBinding } from './redis-binding.js';
export { CircuitBreaker, RedisTimeoutError, type BreakerCloseDetail, type BreakerOpenDetail, type BreakerState } from './circuit-breaker.js';
export { scaleGates, type FallbackOption } from './fallback.js';
export type { SourceCounts } from './redis-binding.js';
export { RedisStateError } from './redis-state-error.js';
export { LeasedBinding, type LeaseOptions } from './leased-binding.js';
