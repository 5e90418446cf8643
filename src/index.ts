export { Limiter, MAX_GATES, type LimiterOptions, type LimitOptions, type ReserveOptions, type AcquireOptions } from './limiter.js';
export { EmbeddedStore, EmbeddedBinding, MAX_KEYS, MAX_POLICIES, type EmbeddedStoreOptions, type EmbeddedStoreStats } from './embedded-store.js';
export type { Store, StoreBinding } from './store.js';
export type { Decision, DecisionSource, Reservation } from './decision.js';
export { ConfigError, ArgumentError, AcquireTimeoutError } from './errors.js';
export { parseDuration, MAX_DURATION_MS, type Duration } from './duration.js';
export { systemClock, taskClock, type Clock } from './clock.js';
export { MAX_KEY_LENGTH } from './key-hash.js';
export * from './policies/index.js';
