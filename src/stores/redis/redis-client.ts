/**
 * The part of an ioredis client (`Redis` or `Cluster`) the store uses:
 * `defineCommand`, which registers a script so that ioredis sends EVALSHA and
 * falls back to EVAL on NOSCRIPT by itself; `status` to tell whether it is
 * up; `isCluster` to tell a Cluster (whose masters fail one by one) from a
 * single server. Any client with the same contract works.
 */
export interface RedisClient {
  defineCommand(name: string, definition: { numberOfKeys: number; lua: string }): void;
  /** ioredis's connection state: anything but `'ready'` counts as down, without sending. */
  readonly status?: string;
  /** `true` on an ioredis `Cluster`. */
  readonly isCluster?: boolean;
}

/** Name under which the decide script is registered on the client. */
export const DECIDE_COMMAND = 'cellgateDecide';

/** Name under which the compare-and-set script of custom limiters is registered. */
export const CAS_COMMAND = 'cellgateCas';

/** Name under which the fleet heartbeat script (fleet.lua) is registered. */
export const FLEET_COMMAND = 'cellgateFleet';

/**
 * Whether a store is closed, shared by its bindings (calls then reject with StoreClosedError).
 * @internal
 *
 * @example
 * ```ts
 * if (this.#o.lifecycle.closed) throw new StoreClosedError();
 * ```
 */
export interface Lifecycle {
  closed: boolean;
}

/**
 * `host:port` of an ioredis-like client (or a Cluster's startup nodes), or `'Redis'` when it does not say.
 * @internal
 *
 * @example
 * ```ts
 * describeTarget(new Redis(6380)); // 'localhost:6380'
 * ```
 */
export function describeTarget(client: unknown): string {
  const c = client as { options?: { host?: string; port?: number; path?: string }; startupNodes?: { host?: string; port?: number }[] };
  if (Array.isArray(c.startupNodes)) return c.startupNodes.map((n) => `${n.host ?? 'localhost'}:${n.port ?? 6379}`).join(',');
  if (c.options?.path) return c.options.path;
  if (c.options !== undefined) return `${c.options.host ?? 'localhost'}:${c.options.port ?? 6379}`;
  return 'Redis';
}
