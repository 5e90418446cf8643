/**
 * The rejection of a call on a `RedisStore` after `close()`: its probes,
 * batches and reconciliation have stopped, so it would decide nothing
 * faithfully. Close a store when its process is done with it, after its last
 * call.
 *
 * @example
 * ```ts
 * await store.close();
 * await limiter.limit('k').catch((e) => { if (e instanceof StoreClosedError) console.log('closed'); });
 * ```
 */
export class StoreClosedError extends Error {
  override readonly name = 'StoreClosedError';
  constructor() {
    super('the RedisStore is closed');
  }
}

/** Whether a store is closed, shared by its bindings. @internal */
export interface Lifecycle {
  closed: boolean;
}
