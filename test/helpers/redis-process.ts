// Real redis-server processes on loopback for the tests: free ports chosen at
// run time, every wait bounded, every process killed when the tests end.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// One implementation of the port probe and PING for the tests and the cellgate command.
import { freePort, ping } from '../../bin/simulate/redis.mjs';

/** A running redis-server. */
export interface RedisServer {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly pid: number;
  /** Sends a signal (SIGKILL, SIGSTOP, SIGCONT, ...) to the server. */
  kill(signal: NodeJS.Signals): void;
  /** Starts it again on the same port (after a kill). */
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
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

let binaries: { server: string; cli: string } | undefined;

/**
 * Finds redis-server and redis-cli; installs Debian's redis-server package
 * when missing and running as root, otherwise says what to install.
 */
export function findRedis(): { server: string; cli: string } {
  if (binaries) return binaries;
  const find = (name: string) =>
    [...(process.env.PATH ?? '').split(':'), '/usr/bin', '/usr/local/bin', '/usr/sbin'].map((dir) => join(dir, name)).find((p) => existsSync(p));
  let server = find('redis-server');
  if (server === undefined && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) {
    execFileSync('apt-get', ['update'], { stdio: 'ignore', timeout: 300_000 });
    execFileSync('apt-get', ['install', '-y', 'redis-server'], { stdio: 'ignore', timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    server = find('redis-server');
  }
  const cli = find('redis-cli');
  if (server === undefined || cli === undefined) {
    throw new Error('redis-server and redis-cli are needed for these tests: apt-get install redis-server (Debian) or brew install redis');
  }
  binaries = { server, cli };
  return binaries;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

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
 * waits until it answers PING.
 *
 * @example
 * ```ts
 * const server = await startRedis();
 * const client = new Redis({ host: server.host, port: server.port });
 * await server.stop();
 * ```
 */
export async function startRedis(options: { cluster?: boolean } = {}): Promise<RedisServer> {
  const { server: bin } = findRedis();
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
    await until(`redis-server on port ${port}`, async () => {
      if (c.exitCode !== null) throw new Error(`redis-server exited with ${c.exitCode} on port ${port}`);
      return ping(port);
    }, 10_000);
  };
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (error) {
      if (attempt >= 3) throw error;
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
      }, 20_000);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes: servers.map((s) => ({ host: HOST, port: s.port })), servers, stop };
}
