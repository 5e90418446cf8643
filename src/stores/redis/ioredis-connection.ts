// ioredis and iovalkey (its fork, with the same API): scripts go through
// `defineCommand`, so the client itself sends EVALSHA, falls back to EVAL on
// NOSCRIPT, and routes by key on a Cluster; the `<name>Buffer` variant it
// defines beside each script answers bulk strings as Buffers.
import type { ConnectionState, RedisConnection, RedisScript } from './connection.js';
import { CAS_SCRIPT, DECIDE_SCRIPT, FLEET_SCRIPT } from './scripts.js';

/**
 * The part of an ioredis or iovalkey client (`Redis` or `Cluster`) the store
 * uses: `defineCommand` to register its scripts, `call` for `cellgate
 * doctor`, `status` to tell whether it is up, `isCluster` to tell a Cluster
 * from a single server, `on` for its `'ready'` and `'error'` events.
 */
export interface RedisClient {
  defineCommand(name: string, definition: { numberOfKeys: number; lua: string }): void;
  /** ioredis's connection state (`'wait'`, `'connecting'`, `'connect'`, `'ready'`, `'reconnecting'`, `'close'`, `'end'`). */
  readonly status?: string;
  /** `true` on an ioredis `Cluster`. */
  readonly isCluster?: boolean;
}

/** ioredis's states as the store acts on them; a client that reports none counts as ready. */
const STATES: Readonly<Record<string, ConnectionState>> = {
  wait: 'idle',
  connecting: 'connecting',
  connect: 'ready',
  ready: 'ready',
  reconnecting: 'down',
  disconnecting: 'down',
  close: 'down',
  end: 'down',
};

/** Whether `client` looks like an ioredis or iovalkey `Redis` or `Cluster`. @internal */
export function isIoredisLike(client: object): client is RedisClient {
  return typeof (client as Partial<RedisClient>).defineCommand === 'function';
}

type Commands = Record<string, ((...args: unknown[]) => Promise<unknown>) | undefined>;

/**
 * The {@link RedisConnection} of an ioredis or iovalkey client. @internal
 *
 * @example
 * ```ts
 * const connection = ioredisConnection(new Redis(6379));
 * await connection.evalScript(script, 'rl:{0}', []);
 * ```
 */
export function ioredisConnection(client: RedisClient): RedisConnection {
  const commands = client as unknown as Commands;
  const events = client as unknown as { on?: (event: string, listener: (error?: unknown) => void) => unknown; off?: (event: string, listener: (error?: unknown) => void) => unknown };
  // The store's scripts are registered now, as ioredis users expect of a
  // library (and as tests that wrap a command rely on); others at first use.
  for (const script of [DECIDE_SCRIPT, CAS_SCRIPT, FLEET_SCRIPT]) define(client, script);
  return {
    cluster: client.isCluster === true,
    get state(): ConnectionState {
      const status = client.status;
      return status === undefined ? 'ready' : (STATES[status] ?? 'ready');
    },
    target: describeTarget(client),
    async evalScript(script: RedisScript, key: string | Uint8Array, args: readonly (string | Uint8Array)[]): Promise<unknown> {
      // Registered at the first call, looked up at each (not kept): a test
      // may wrap the command on the client, or another store registered it.
      const name = define(client, script);
      const command = commands[name];
      if (typeof command !== 'function') throw new TypeError(`cellgate: the client's defineCommand did not define ${name}`);
      return command.call(client, key, ...args);
    },
    command(args: readonly string[]): Promise<unknown> {
      return commands.call!.call(client, ...args);
    },
    on(event: 'ready' | 'error', listener: (error?: unknown) => void): () => void {
      events.on?.call(client, event, listener);
      return () => void events.off?.call(client, event, listener);
    },
  };
}

/** Registers `script` on the client unless it is (by this store or another); returns the name of its Buffer variant. */
function define(client: RedisClient, script: RedisScript): string {
  const name = `${script.name}Buffer`;
  if (typeof (client as unknown as Commands)[name] !== 'function') client.defineCommand(script.name, { numberOfKeys: 1, lua: script.lua });
  return name;
}

/**
 * `host:port` of an ioredis-like client (or a Cluster's startup nodes), or
 * `'Redis'` when it does not say.
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
