export { RedisStore, type RedisStoreOptions } from './redis-store.js';
export { DECIDE_COMMAND, type RedisClient } from './redis-client.js';
export { RedisBinding } from './redis-binding.js';
