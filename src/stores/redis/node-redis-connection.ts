// node-redis (the `redis` package, v5 and later): `createClient` and
// `createCluster`. Scripts go out as raw EVALSHA through `sendCommand` (a
// script defined with `defineScript` must be given when the client is
// created, and the store gets a client already made), with EVAL on NOSCRIPT;
// on a Cluster, `sendCommand`'s first key routes the call. Bulk strings come
// back as Buffers through the per-call type mapping.
import type { ConnectionState, RedisConnection, RedisScript } from './connection.js';

type Argument = string | Uint8Array;

/** The part of a node-redis client (`createClient`) the store uses. */
export interface NodeRedisClient {
  sendCommand(args: readonly Argument[], options?: object): Promise<unknown>;
  readonly isOpen: boolean;
  readonly isReady: boolean;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** The part of a node-redis cluster (`createCluster`) the store uses. */
export interface NodeRedisCluster {
  sendCommand(firstKey: Argument | undefined, isReadonly: boolean | undefined, args: readonly Argument[], options?: object): Promise<unknown>;
  readonly isOpen: boolean;
  /** Since node-redis 6; a v5 cluster counts as ready while open. */
  readonly isReady?: boolean;
  readonly masters: readonly unknown[];
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** node-redis's RESP type code of a blob (bulk) string, `RESP_TYPES.BLOB_STRING`. */
const BLOB_STRING = 36;

/** Whether `client` looks like a node-redis client or cluster. @internal */
export function isNodeRedisLike(client: object): client is NodeRedisClient | NodeRedisCluster {
  const c = client as Partial<NodeRedisClient>;
  return typeof c.sendCommand === 'function' && typeof c.on === 'function' && 'isOpen' in c;
}

function isCluster(client: NodeRedisClient | NodeRedisCluster): client is NodeRedisCluster {
  return 'masters' in client && typeof (client as { nodeClient?: unknown }).nodeClient === 'function';
}

/**
 * The {@link RedisConnection} of a node-redis client or cluster. @internal
 *
 * @example
 * ```ts
 * const connection = nodeRedisConnection(await createClient({ url }).connect());
 * connection.state; // 'ready'
 * ```
 */
export function nodeRedisConnection(client: NodeRedisClient | NodeRedisCluster): RedisConnection {
  const cluster = isCluster(client);
  // The command option that maps bulk strings to Buffers: node-redis's
  // default, strings, would mangle packed doubles. (Made here, not at import:
  // a runtime without a global Buffer may load the module and never use it.)
  const AS_BUFFERS = { typeMapping: { [BLOB_STRING]: Buffer } };
  const send: (key: Argument | undefined, args: readonly Argument[], options?: object) => Promise<unknown> = cluster
    ? (key, args, options) => client.sendCommand(key, false, args, options)
    : (_key, args, options) => (client as NodeRedisClient).sendCommand(args, options);
  // Whether it has been ready once: not ready then means lost (down), not
  // yet made (connecting). Learned from the events the store subscribes to
  // (adapting a client subscribes to nothing: a store refused for a bad
  // option leaves no listener behind).
  const isReady = cluster && client.isReady === undefined ? () => client.isOpen : () => client.isReady === true;
  let wasReady = isReady();
  return {
    cluster,
    get state(): ConnectionState {
      if (isReady()) return 'ready';
      if (wasReady) return 'down';
      return client.isOpen ? 'connecting' : 'idle';
    },
    target: describeNodeRedis(client),
    async evalScript(script: RedisScript, key: string | Uint8Array, args: readonly (string | Uint8Array)[]): Promise<unknown> {
      try {
        return await send(key, ['EVALSHA', script.sha, '1', key, ...args], AS_BUFFERS);
      } catch (error) {
        // A server that has not seen the script (new, restarted, flushed, a promoted replica): EVAL caches it there.
        if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw error;
        return send(key, ['EVAL', script.lua, '1', key, ...args], AS_BUFFERS);
      }
    },
    command(args: readonly string[]): Promise<unknown> {
      return send(undefined, args);
    },
    on(event: 'ready' | 'error', listener: (error?: unknown) => void): () => void {
      const subscribed: [string, (...args: unknown[]) => void][] = [];
      const on = (name: string, l: (...args: unknown[]) => void) => {
        client.on(name, l);
        subscribed.push([name, l]);
      };
      if (event === 'error') on('error', listener);
      else {
        const ready = () => {
          wasReady = true;
          listener();
        };
        // A cluster is ready when its slots are known ('connect'), and a node again when it reconnects.
        if (cluster) {
          on('connect', ready);
          on('node-ready', () => listener());
        } else on('ready', ready);
      }
      return () => {
        for (const [name, l] of subscribed) client.off(name, l);
      };
    },
  };
}

/** `host:port` (or the URL) of a node-redis client, or its cluster's root nodes. */
function describeNodeRedis(client: object): string {
  type Node = { url?: string; socket?: { host?: string; port?: number; path?: string } };
  const options = (client as { options?: Node & { rootNodes?: Node[] } }).options;
  // A URL without its credentials: the target goes into error messages.
  const one = (n: Node | undefined) => n?.url?.replace(/\/\/[^@/]*@/, '//') ?? (n?.socket?.path !== undefined ? n.socket.path : `${n?.socket?.host ?? 'localhost'}:${n?.socket?.port ?? 6379}`);
  if (Array.isArray(options?.rootNodes)) return options.rootNodes.map(one).join(',');
  return options === undefined ? 'Redis' : one(options);
}
