export { RedisStore, type RedisStoreOptions, type RedisStoreStats } from './redis-store.js';
export type { RedisClient } from './ioredis-connection.js';
export type { NodeRedisClient, NodeRedisCluster } from './node-redis-connection.js';
export type { ConnectionState, RedisConnection, RedisScript } from './connection.js';
export { TIMEOUTS_TO_OPEN, type CircuitBreaker, type BreakerCloseDetail, type BreakerOpenDetail, type BreakerState } from './circuit-breaker.js';
export type { FallbackOption } from './fallback.js';
export type { SourceCounts } from './redis-binding.js';
export type { LeaseOptions } from './leased-binding.js';
export { RedisContentionError, RedisStateError, RedisTimeoutError, RedisUnavailableError, StoreClosedError } from '../../errors.js';
