// The package as users get it: `npm pack`'s tarball installed into an empty
// project (offline: it has no dependencies), with the user's Redis client
// beside it, runs `cellgate doctor` and `cellgate bench --redis` against a
// local redis-server, without the repository or its devDependencies.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../build/lib/src/cli/redis-server.js';
import type { DoctorReport } from '../build/lib/src/cli/doctor.js';
import type { RedisBenchReport } from '../build/lib/src/cli/bench-redis.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function exec(command: string, args: string[], cwd: string, timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  // No inherited npm_* settings of the npm running the tests (npm test): the consumer's npm is a fresh one.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

let server: RedisServer;
let project: string;
let install: { code: number; stdout: string; stderr: string };
const cellgate = (args: string[]) => exec(process.execPath, [join(project, 'node_modules', 'cellgate', 'bin', 'cellgate.mjs'), ...args], project);

beforeAll(async () => {
  server = await startRedis();
  project = mkdtempSync(join(tmpdir(), 'cellgate-pack-test-'));
  // npm test has built the package: pack what is there, without building again.
  const pack = await exec(NPM, ['pack', '--ignore-scripts', '--pack-destination', project, '--json'], ROOT);
  expect(pack.code, pack.stderr).toBe(0);
  const [{ filename }] = JSON.parse(pack.stdout) as [{ filename: string }];
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  install = await exec(NPM, ['install', '--offline', '--no-audit', '--no-fund', `./${filename}`], project);
  expect(install.code, install.stderr).toBe(0);
  // The application's own Redis clients, as if installed beside cellgate (their dependencies resolve from the repository).
  for (const client of ['ioredis', 'redis']) symlinkSync(join(ROOT, 'node_modules', client), join(project, 'node_modules', client), 'dir');
}, 180_000);

afterAll(async () => {
  await server?.stop();
  if (project !== undefined) rmSync(project, { recursive: true, force: true });
});

describe('the packed tarball, installed into an empty project', () => {
  it("cellgate doctor checks the local Redis with the project's client (ioredis, then node-redis)", async () => {
    for (const client of ['ioredis', 'redis']) {
      const { code, stdout, stderr } = await cellgate(['doctor', '--redis', server.url, '--json', '--client', client]);
      expect(stderr).toBe('');
      expect(code).toBe(0);
      const report = JSON.parse(stdout) as DoctorReport;
      expect(report.client).toMatch(new RegExp(`^${client} \\d`));
      expect(report.problems).toBe(0);
      expect(report.checks.find((c) => c.name === 'scripts')?.status).toBe('ok');
    }
  }, 60_000);

  it('cellgate bench --redis measures the stores there; the peer not installed is shown as such', async () => {
    const { code, stdout, stderr } = await cellgate(['bench', '--redis', server.url, '--quick', '--json']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as RedisBenchReport;
    const strict = report.rows.filter((r) => r.contender === 'cellgate RedisStore (strict)');
    expect(strict).toHaveLength(3);
    for (const r of strict) expect(r.result!.decisions).toBeGreaterThan(0);
    const peer = report.rows.filter((r) => r.contender === 'rate-limiter-flexible RateLimiterRedis');
    expect(peer.map((r) => r.missing)).toEqual(Array(3).fill('not installed here (npm install rate-limiter-flexible to compare)'));
    expect(report.rows.filter((r) => r.contender.startsWith('cellgate leased')).every((r) => r.result!.decisions > 0)).toBe(true);
  }, 120_000);

  it('cellgate bench without --redis says what it needs, exit 2', async () => {
    const { code, stdout, stderr } = await cellgate(['bench']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('cellgate bench --redis redis://host:6379');
  });

  it('cellgate with no client installed says which to install, exit 2 (run last: it removes the clients)', async () => {
    for (const client of ['ioredis', 'redis']) unlinkSync(join(project, 'node_modules', client));
    const { code, stdout, stderr } = await cellgate(['doctor', '--redis', server.url]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^cellgate: no Redis client found: install the one your application uses \(npm install ioredis, or redis, or iovalkey\)/);
  });
});
