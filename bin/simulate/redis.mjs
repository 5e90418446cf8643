// A throwaway redis-server on a free loopback port for `cellgate simulate`
// (the same approach as test/helpers/redis-process.ts, in plain JS so that the
// command runs without a TypeScript loader). No persistence; killed on exit.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const HOST = '127.0.0.1';

/** The path of redis-server, or undefined when it is not installed. */
export function findRedisServer() {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/bin', '/usr/local/bin', '/usr/sbin', '/opt/homebrew/bin'];
  return dirs.map((dir) => join(dir, 'redis-server')).find((p) => existsSync(p));
}

/** A free TCP port on loopback, chosen by the OS. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** PING over a raw socket; resolves true on +PONG. */
export function ping(port) {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, HOST, () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

/** Starts redis-server on `port` and waits until it answers PING (at most 10 s); undefined if it did not. */
async function launch(bin, port, dir) {
  const child = spawn(bin, ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
  const kill = () => child.kill('SIGKILL');
  process.on('exit', kill);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && child.exitCode === null) {
    if (await ping(port)) return { child, kill };
    await new Promise((r) => setTimeout(r, 20));
  }
  kill();
  process.off('exit', kill);
  return undefined;
}

/** Resolves when `child` has exited (SIGKILL after `timeoutMs`). */
function exited(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Starts redis-server (the binary at `bin`) on a free port and waits until it
 * answers PING (at most 10 s). Resolves with { host, port, kill(signal),
 * restart(), stop() }: restart() starts it again on the same port after a kill
 * (as test/helpers/redis-process.ts does) and resolves once it answers PING.
 */
export async function startRedisServer(bin) {
  const dir = mkdtempSync(join(tmpdir(), 'cellgate-sim-redis-'));
  let port;
  let current;
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    current = await launch(bin, port, dir);
    if (current !== undefined) break;
    if (attempt >= 3) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`redis-server did not answer PING on port ${port}`);
    }
  }
  return {
    host: HOST,
    port,
    /** Sends a signal (SIGKILL for an outage) to the server. */
    kill(signal) {
      current?.child.kill(signal);
    },
    async restart() {
      if (current !== undefined) {
        await exited(current.child, 2000);
        process.off('exit', current.kill);
      }
      current = await launch(bin, port, dir);
      if (current === undefined) throw new Error(`redis-server did not come back on port ${port}`);
    },
    async stop() {
      if (current !== undefined) {
        const { child, kill } = current;
        process.off('exit', kill);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          await exited(child, 3000);
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
