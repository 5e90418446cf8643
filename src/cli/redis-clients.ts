// The Redis client `cellgate doctor` and `cellgate bench --redis` connect
// with: the user's own (ioredis, iovalkey or node-redis, looked up from the
// current folder first, then beside cellgate), so that what is checked and
// measured is the client the application runs. A standalone server or a
// Cluster is told apart by asking the server.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { withTimeout } from '../stores/redis/circuit-breaker.js';
import type { RedisStoreOptions } from '../stores/redis/redis-store.js';
import { UsageError } from './usage-error.js';

/** The client libraries, in the order they are looked for. */
export const LIBRARIES = ['ioredis', 'iovalkey', 'redis'] as const;
export type Library = (typeof LIBRARIES)[number];

/** A `redis://` or `rediss://` URL, checked, with what the clients need from it. */
export interface RedisUrl {
  /** As given. */
  url: string;
  /** Without its password, for messages. */
  shown: string;
  host: string;
  port: number;
  tls: boolean;
  /** The database index of the path (`/3`), 0 without one. */
  db: number;
  username?: string;
  password?: string;
}

/**
 * Checks `--redis`: `redis://[user:password@]host:port[/db]` or `rediss://`
 * (TLS). A wrong value is a usage error naming the flag.
 *
 * @example
 * ```ts
 * parseRedisUrl('redis://127.0.0.1:6379/2').db; // 2
 * ```
 */
export function parseRedisUrl(text: string | undefined, flag = '--redis'): RedisUrl {
  let parsed: URL | undefined;
  try {
    parsed = text === undefined ? undefined : new URL(text);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') || parsed.hostname === '') {
    throw new UsageError(`${flag} must be a URL such as redis://host:6379 (or rediss:// for TLS), got ${JSON.stringify(text)}`);
  }
  const path = parsed.pathname.replace(/^\/+|\/+$/g, '');
  if (path !== '' && !/^\d{1,5}$/.test(path)) throw new UsageError(`${flag}'s path must be a database index such as /0, got ${JSON.stringify(parsed.pathname)}`);
  // Rebuilt from its parts, never by searching the text: the password may be written percent-encoded or not.
  const credentials = parsed.password !== '' ? `${parsed.username}:***@` : parsed.username !== '' ? `${parsed.username}@` : '';
  const shown = `${parsed.protocol}//${credentials}${parsed.host}${path === '' ? '' : `/${path}`}`;
  return {
    url: text!,
    shown,
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: parsed.port === '' ? 6379 : Number(parsed.port),
    tls: parsed.protocol === 'rediss:',
    db: path === '' ? 0 : Number(path),
    ...(parsed.username !== '' ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password !== '' ? { password: decodeURIComponent(parsed.password) } : {}),
  };
}

/** A client library found: its name, version and module. */
interface Found {
  library: Library;
  version: string;
  module: Record<string, unknown>;
}

/**
 * Resolves `name` as the current folder's project would (and, with
 * `orOwn`, then beside cellgate), or undefined when it is not installed.
 *
 * @example
 * ```ts
 * resolveInProject('rate-limiter-flexible'); // its entry file, or undefined
 * ```
 */
export function resolveInProject(name: string, orOwn = false): string | undefined {
  const bases = [join(process.cwd(), 'package.json'), ...(orOwn ? [fileURLToPath(import.meta.url)] : [])];
  for (const base of bases) {
    try {
      return createRequire(base).resolve(name);
    } catch {
      // not installed there
    }
  }
  return undefined;
}

/** The version in the package.json above a resolved entry file. */
function versionOf(entry: string, library: string): string {
  let dir = dirname(entry);
  for (let i = 0; i < 6; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === library) return pkg.version ?? '?';
    } catch {
      // no package.json at this level
    }
  }
  return '?';
}

/**
 * The first client library installed (or `wanted`), or a usage error saying
 * what to install.
 *
 * @example
 * ```ts
 * const { library, version } = await findLibrary(); // e.g. 'ioredis', '5.4.1'
 * ```
 */
export async function findLibrary(wanted?: string): Promise<Found> {
  if (wanted !== undefined && !(LIBRARIES as readonly string[]).includes(wanted)) {
    throw new UsageError(`--client must be one of ${LIBRARIES.join(', ')}, got ${JSON.stringify(wanted)}`);
  }
  for (const library of wanted === undefined ? LIBRARIES : [wanted as Library]) {
    const entry = resolveInProject(library, true);
    if (entry === undefined) continue;
    const module = (await import(pathToFileURL(entry).href)) as Record<string, unknown>;
    return { library, version: versionOf(entry, library), module };
  }
  throw new UsageError(
    wanted === undefined
      ? `no Redis client found: install the one your application uses (npm install ioredis, or redis, or iovalkey) and run this again in its folder`
      : `--client ${wanted} is not installed here (npm install ${wanted})`,
  );
}

/** A connected client and what the commands need to know of it. */
export interface Connected {
  library: Library;
  version: string;
  cluster: boolean;
  /** The client as the store takes it. */
  client: RedisStoreOptions['client'];
  /** One function per master (the server itself when standalone) sending a command there, with its address. */
  masters(): Promise<{ address: string; command(args: string[]): Promise<unknown> }[]>;
  close(): Promise<void>;
}

type Ctor = new (...args: unknown[]) => Record<string, (...args: unknown[]) => unknown>;

/** A thing a connect step can fail on, as one line: the library's own error message. */
function failure(url: RedisUrl, library: string, error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  return new Error(`cannot connect to ${url.shown} with ${library}: ${message || (error as Error).name}`);
}

/**
 * Connects to `url` with the user's client library, as a Cluster client when
 * the server says it is in a cluster. Rejects with one clear line when the
 * server cannot be reached within `timeoutMs`.
 *
 * @example
 * ```ts
 * const redis = await connect(parseRedisUrl('redis://127.0.0.1:6379'), 2000);
 * new RedisStore({ client: redis.client });
 * ```
 */
export async function connect(url: RedisUrl, timeoutMs: number, wanted?: string): Promise<Connected> {
  const found = await findLibrary(wanted);
  const { library, version, module } = found;
  const named = (name: string) => (module[name] ?? (module.default as Record<string, unknown> | undefined)?.[name]) as unknown;
  try {
    if (library === 'redis') return await connectNodeRedis(url, timeoutMs, version, named);
    return await connectIoredis(url, timeoutMs, library, version, named);
  } catch (error) {
    throw failure(url, library, error);
  }
}

/** `p`, closing the client when it fails: a half-made connection (a frozen server) would keep the process alive. */
async function closingOnFailure<T>(p: Promise<T>, close: () => void): Promise<T> {
  try {
    return await p;
  } catch (error) {
    close();
    throw error;
  }
}

/**
 * Connects within `timeoutMs`; a failure is the client's last 'error' event
 * when it had one (ECONNREFUSED, a TLS or auth error), which says more than
 * the rejection ("Connection is closed").
 */
async function connected(client: { on?(event: string, listener: (error: unknown) => void): unknown }, start: () => Promise<unknown>, timeoutMs: number, close: () => void): Promise<void> {
  let last: unknown;
  client.on!('error', (error) => {
    last = error;
  });
  await closingOnFailure(withTimeout(start(), timeoutMs), close).catch((error: unknown) => {
    throw last ?? error;
  });
}

async function connectIoredis(url: RedisUrl, timeoutMs: number, library: Library, version: string, named: (name: string) => unknown): Promise<Connected> {
  const Redis = named('Redis') as Ctor;
  const Cluster = named('Cluster') as Ctor;
  // What every node's connection takes, standalone or in a Cluster.
  const node = {
    ...(url.username !== undefined ? { username: url.username } : {}),
    ...(url.password !== undefined ? { password: url.password } : {}),
    ...(url.tls ? { tls: {} } : {}),
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
  };
  // A diagnosis and a benchmark report a lost server; they do not wait for it.
  const first = new Redis({ host: url.host, port: url.port, ...node, db: url.db, retryStrategy: () => null, lazyConnect: true });
  await connected(first, () => first.connect!() as Promise<unknown>, timeoutMs, () => first.disconnect!());
  const info = String(await closingOnFailure(withTimeout(first.call!('INFO', 'cluster') as Promise<unknown>, timeoutMs), () => first.disconnect!()));
  if (!/cluster_enabled:1/.test(info)) {
    return {
      library,
      version,
      cluster: false,
      client: first as unknown as Connected['client'],
      masters: async () => [{ address: `${url.host}:${url.port}`, command: (args) => first.call!(...args) as Promise<unknown> }],
      close: async () => void first.disconnect!(),
    };
  }
  first.disconnect!();
  const cluster = new Cluster([{ host: url.host, port: url.port }], { redisOptions: node, clusterRetryStrategy: () => null, lazyConnect: true });
  await connected(cluster, () => cluster.connect!() as Promise<unknown>, timeoutMs, () => cluster.disconnect!());
  return {
    library,
    version,
    cluster: true,
    client: cluster as unknown as Connected['client'],
    masters: async () =>
      (cluster.nodes!('master') as { options: { host: string; port: number }; call(...args: string[]): Promise<unknown> }[]).map((node) => ({
        address: `${node.options.host}:${node.options.port}`,
        command: (args) => node.call(...args),
      })),
    close: async () => void cluster.disconnect!(),
  };
}

async function connectNodeRedis(url: RedisUrl, timeoutMs: number, version: string, named: (name: string) => unknown): Promise<Connected> {
  type Client = { connect(): Promise<unknown>; on(e: string, l: (error: unknown) => void): unknown; sendCommand(args: string[]): Promise<unknown>; destroy(): void };
  const createClient = named('createClient') as (options: object) => Client;
  const createCluster = named('createCluster') as (options: object) => Client & {
    masters: { host: string; port: number }[];
    nodeClient(node: unknown): Promise<Client>;
  };
  // From the parsed parts, not the URL: node-redis does not parse every URL (an IPv6 host in brackets).
  const socket = { host: url.host, port: url.port, ...(url.tls ? { tls: true } : {}), connectTimeout: timeoutMs, reconnectStrategy: false };
  const credentials = { ...(url.username !== undefined ? { username: url.username } : {}), ...(url.password !== undefined ? { password: url.password } : {}) };
  const first = createClient({ socket, ...credentials, database: url.db });
  await connected(first, () => first.connect(), timeoutMs, () => first.destroy());
  const info = String(await closingOnFailure(withTimeout(first.sendCommand(['INFO', 'cluster']), timeoutMs), () => first.destroy()));
  if (!/cluster_enabled:1/.test(info)) {
    return {
      library: 'redis',
      version,
      cluster: false,
      client: first as unknown as Connected['client'],
      masters: async () => [{ address: `${url.host}:${url.port}`, command: (args) => first.sendCommand(args) }],
      close: async () => first.destroy(),
    };
  }
  first.destroy();
  // The defaults apply to every node found: no host or port among them.
  const { host: _host, port: _port, ...nodeSocket } = socket;
  const cluster = createCluster({ rootNodes: [{ socket: { host: url.host, port: url.port } }], defaults: { socket: nodeSocket, ...credentials } });
  await connected(cluster, () => cluster.connect(), timeoutMs, () => cluster.destroy());
  return {
    library: 'redis',
    version,
    cluster: true,
    client: cluster as unknown as Connected['client'],
    masters: async () =>
      Promise.all(
        cluster.masters.map(async (master) => {
          const node = await cluster.nodeClient(master);
          return { address: `${master.host}:${master.port}`, command: (args: string[]) => node.sendCommand(args) };
        }),
      ),
    close: async () => cluster.destroy(),
  };
}
