// The one narrow interface between the Redis store and a Redis client. The
// store runs its Lua scripts, asks for the connection's state and listens
// to two events; each supported client library is adapted to that in its own
// file (ioredis-connection.ts, node-redis-connection.ts), and anything else
// can be adapted by implementing `RedisConnection` in a few lines.
import { ConfigError } from '../../errors.js';
import { ioredisConnection, isIoredisLike } from './ioredis-connection.js';
import { isNodeRedisLike, nodeRedisConnection } from './node-redis-connection.js';

/**
 * A Lua script as the store sends it: the name ioredis registers it under,
 * its text and its SHA-1 (what EVALSHA names it by; computed at build time).
 */
export interface RedisScript {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
}

/**
 * The state of a connection, as the store acts on it:
 * - `'ready'`: commands are answered;
 * - `'connecting'`: a first connection is being made, commands wait for it
 *   (they get the store's `connectTimeoutMs`);
 * - `'idle'`: not connected nor connecting (a lazy client its owner has not
 *   connected): the store sends no heartbeat, calls fall back;
 * - `'down'`: the connection was lost (reconnecting, closed): calls fall back
 *   without being sent.
 */
export type ConnectionState = 'ready' | 'connecting' | 'idle' | 'down';

/**
 * What `RedisStore` needs from a Redis client. ioredis (`Redis`, `Cluster`),
 * iovalkey and node-redis (`createClient`, `createCluster`, v5 and later)
 * are adapted to it by the store itself; implement it to use another client.
 *
 * @example
 * ```ts
 * // A client with a `send(args)` that resolves with Buffers for bulk strings:
 * const connection: RedisConnection = {
 *   cluster: false,
 *   get state() { return client.connected ? 'ready' : 'down'; },
 *   target: 'localhost:6379',
 *   async evalScript(script, key, args) {
 *     try {
 *       return await client.send(['EVALSHA', script.sha, '1', key, ...args]);
 *     } catch (error) {
 *       if (!String(error).includes('NOSCRIPT')) throw error;
 *       return client.send(['EVAL', script.lua, '1', key, ...args]);
 *     }
 *   },
 *   command: (args) => client.send(args),
 *   on: (event, listener) => {
 *     client.on(event, listener);
 *     return () => client.off(event, listener);
 *   },
 * };
 * new RedisStore({ client: connection });
 * ```
 */
export interface RedisConnection {
  /**
   * Runs `script` with one key, on the node that serves the key on a
   * Cluster: EVALSHA `script.sha`, and EVAL `script.lua` when Redis answers
   * NOSCRIPT. Resolves with the reply, bulk strings as bytes (a Buffer or
   * Uint8Array), integers as numbers, arrays as arrays; rejects with the
   * error reply (its message as Redis sent it) or the connection's failure.
   */
  evalScript(script: RedisScript, key: string | Uint8Array, args: readonly (string | Uint8Array)[]): Promise<unknown>;
  /**
   * Sends any command to the server (on a Cluster: to any node). Replies as
   * the client gives them. For `cellgate doctor`; the store does not use it.
   */
  command(args: readonly string[]): Promise<unknown>;
  /** The connection's state now; read before each send, so keep it cheap. */
  readonly state: ConnectionState;
  /** Whether this is a Redis Cluster: its masters fail one by one, so the store keeps a breaker state per virtual shard. */
  readonly cluster: boolean;
  /** `host:port` (or the Cluster's startup nodes), for error messages. */
  readonly target: string;
  /**
   * Subscribes to `'ready'` (connected, or reconnected: the store probes at
   * once) and `'error'` (a connection error: the store falls back; listening
   * also keeps Node from throwing an unhandled `'error'` event). May return
   * a function that unsubscribes: the store calls it when it is closed, so
   * that stores made and closed on one client leave no listener behind.
   */
  on(event: 'ready' | 'error', listener: (error?: unknown) => void): void | (() => void);
}

/** Whether `value` already is a {@link RedisConnection} (not a client to adapt). */
function isConnection(value: object): value is RedisConnection {
  const c = value as Partial<RedisConnection>;
  return typeof c.evalScript === 'function' && typeof c.command === 'function' && typeof c.on === 'function' && 'state' in c;
}

/**
 * Adapts a client to the {@link RedisConnection} the store uses: an ioredis
 * or iovalkey `Redis`/`Cluster`, a node-redis client or cluster, or a
 * `RedisConnection` as it is. Throws `ConfigError` naming `parameter` for
 * anything else.
 * @internal
 *
 * @example
 * ```ts
 * const connection = toConnection(createClient({ url }), 'client');
 * connection.state; // 'idle' until the owner calls connect()
 * ```
 */
export function toConnection(client: unknown, parameter = 'client'): RedisConnection {
  if (typeof client === 'object' && client !== null) {
    if (isConnection(client)) return client;
    if (isIoredisLike(client)) return ioredisConnection(client);
    if (isNodeRedisLike(client)) return nodeRedisConnection(client);
  }
  throw new ConfigError(parameter, client, 'an ioredis or iovalkey Redis or Cluster, a node-redis client or cluster (v5 or later), or a RedisConnection');
}

/**
 * The text of a bulk-string reply (a Buffer, a Uint8Array or already a
 * string, as clients differ). @internal
 *
 * @example
 * ```ts
 * replyText(Buffer.from('ok')); // 'ok'
 * ```
 */
export function replyText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return decoder.decode(value);
  return String(value);
}

const decoder = new TextDecoder();
