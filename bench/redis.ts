// The Redis store against rate-limiter-flexible's RateLimiterRedis, on the same
// redis-server (started here on a free loopback port), in the same run:
//   1. closed loop, 1000 concurrent callers over 10k keys, uniform;
//   2. the same with hot keys (1% of keys take 90% of hits);
//   3. open loop at a steady 20k requests/s: latency added per decision;
//   4. leased mode on hot keys: limitSync and await limit() against the
//      embedded store, strict mode and RateLimiterRedis, and the utilization
//      of one key's limit by 4 leased processes.
// Prints decisions/s, p50/p99 latency and the ratios (with --json, also as one
// JSON line). Run: npm run bench:redis -- [--quick] [--json] [--url redis://host:port]
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Console } from 'node:console';
import { Limiter, gcra } from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { runPods } from '../support/pods.js';
import { startRedis } from '../build/lib/src/cli/redis-server.js';
import { pickHot, pickUniform, rng } from '../build/lib/src/cli/key-picks.js';
import { closedLoop as measureClosedLoop, percentile } from '../build/lib/src/cli/measure.js';

const quick = process.argv.includes('--quick');
const json = process.argv.includes('--json');
/** With --json, stdout holds only the JSON line: the tables go to stderr. */
const con = json ? new Console(process.stderr) : console;
/** `--url redis://host:port`: an existing Redis instead of one started here (its data under the bench prefixes is overwritten). */
const urlArg = process.argv[process.argv.indexOf('--url') + 1];
const url = process.argv.includes('--url') ? urlArg : undefined;
const DURATION_MS = quick ? 1000 : 4000;
const CALLERS = 1000;

type Decide = (key: string) => Promise<boolean>;

interface Result {
  name: string;
  perSecond: number;
  p50: number;
  p99: number;
  admitted: number;
  /** Decisions made, admitted or not. */
  decisions: number;
}

/** A closed loop of {@link CALLERS} callers for DURATION_MS (the measuring code `cellgate bench` shares). */
async function closedLoop(name: string, decide: Decide, pick: () => string): Promise<Result> {
  return { name, ...(await measureClosedLoop(decide, pick, CALLERS, DURATION_MS)) };
}

async function openLoop(name: string, decide: Decide, pick: () => string, rate: number): Promise<Result> {
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  let admitted = 0;
  const start = performance.now();
  const total = Math.floor((rate * DURATION_MS) / 1000);
  let sent = 0;
  // Send what the schedule says is due by now, then yield to I/O.
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000));
    for (; sent < due; sent++) {
      const t = performance.now();
      pending.push(
        decide(pick()).then((ok) => {
          if (ok) admitted++;
          latencies.push(performance.now() - t);
        }),
      );
    }
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(pending);
  const sorted = Float64Array.from(latencies).sort();
  return { name, perSecond: (latencies.length / (performance.now() - start)) * 1000, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), admitted, decisions: latencies.length };
}

/** 4 leased processes on one GCRA key (200/s, burst 5) for 2 s: admitted / allowed. */
async function utilization(port: number): Promise<string> {
  const worker = fileURLToPath(new URL('../support/leased-worker.mjs', import.meta.url));
  const pods = await runPods(worker, Array.from({ length: 4 }, () => [String(port), 'gcra', 'utilization', '2000']));
  const results = (await Promise.all(pods.map((p) => p.result))) as { admitted: number[] }[];
  const admitted = results.reduce((sum, r) => sum + r.admitted.length, 0);
  const allowance = 5 + 2000 / 5;
  return `${admitted} admitted of ${allowance} allowed (${((100 * admitted) / allowance).toFixed(1)}%), per process ${results.map((r) => r.admitted.length).join(' / ')}`;
}

function print(title: string, results: Result[]): void {
  con.log(`\n${title}`);
  con.table(
    results.map((r) => ({
      contender: r.name,
      'decisions/s': Math.round(r.perSecond).toLocaleString('en-US'),
      'p50 ms': Number.isFinite(r.p50) ? r.p50.toFixed(3) : '— (not timed per call)',
      'p99 ms': Number.isFinite(r.p99) ? r.p99.toFixed(3) : '— (not timed per call)',
      admitted: `${r.admitted.toLocaleString('en-US')} (${r.decisions ? ((100 * r.admitted) / r.decisions).toFixed(1) : '—'}%)`,
    })),
  );
}

/** The Redis to run on: the one given with --url, or a fresh redis-server on loopback. */
async function redisServer(): Promise<{ host: string; port: number; url: string; stop(): Promise<void> }> {
  if (url === undefined) return startRedis();
  const parsed = new URL(url);
  if (parsed.protocol !== 'redis:' || parsed.port === '') throw new Error(`--url must be redis://host:port, not ${JSON.stringify(url)}`);
  return { host: parsed.hostname, port: Number(parsed.port), url, stop: async () => {} };
}

async function main(): Promise<void> {
  const server = await redisServer();
  const results: Record<string, Result[]> = {};
  const ours = new Redis({ host: server.host, port: server.port, enableAutoPipelining: false });
  const theirs = new Redis({ host: server.host, port: server.port });
  try {
    // Both allow 1000 per second per key: at these rates few uniform keys are ever denied.
    const limiter = new Limiter({ policy: gcra({ limit: 1000, period: '1s', burst: 1000 }), store: new RedisStore({ client: ours, prefix: 'bench:' }) });
    const cellgate: Decide = async (key) => (await limiter.limit(key)).allowed;
    const rlf = new RateLimiterRedis({ storeClient: theirs, points: 1000, duration: 1, keyPrefix: 'rlf' });
    const flexible: Decide = (key) => rlf.consume(key).then(() => true, () => false);
    // Warm both up (JIT, connections, script cache) before measuring.
    await closedLoop('warm-up', cellgate, pickUniform(rng(9)));
    await closedLoop('warm-up', flexible, pickUniform(rng(9)));

    const summary: string[] = [];
    for (const [title, pick] of [
      [`closed loop: ${CALLERS} concurrent callers, 10k keys, uniform`, pickUniform],
      [`closed loop: ${CALLERS} concurrent callers, 10k keys, hot keys (1% of keys take 90% of hits)`, pickHot],
    ] as const) {
      const a = await closedLoop('cellgate RedisStore (strict)', cellgate, pick(rng(1)));
      const b = await closedLoop('rate-limiter-flexible RateLimiterRedis', flexible, pick(rng(1)));
      print(title, [a, b]);
      results[title] = [a, b];
      summary.push(`${title}: cellgate / RateLimiterRedis = ${(a.perSecond / b.perSecond).toFixed(1)}x decisions/s (target >= 5x)`);
    }
    {
      // Each contender alone in its own process (bench/hot-keys.ts), one after another, on the same Redis.
      const contenders = [
        ['embedded', 'cellgate EmbeddedStore limitSync (the same loop, no Redis)'],
        ['leased-sync', 'cellgate RedisStore leased limitSync (one caller, 1000 decisions per event-loop turn)'],
        ['leased-async', 'cellgate RedisStore leased limit(), 1000 calls started per event-loop turn'],
        ['strict', 'cellgate RedisStore strict await limit(), 1000 callers'],
        ['rlf', 'rate-limiter-flexible RateLimiterRedis, 1000 callers'],
      ] as const;
      const hot: Result[] = [];
      let leasedSources = '';
      for (const [id, name] of contenders) {
        const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./hot-keys.ts', import.meta.url)), id, `${server.host}:${server.port}`, String(DURATION_MS)]);
        const r = JSON.parse(out.toString().trim().split('\n').pop()!) as { perSecond: number; decisions: number; admitted: number; sources?: unknown };
        if (id === 'leased-sync') leasedSources = JSON.stringify(r.sources);
        hot.push({ name, perSecond: r.perSecond, p50: NaN, p99: NaN, admitted: r.admitted, decisions: r.decisions });
      }
      const title = 'leased mode, hot keys (1% of 10k keys take 90% of hits), gcra 100k/s burst 10k per key, each contender in its own process';
      print(title, hot);
      results[title] = hot;
      const [emb, sync, async_, strict, flex] = hot.map((r) => r.perSecond) as [number, number, number, number, number];
      summary.push(
        `leased limitSync: embedded / leased = ${(emb / sync).toFixed(2)}x (target <= 2x), leased / strict = ${(sync / strict).toFixed(1)}x, leased / RateLimiterRedis = ${(sync / flex).toFixed(1)}x (target >= 50x)`,
      );
      summary.push(`leased await limit(): embedded limitSync / leased = ${(emb / async_).toFixed(2)}x, leased / strict = ${(async_ / strict).toFixed(1)}x, leased / RateLimiterRedis = ${(async_ / flex).toFixed(1)}x`);
      summary.push(`leased limitSync's decisions by source, and lease requests: ${leasedSources}`);
      // The leased worker fixture connects to loopback: utilization only runs there.
      if (server.host === '127.0.0.1' || server.host === 'localhost') summary.push(`utilization, 4 leased processes on one key: ${await utilization(server.port)}`);
    }
    const rate = 20_000;
    const a = await openLoop('cellgate RedisStore (strict)', cellgate, pickUniform(rng(2)), rate);
    const b = await openLoop('rate-limiter-flexible RateLimiterRedis', flexible, pickUniform(rng(2)), rate);
    const openTitle = `open loop: a steady ${rate.toLocaleString('en-US')} requests/s over 10k keys (latency added per decision)`;
    print(openTitle, [a, b]);
    results[openTitle] = [a, b];
    summary.push(`steady ${rate} req/s: cellgate p99 ${a.p99.toFixed(3)} ms (target <= 1 ms), RateLimiterRedis p99 ${b.p99.toFixed(3)} ms`);
    con.log(`\nsummary (one run, same redis-server ${server.url}):`);
    for (const line of summary) con.log(`  ${line}`);
    // For CI trend tracking: the same figures, machine-readable, on the last line.
    if (json) process.stdout.write(`${JSON.stringify({ redis: server.url, results, summary })}\n`);
  } finally {
    ours.disconnect();
    theirs.disconnect();
    await server.stop();
  }
}

await main();
