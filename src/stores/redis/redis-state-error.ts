/**
 * The rejection of a call whose key, in Redis, holds something that is not
 * this library's state (a value another program wrote under the store's
 * prefix). The foreign value is left alone and nothing is admitted for the
 * key; other keys of the same batch are decided as usual.
 *
 * @example
 * ```ts
 * await limiter.limit('k').catch((e) => { if (e instanceof RedisStateError) console.log(e.key); });
 * ```
 */
export class RedisStateError extends Error {
  override readonly name = 'RedisStateError';
  /** The user's key. */
  readonly key: string;

  constructor(shardKey: string, key: string) {
    super(`Redis key ${shardKey}:${key}|... holds a value that is not cellgate state; nothing is admitted for ${JSON.stringify(key)}`);
    this.key = key;
  }
}
