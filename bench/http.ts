// The HTTP gateway benchmark (issue 7, item 4): a small server on loopback
// answering `GET /` with a short text, under load from autocannon, bare and
// behind each limiter:
//   Express: bare; cellgate nodeRateLimit on the embedded store; on a
//   RedisStore (strict mode); express-rate-limit with rate-limit-redis.
//   Fastify: bare; cellgate fastifyRateLimit, embedded and Redis strict;
//   @fastify/rate-limit with its Redis store.
// Every limit admits every request (100k/s per key, the most a 1 s period allows), so what is measured is the
// limiter's cost, not 429s. Two loads: one key (keyed by IP, and there is one
// load generator) and 10k keys (keyed by the x-api-key header, autocannon
// sending a different key with each request, round robin). Each server
// variant runs in its own process (bench/http-server.ts), so that no variant
// shares JIT state or the event loop with autocannon or another variant;
// autocannon runs here, against one variant at a time, on one redis-server
// (started here on a free loopback port).
//
// Note: on the 2-core machine this was written on, autocannon, the server and
// redis-server share the two cores, so absolute figures are low and noisy
// (autocannon itself takes most of a core), and anything else running on the
// machine shows (the load average is printed); compare the ratios, which are
// taken within one run, the variants measured in interleaved slices.
//
// Prints requests/s, p50/p99 latency, non-2xx responses, and the ratios.
// Progress lines go to stderr; --json prints one JSON document on stdout and
// nothing else (the tables then go to stderr).
// Run: npm run bench:http [-- --quick] [-- --json]
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { get } from 'node:http';
import { Console } from 'node:console';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { startRedis } from '../build/lib/src/cli/redis-server.js';
import type { KeyMode, ServerMessage, Variant } from './http-server.js';

const quick = process.argv.includes('--quick');
/** --json: one JSON document on stdout and nothing else; the tables go to stderr. */
const json = process.argv.includes('--json');
const con = json ? new Console(process.stderr) : console;
let slicesDone = 0;
/** A progress line on stderr per warm-up or measured slice. */
const progress = (line: string) => process.stderr.write(`[${++slicesDone}/${LOADS.length * VARIANT_NAMES.length * (ROUNDS + 1)}] ${line}\n`);
/**
 * Seconds of load on each server before it is measured (JIT, connections,
 * Redis scripts). Longer than 1 s: Express bare was seen here still speeding
 * up after 2-3 s of load, and a short warm-up favoured whatever ran later.
 */
const WARMUP_S = quick ? 1 : 3;
/** Slices measured per variant, round robin over the variants of one load. */
const ROUNDS = quick ? 2 : 5;
/** Seconds per slice: 5 s measured per variant in all (1.5 s with --quick). */
const SLICE_S = quick ? 0.75 : 1;
/** autocannon's connections, each with one request in flight (pipelining 1). */
const CONNECTIONS = 100;
/** Distinct x-api-key values of the 10k-keys load. */
const KEY_COUNT = 10_000;

/** The server variants (bench/http-server.ts), in the order measured and printed, with their names in the table. */
const VARIANT_NAMES: [Variant, string][] = [
  ['express-bare', 'Express, no limiter'],
  ['express-cellgate-embedded', 'Express + cellgate nodeRateLimit, embedded'],
  ['express-cellgate-redis', 'Express + cellgate nodeRateLimit, RedisStore strict'],
  ['express-erl-redis', 'Express + express-rate-limit + rate-limit-redis'],
  ['fastify-bare', 'Fastify, no limiter'],
  ['fastify-cellgate-embedded', 'Fastify + cellgate fastifyRateLimit, embedded'],
  ['fastify-cellgate-redis', 'Fastify + cellgate fastifyRateLimit, RedisStore strict'],
  ['fastify-rate-limit-redis', 'Fastify + @fastify/rate-limit, Redis'],
];

/** The loads: how the servers key requests, and what autocannon sends. */
const LOADS: [KeyMode, string][] = [
  ['ip', 'one key (by IP)'],
  ['header', `${KEY_COUNT / 1000}k keys (x-api-key)`],
];

/** One variant's measurement under one load. */
interface Row {
  variant: Variant;
  keyMode: KeyMode;
  perSecond: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  stats: unknown;
}

/** A variant's server process, with its port and the channel to stop it. */
interface ServerProcess {
  port: number;
  /** Asks the server to stop; resolves with its store's statistics once it has exited. */
  stop(): Promise<unknown>;
}

/** Starts one variant in its own process and waits until it listens. */
function startServer(variant: Variant, keyMode: KeyMode, redisPort: number): Promise<ServerProcess> {
  const script = fileURLToPath(new URL('./http-server.ts', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script, variant, keyMode, String(redisPort)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${variant} did not start within 30 s`));
    }, 30_000);
    child.once('exit', (code) => reject(new Error(`${variant} exited with ${code} before listening`)));
    child.once('message', (message: ServerMessage) => {
      clearTimeout(timer);
      if (!('port' in message)) return reject(new Error(`${variant} sent ${JSON.stringify(message)} before listening`));
      resolve({
        port: message.port,
        stop: () =>
          new Promise((done) => {
            let stats: unknown;
            const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
            child.on('message', (m: ServerMessage) => {
              if ('stats' in m) stats = m.stats;
            });
            child.removeAllListeners('exit');
            child.once('exit', () => {
              clearTimeout(kill);
              done(stats);
            });
            child.send('stop');
          }),
      });
    });
  });
}

/**
 * One plain request (its own connection) before the load: the answer must be
 * 200 `ok`, with rate-limit header fields exactly when the variant has a
 * limiter, so that a variant whose limiter is not in the path cannot pass
 * for a fast one.
 */
function check(variant: Variant, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/', agent: false, headers: { 'x-api-key': 'check' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const limited = Object.keys(res.headers).some((name) => name.includes('ratelimit'));
        if (res.statusCode !== 200 || body !== 'ok\n') return reject(new Error(`${variant}: ${res.statusCode} ${JSON.stringify(body)}`));
        if (limited !== !variant.endsWith('-bare')) return reject(new Error(`${variant}: rate-limit headers ${limited ? 'present' : 'missing'}: ${JSON.stringify(res.headers)}`));
        resolve();
      });
    });
    req.once('error', reject);
  });
}

/**
 * Runs autocannon against the server for `seconds`; with `keyMode` 'header'
 * every request carries the next of {@link KEY_COUNT} x-api-key values
 * (autocannon rebuilds each request then, which costs the load generator the
 * same in every variant). Latencies are collected from the response events
 * (float ms; autocannon's own histogram keeps whole milliseconds).
 */
function load(port: number, keyMode: KeyMode, seconds: number): Promise<{ result: autocannon.Result; latencies: Float64Array }> {
  let next = 0;
  const requests: autocannon.Request[] =
    keyMode === 'header'
      ? [
          {
            method: 'GET',
            path: '/',
            setupRequest: (request) => {
              request.headers = { ...request.headers, 'x-api-key': `key-${next++ % KEY_COUNT}` };
              return request;
            },
          },
        ]
      : [{ method: 'GET', path: '/' }];
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    const instance = autocannon({ url: `http://127.0.0.1:${port}`, connections: CONNECTIONS, pipelining: 1, duration: seconds, requests }, (error, result) => {
      if (error) return reject(error instanceof Error ? error : new Error(String(error)));
      resolve({ result, latencies: Float64Array.from(latencies) });
    });
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      latencies.push(responseTime);
    });
  });
}

/** The value below which a fraction `p` of the sorted samples fall. */
function percentile(sorted: Float64Array, p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/**
 * Measures every variant under one load. All its servers are started (each
 * in its own process, idle while another is measured) and warmed up, then
 * measured in {@link ROUNDS} slices round robin, so that a drift in the
 * machine's load (other processes, CPU frequency) spreads over all of them
 * instead of favouring one; requests/s is over all slices, the percentiles
 * over all their latencies.
 */
async function measureLoad(keyMode: KeyMode, redisPort: number): Promise<Row[]> {
  const servers: ServerProcess[] = [];
  try {
    for (const [variant] of VARIANT_NAMES) servers.push(await startServer(variant, keyMode, redisPort));
    const totals = VARIANT_NAMES.map(() => ({ requests: 0, seconds: 0, non2xx: 0, errors: 0, latencies: [] as Float64Array[] }));
    for (const [i, [variant]] of VARIANT_NAMES.entries()) {
      await check(variant, servers[i]!.port);
      await load(servers[i]!.port, keyMode, WARMUP_S);
      progress(`${keyMode}: ${variant} warmed up`);
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i] of VARIANT_NAMES.entries()) {
        const { result, latencies } = await load(servers[i]!.port, keyMode, SLICE_S);
        const t = totals[i]!;
        t.requests += result.requests.total;
        t.seconds += result.duration;
        t.non2xx += result.non2xx;
        t.errors += result.errors;
        t.latencies.push(latencies);
        progress(`${keyMode}: ${VARIANT_NAMES[i]![0]} round ${round + 1} of ${ROUNDS}`);
      }
    }
    const stats = await Promise.all(servers.splice(0).map((s) => s.stop()));
    return VARIANT_NAMES.map(([variant], i) => {
      const t = totals[i]!;
      const all = new Float64Array(t.latencies.reduce((n, l) => n + l.length, 0));
      let at = 0;
      for (const l of t.latencies) {
        all.set(l, at);
        at += l.length;
      }
      all.sort();
      return { variant, keyMode, perSecond: t.requests / t.seconds, p50: percentile(all, 0.5), p99: percentile(all, 0.99), non2xx: t.non2xx, errors: t.errors, stats: stats[i] };
    });
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

/** Runs every variant under every load and prints the table and the ratios. */
async function main(): Promise<void> {
  const loadAverage = () => loadavg().map((l) => l.toFixed(2)).join(' ');
  const before = loadAverage();
  const redis = await startRedis();
  const rows: Row[] = [];
  try {
    for (const [keyMode] of LOADS) rows.push(...(await measureLoad(keyMode, redis.port)));
  } finally {
    await redis.stop();
  }
  const after = loadAverage();
  const name = new Map(VARIANT_NAMES);
  const loadName = new Map(LOADS);
  con.log(
    `\nHTTP gateway on loopback: autocannon, ${CONNECTIONS} connections, pipelining 1; per variant ${WARMUP_S} s warm-up, then ${ROUNDS} x ${SLICE_S} s measured round robin; each server in its own process; limits admit everything (100k/s per key); load average before/after: ${before} / ${after}`,
  );
  con.table(
    rows.map((r) => ({
      load: loadName.get(r.keyMode),
      server: name.get(r.variant),
      'requests/s': Math.round(r.perSecond).toLocaleString('en-US'),
      'p50 ms': r.p50.toFixed(2),
      'p99 ms': r.p99.toFixed(2),
      'non-2xx': r.non2xx,
      errors: r.errors,
    })),
  );
  const of = (variant: Variant, keyMode: KeyMode) => rows.find((r) => r.variant === variant && r.keyMode === keyMode)!;
  const ratio = (a: Variant, b: Variant, keyMode: KeyMode) => (of(a, keyMode).perSecond / of(b, keyMode).perSecond).toFixed(2);
  con.log(`\nsummary (one run, same redis-server ${redis.url}; requests/s ratios):`);
  for (const [keyMode, label] of LOADS) {
    con.log(
      `  ${label}: Express embedded / bare = ${ratio('express-cellgate-embedded', 'express-bare', keyMode)} (target >= 0.95), ` +
        `Redis strict / express-rate-limit+Redis = ${ratio('express-cellgate-redis', 'express-erl-redis', keyMode)}; ` +
        `Fastify embedded / bare = ${ratio('fastify-cellgate-embedded', 'fastify-bare', keyMode)}, ` +
        `Redis strict / @fastify/rate-limit = ${ratio('fastify-cellgate-redis', 'fastify-rate-limit-redis', keyMode)}`,
    );
  }
  for (const r of rows) {
    if (!r.variant.endsWith('-cellgate-redis')) continue;
    // Every decision should come from Redis: a fallback one would flatter the strict store.
    const { decisions, opens } = r.stats as { decisions: Record<string, number>; opens: number };
    con.log(`  ${name.get(r.variant)}, ${loadName.get(r.keyMode)}: decisions by source ${JSON.stringify(decisions)}, breaker opens ${opens}`);
  }
  if (json) process.stdout.write(`${JSON.stringify({ loadAverage: { before, after }, rows })}\n`);
}

await main();
