/**
 * The part of an ioredis client (`Redis` or `Cluster`) the store uses:
 * `defineCommand`, which registers a script so that ioredis sends EVALSHA and
 * falls back to EVAL on NOSCRIPT by itself. Any client with the same contract
 * works.
 */
export interface RedisClient {
  defineCommand(name: string, definition: { numberOfKeys: number; lua: string }): void;
}

/** Name under which the decide script is registered on the client. */
export const DECIDE_COMMAND = 'cellgateDecide';
