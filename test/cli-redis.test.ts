// `cellgate doctor` and `cellgate bench --redis` against real redis-server
// processes (standalone and a 3-master Cluster), through the built command:
// what they report, their exit statuses, one JSON document with --json,
// nothing on stderr without a terminal, and one line for an error.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../build/lib/src/cli/redis-server.js';
import type { DoctorReport } from '../build/lib/src/cli/doctor.js';
import type { RedisBenchReport } from '../build/lib/src/cli/bench-redis.js';

const BIN = fileURLToPath(new URL('../bin/cellgate.mjs', import.meta.url));

function run(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

let server: RedisServer;
let cluster: RedisCluster;

beforeAll(async () => {
  [server, cluster] = await Promise.all([startRedis(), startRedisCluster({ masters: 3 })]);
}, 60_000);
afterAll(async () => {
  await Promise.all([server?.stop(), cluster?.stop()]);
});

const status = (report: DoctorReport, name: string) => report.checks.find((c) => c.name === name)?.status;

describe('cellgate doctor', () => {
  it.each(['ioredis', 'iovalkey', 'redis'])('a healthy standalone server through %s: every check ok or info, exit 0, one JSON document', async (client) => {
    const { code, stdout, stderr } = await run(['doctor', '--redis', server.url, '--json', '--client', client]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as DoctorReport;
    expect(stdout.trim().split('\n')).toHaveLength(1);
    expect(report.client).toMatch(new RegExp(`^${client} \\d`));
    expect(report.checks.map((c) => c.name)).toEqual(['reachable', 'version', 'topology', 'scripts', 'maxmemory-policy', 'persistence', 'clock', 'fleet', 'timeoutMs']);
    // A busy machine's slow round trips may make timeoutMs a warning; nothing else may be one.
    expect(report.checks.filter((c) => c.status !== 'ok' && c.status !== 'info' && !(c.name === 'timeoutMs' && c.status === 'warn')), stdout).toEqual([]);
    expect(report.problems).toBe(0);
    expect(report.suggestedTimeoutMs).toBeGreaterThanOrEqual(10);
  });

  it('an allkeys-* eviction policy is a problem with its fix, exit 1; the fleet alive on the prefix is counted', async () => {
    const admin = new Redis(server.port, server.host);
    const { RedisStore } = await import('../build/lib/src/stores/redis/index.js');
    const client = new Redis(server.port, server.host);
    const stores = [new RedisStore({ client, prefix: 'team:' }), new RedisStore({ client, prefix: 'team:' })];
    try {
      await Promise.all(stores.map((s) => s.ready()));
      await expect.poll(() => admin.zcard('team:{fleet}')).toBe(2);
      await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
      const { code, stdout } = await run(['doctor', '--redis', server.url, '--prefix', 'team:']);
      expect(code).toBe(1);
      expect(stdout).toMatch(/FAIL\s+maxmemory-policy\s+allkeys-lru: under memory pressure Redis silently evicts limiter state/);
      expect(stdout).toContain('fix: CONFIG SET maxmemory-policy noeviction');
      expect(stdout).toMatch(/info\s+fleet\s+2 stores alive on prefix "team:"/);
      expect(stdout).toMatch(/^1 problem, 0 warnings$/m);
      await admin.config('SET', 'maxmemory-policy', 'volatile-lru');
      const volatile = await run(['doctor', '--redis', server.url, '--json']);
      expect(volatile.code).toBe(0);
      expect(status(JSON.parse(volatile.stdout) as DoctorReport, 'maxmemory-policy')).toBe('warn');
    } finally {
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await Promise.all(stores.map((s) => s.close()));
      client.disconnect();
      admin.disconnect();
    }
  });

  it('a script the server refuses (scripting denied by ACL) is a problem naming the cause', async () => {
    const admin = new Redis(server.port, server.host);
    try {
      await admin.call('ACL', 'SETUSER', 'noscript', 'on', '>pw', '~*', '+@all', '-@scripting');
      const { code, stdout } = await run(['doctor', '--redis', `redis://noscript:pw@${server.host}:${server.port}`, '--timeout', '1000']);
      expect(code).toBe(1);
      expect(stdout).toMatch(/FAIL\s+scripts\s+the decide script does not run: .*NOPERM/);
      // The password is not printed.
      expect(stdout).toContain('redis://noscript:***@');
      expect(stdout).not.toContain(':pw@');
    } finally {
      await admin.call('ACL', 'DELUSER', 'noscript');
      admin.disconnect();
    }
  });

  it('a database index in the URL is the one checked, with every client', async () => {
    const { RedisStore } = await import('../build/lib/src/stores/redis/index.js');
    const client = new Redis({ host: server.host, port: server.port, db: 3 });
    const stores = [new RedisStore({ client, prefix: 'db3:' }), new RedisStore({ client, prefix: 'db3:' })];
    try {
      await Promise.all(stores.map((s) => s.ready()));
      await expect.poll(() => client.zcard('db3:{fleet}')).toBe(2);
      for (const lib of ['ioredis', 'iovalkey', 'redis']) {
        const { code, stdout } = await run(['doctor', '--redis', `${server.url}/3`, '--prefix', 'db3:', '--client', lib]);
        expect(code, stdout).toBe(0);
        expect(stdout, lib).toMatch(/info\s+fleet\s+2 stores alive on prefix "db3:"/);
        expect(stdout).toContain(`cellgate doctor: ${server.url}/3 with ${lib}`);
      }
      expect((await run(['doctor', '--redis', `${server.url}/x`])).code).toBe(2);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      client.disconnect();
    }
  });

  it('a Cluster: topology with every slot served, every master checked', async () => {
    const { code, stdout } = await run(['doctor', '--redis', `redis://${cluster.nodes[0]!.host}:${cluster.nodes[0]!.port}`, '--json']);
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as DoctorReport;
    expect(report.client).toContain('(Cluster)');
    expect(report.checks.find((c) => c.name === 'topology')!.detail).toContain('Cluster of 3 masters, all 16384 slots served');
    expect(report.checks.find((c) => c.name === 'maxmemory-policy')!.detail.match(/127\.0\.0\.1:\d+/g)).toHaveLength(3);
    expect(status(report, 'scripts')).toBe('ok');
  });

  it('an unreachable Redis is a failed check (exit 1), a malformed URL a usage error (exit 2, one line)', async () => {
    const gone = await startRedis();
    const url = gone.url;
    await gone.stop();
    const down = await run(['doctor', '--redis', url, '--timeout', '500']);
    expect(down.code).toBe(1);
    // A password written raw (the URL parser percent-encodes it) is masked all the same.
    const raw = await run(['doctor', '--redis', url.replace('redis://', 'redis://:se"cret pw@'), '--timeout', '500']);
    expect(raw.stdout).toContain('redis://:***@127.0.0.1:');
    expect(raw.stdout + raw.stderr).not.toMatch(/se"cret|se%22cret|cret pw|cret%20pw/);
    expect(down.stdout).toMatch(/FAIL\s+reachable\s+cannot connect to redis:\/\/127\.0\.0\.1:\d+ with ioredis: connect ECONNREFUSED/);
    for (const args of [['doctor'], ['doctor', '--redis', 'http://x'], ['doctor', '--redis', server.url, '--timeout', '0'], ['doctor', '--redis', server.url, '--client', 'nope'], ['doctor', '--redis', server.url, '--prefix', '{x}']]) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^cellgate: /);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack
    }
  });

  it('a frozen server (SIGSTOP): the connection times out, the report says so and the command exits', async () => {
    const frozen = await startRedis();
    frozen.kill('SIGSTOP');
    try {
      for (const lib of ['ioredis', 'redis']) {
        const started = performance.now();
        const r = await run(['doctor', '--redis', frozen.url, '--timeout', '500', '--client', lib], 20_000);
        expect(r.code, `${lib}: ${r.stdout}${r.stderr}`).toBe(1);
        expect(r.stdout).toMatch(/FAIL\s+reachable\s+cannot connect to .* with .*: Redis did not answer within 500 ms/);
        // Exited by itself (a half-made connection would keep it alive until the 20 s kill).
        expect(performance.now() - started).toBeLessThan(15_000);
      }
    } finally {
      frozen.kill('SIGCONT');
      await frozen.stop();
    }
  }, 60_000);
});

describe('cellgate bench --redis', () => {
  it('measures strict and leased mode on the given Redis, beside RateLimiterRedis, as one JSON document', async () => {
    const { code, stdout, stderr } = await run(['bench', '--redis', server.url, '--quick', '--json'], 120_000);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    const report = JSON.parse(stdout) as RedisBenchReport;
    expect(report.client).toMatch(/^ioredis \d/);
    const contenders = report.rows.map((r) => r.contender);
    expect(contenders.filter((c) => c === 'cellgate RedisStore (strict)')).toHaveLength(3);
    // rate-limiter-flexible is a devDependency here: resolved from this folder, so it runs.
    expect(contenders.filter((c) => c === 'rate-limiter-flexible RateLimiterRedis')).toHaveLength(3);
    expect(contenders.some((c) => c.startsWith('cellgate leased limitSync'))).toBe(true);
    for (const row of report.rows) {
      expect(row.result, `${row.row}: ${row.contender}`).toBeDefined();
      expect(row.result!.decisions).toBeGreaterThan(0);
      expect(row.result!.perSecond).toBeGreaterThan(0);
      expect(row.result!.admitted).toBeLessThanOrEqual(row.result!.decisions);
    }
    expect(report.ratios).toHaveLength(3);
  }, 150_000);

  it('an unreachable Redis is one line and exit 2', async () => {
    const r = await run(['bench', '--redis', 'redis://127.0.0.1:1', '--quick']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^cellgate: cannot connect to redis:\/\/127\.0\.0\.1:1 with ioredis: connect ECONNREFUSED/);
  });
});
