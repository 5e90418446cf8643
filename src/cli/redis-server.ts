// Throwaway redis-server processes on loopback: free ports chosen at run time,
// no persistence, every wait bounded, every process killed when this process
// exits. The one implementation behind `cellgate simulate` (which ships, so it
// lives here) and the tests and benchmarks. Not exported from the package's
// entry points.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A running redis-server. */
export interface RedisServer {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly pid: number;
  /** Sends a signal (SIGKILL, SIGSTOP, SIGCONT, ...) to the server. */
  kill(signal: NodeJS.Signals): void;
  /** Starts it again on the same port (after a kill); resolves once it answers PING. */
  restart(): Promise<void>;
  /** Stops it and removes its directory. */
  stop(): Promise<void>;
}

/** A running Redis Cluster of masters only. */
export interface RedisCluster {
  readonly nodes: { host: string; port: number }[];
  readonly servers: RedisServer[];
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const live = new Set<ChildProcess>();
// A server must not outlive a crashed or interrupted run (a test, a benchmark, the command).
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** The path of a Redis program on PATH or in the usual places, or undefined. */
function findProgram(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/bin', '/usr/local/bin', '/usr/sbin', '/opt/homebrew/bin'];
  return dirs.map((dir) => join(dir, name)).find((p) => existsSync(p));
}

/** The path of redis-server, or undefined when it is not installed. */
export function findRedisServer(): string | undefined {
  return findProgram('redis-server');
}

let binaries: { server: string; cli: string } | undefined;

/**
 * Finds redis-server and redis-cli for the tests, benchmarks and simulator,
 * or throws saying what to install. Nothing is installed from here: CI
 * installs Debian's package (.ci/run), a user their own.
 */
export function findRedis(): { server: string; cli: string } {
  if (binaries) return binaries;
  const server = findProgram('redis-server');
  const cli = findProgram('redis-cli');
  if (server === undefined || cli === undefined) {
    throw new Error('redis-server and redis-cli are needed: apt-get install redis-server (Debian) or brew install redis');
  }
  binaries = { server, cli };
  return binaries;
}

/** A free TCP port on loopback, chosen by the OS. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** PING over a raw socket; resolves true on +PONG. */
export function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, HOST, () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number, intervalMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Resolves when `child` has exited (SIGKILL after `timeoutMs`). */
function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Starts a redis-server on a free loopback port, with no persistence, and
 * waits until it answers PING (at most 10 s, up to 4 ports tried).
 *
 * @param options.cluster - start it cluster-enabled (see {@link startRedisCluster})
 * @param options.bin - the redis-server to run; by default {@link findRedis}'s,
 *   which may install it
 *
 * @example
 * ```ts
 * const server = await startRedis();
 * const client = new Redis({ host: server.host, port: server.port });
 * await server.stop();
 * ```
 */
export async function startRedis(options: { cluster?: boolean; bin?: string } = {}): Promise<RedisServer> {
  const bin = options.bin ?? findRedis().server;
  const dir = mkdtempSync(join(tmpdir(), 'cellgate-redis-'));
  let port = 0;
  let child: ChildProcess | undefined;
  const launch = async () => {
    const args = ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', '--loglevel', 'warning'];
    if (options.cluster) args.push('--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000', '--cluster-require-full-coverage', 'no');
    const c = spawn(bin, args, { stdio: 'ignore' });
    live.add(c);
    c.once('exit', () => live.delete(c));
    child = c;
    try {
      // PING every 20 ms: the redis-outage scenario takes the moment this resolves as the moment Redis was back.
      await until(`redis-server on port ${port}`, async () => {
        if (c.exitCode !== null) throw new Error(`redis-server exited with ${c.exitCode} on port ${port}`);
        return ping(port);
      }, 10_000, 20);
    } catch (error) {
      c.kill('SIGKILL');
      throw error;
    }
  };
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (error) {
      if (attempt >= 3) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  return {
    host: HOST,
    port,
    url: `redis://${HOST}:${port}`,
    get pid() {
      return child!.pid!;
    },
    kill(signal) {
      child!.kill(signal);
    },
    async restart() {
      await exited(child!, 2000);
      await launch();
    },
    async stop() {
      const c = child!;
      // A stopped (SIGSTOP) server would not act on SIGTERM.
      c.kill('SIGCONT');
      c.kill('SIGTERM');
      await exited(c, 3000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts `masters` cluster-enabled servers, joins them with
 * `redis-cli --cluster create`, and waits for cluster_state:ok on each.
 *
 * @example
 * ```ts
 * const cluster = await startRedisCluster({ masters: 3 });
 * const client = new Cluster(cluster.nodes);
 * ```
 */
export async function startRedisCluster({ masters = 3 } = {}): Promise<RedisCluster> {
  const { cli } = findRedis();
  const servers = await Promise.all(Array.from({ length: masters }, () => startRedis({ cluster: true })));
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  try {
    execFileSync(cli, ['--cluster', 'create', ...servers.map((s) => `${HOST}:${s.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
      stdio: 'ignore',
      timeout: 30_000,
    });
    for (const s of servers) {
      await until(`cluster_state:ok on ${s.port}`, async () => {
        const info = execFileSync(cli, ['-h', HOST, '-p', String(s.port), 'cluster', 'info'], { timeout: 5000 }).toString();
        return info.includes('cluster_state:ok');
      }, 20_000, 50);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes: servers.map((s) => ({ host: HOST, port: s.port })), servers, stop };
}
