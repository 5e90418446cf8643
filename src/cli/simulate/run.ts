// `cellgate simulate`: N pod processes start at one instant and call a mock
// upstream (node:http on loopback, started here) that enforces its own limit
// with a token bucket and answers 429 beyond it. Prints what the upstream saw
// and writes a timeline SVG and an HTML page.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findRedisServer, startRedis } from '../redis-server.js';
import { htmlPage, timelineSvg, type SeenRequest } from '../svg.js';
import { UsageError } from '../usage-error.js';
import type { PodConfig, PodResult } from './pod.js';

// The compiled pod next to this compiled module (build/lib/src/cli/simulate/):
// each pod is a plain `node pod.js`, without the cost of a TypeScript loader in
// every process.
const POD_SCRIPT = fileURLToPath(new URL('./pod.js', import.meta.url));
const BUCKET_MS = 100;

/** Bursty demand of quota and pacing: each pod wants 20 requests at once every 500 ms, each gives up after 250 ms. */
export const BURSTY = { count: 20, everyMs: 500, deadlineMs: 250 };
/** The misconfigured fleet's limit, as a multiple of the upstream's rate. */
const MISCONFIGURED = 1.5;

/** The scenarios by name, each with the line printed under the table's title. */
export const SCENARIOS: Record<string, string> = {
  stampede: 'each pod has its own in-process GCRA allowing the full upstream rate (the naive setup)',
  'shared-gcra': 'all pods share one GCRA in Redis (RedisStore, strict) at the upstream rate and acquire() their turn',
  quota: 'a quota upstream (refilled at each 1 s window); the pods share tokenBucket({ capacity: quota, period: 1s, mode: interval }) in Redis; bursty demand',
  pacing: 'the same quota upstream and bursty demand; the pods share a GCRA in Redis pacing at the quota rate with burst 1 (quota wasted, longer waits)',
  'redis-outage': 'shared GCRA in Redis with fallback { nodes: pods }, timeoutMs 100; Redis is killed (SIGKILL) mid-run for ~1 s and restarted',
  'redis-outage-open': 'as redis-outage but with fallback \'open\': every pod admits everything while Redis is down',
  misconfigured: `the pods share one GCRA in Redis configured at ${MISCONFIGURED}x the upstream's limit (a wrong quota): steady 429s`,
};

/** The options of one simulation (the command's flags, parsed). */
export interface SimulateOptions {
  scenario: string;
  pods: number;
  seconds: number;
  rate: number;
  burst: number;
  quota?: number;
  out: string;
  redis?: string | undefined;
}

type PodSetup = Omit<PodConfig, 'pod' | 'scenario' | 'url' | 'seconds' | 'key' | 'redis'>;

/** What a scenario's pods and upstream are (see pod.ts for the pod config). */
interface ScenarioSetup {
  upstream: 'bucket' | 'quota';
  outage?: boolean;
  pod: PodSetup;
}

/** What each scenario's pods and upstream are. */
function scenarioSetup(o: Required<Omit<SimulateOptions, 'redis'>>): ScenarioSetup {
  const gcraAt = (limit: number, burst?: number): PodSetup['policy'] => ({ kind: 'gcra', limit, ...(burst !== undefined ? { burst } : {}) });
  switch (o.scenario) {
    case 'stampede':
      return { upstream: 'bucket', pod: { store: 'memory', policy: gcraAt(o.rate, o.burst) } };
    case 'shared-gcra':
      return { upstream: 'bucket', pod: { store: 'redis', policy: gcraAt(o.rate) } };
    case 'quota':
      return { upstream: 'quota', pod: { store: 'redis', policy: { kind: 'quota', capacity: o.quota }, demand: BURSTY } };
    case 'pacing':
      return { upstream: 'quota', pod: { store: 'redis', policy: gcraAt(o.quota, 1), demand: BURSTY } };
    case 'redis-outage':
      return { upstream: 'bucket', outage: true, pod: { store: 'redis', policy: gcraAt(o.rate), timeoutMs: 100, fallback: { nodes: o.pods } } };
    case 'redis-outage-open':
      return { upstream: 'bucket', outage: true, pod: { store: 'redis', policy: gcraAt(o.rate), timeoutMs: 100, fallback: 'open' } };
    case 'misconfigured':
      return { upstream: 'bucket', pod: { store: 'redis', policy: gcraAt(o.rate * MISCONFIGURED) } };
    default:
      throw new UsageError(`unknown scenario "${o.scenario}"`);
  }
}

/** The mock upstream, listening. */
interface Upstream {
  url: string;
  /** `origin`: performance.now() at "go"; `seen`: every request, in arrival order; the 2xx and 429 counts. */
  state: { origin: number; seen: SeenRequest[]; ok: number; limited: number };
  start(): void;
  close(): Promise<void>;
}

/**
 * The mock upstream. Mode 'bucket': a token bucket of `burst` tokens refilled
 * at `rate` per second. Mode 'quota': `quota` requests per 1 s window, all
 * given back at each window boundary (windows counted from "go"), like a
 * provider's quota. Records every request it sees (time since `origin`, pod,
 * accepted).
 */
function startUpstream({ mode = 'bucket', rate, burst, quota }: { mode?: 'bucket' | 'quota'; rate: number; burst: number; quota: number }): Promise<Upstream> {
  const full = mode === 'quota' ? quota : burst;
  let tokens = full;
  let last = performance.now();
  let window = 0;
  const seen: SeenRequest[] = [];
  const state = { origin: 0, seen, ok: 0, limited: 0 };
  const server = http.createServer((req, res) => {
    const now = performance.now();
    let retryAfterS: number;
    if (mode === 'quota') {
      const w = Math.floor((now - state.origin) / 1000);
      if (w !== window) {
        window = w;
        tokens = quota;
      }
      retryAfterS = Math.max(1, Math.ceil((state.origin + (w + 1) * 1000 - now) / 1000));
    } else {
      tokens = Math.min(burst, tokens + ((now - last) * rate) / 1000);
      last = now;
      retryAfterS = Math.ceil((1 - tokens) / rate);
    }
    const pod = Number(req.headers['x-pod'] ?? -1);
    if (tokens >= 1) {
      tokens -= 1;
      state.ok++;
      seen.push({ t: now - state.origin, pod, ok: true });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
    } else {
      state.limited++;
      seen.push({ t: now - state.origin, pod, ok: false });
      res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': String(retryAfterS) });
      res.end('too many requests\n');
    }
  });
  server.keepAliveTimeout = 30_000;
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolvePromise({
        url: `http://127.0.0.1:${port}/`,
        state,
        /** Resets the bucket to full and sets t = 0 (just before "go"). */
        start() {
          tokens = full;
          window = 0;
          last = performance.now();
          state.origin = last;
        },
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections?.();
            server.close(() => r());
          }),
      });
    });
  });
}

/** Starts the pods, waits until each is ready, then says "go" to all at once. */
async function runPods(configs: PodConfig[], timeoutMs: number, onGo: () => void): Promise<PodResult[]> {
  const pods = configs.map((config) => {
    const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [POD_SCRIPT, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk));
    const ready = new Promise<void>((res, rej) => {
      child.stdout.once('data', () => res());
      child.once('exit', (code) => rej(new Error(`pod ${config.pod} exited with ${code} before it was ready:\n${err.trim()}`)));
    });
    const result = new Promise<PodResult>((res, rej) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        rej(new Error(`pod ${config.pod} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (code !== 0) return rej(new Error(`pod ${config.pod} exited with ${code ?? signal}:\n${err.trim()}`));
        const lines = out.trim().split('\n');
        res(JSON.parse(lines[lines.length - 1]!) as PodResult);
      });
    });
    result.catch(() => {});
    return { child, ready, result };
  });
  const kill = () => pods.forEach((p) => p.child.kill('SIGKILL'));
  process.on('exit', kill);
  try {
    await Promise.all(pods.map((p) => p.ready));
    onGo();
    for (const p of pods) p.child.stdin.end('go\n');
    return await Promise.all(pods.map((p) => p.result));
  } finally {
    kill();
    process.off('exit', kill);
  }
}

/** The largest number of times in any window of `windowMs` (times sorted). */
export function peakInWindow(times: number[], windowMs: number): number {
  let best = 0;
  let j = 0;
  for (let i = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/** The q-quantile (0..1) of sorted values, nearest rank. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** What one simulation measured (printed as its table). */
export interface Figures {
  scenario: string;
  pods: number;
  seconds: number;
  rate: number;
  burst: number;
  quota: number | undefined;
  sent: number;
  ok: number;
  limited: number;
  errors: number;
  fallback: number;
  dropped: number;
  demand: PodConfig['demand'];
  peak100ms: number;
  peak1s: number;
  utilization: number;
  waitP50: number;
  waitP99: number;
  outage: { down: number; up: number } | undefined;
  limitedInOutage?: number;
}

/** The Redis a simulation's pods share: one started here, or the one given with --redis. */
interface SimulationRedis {
  host: string;
  port: number;
  kill?(signal: NodeJS.Signals): void;
  restart?(): Promise<void>;
  stop(): Promise<void>;
}

/** Runs one simulation, prints its table and writes its SVG and HTML. Resolves with the figures. */
export async function simulate(options: SimulateOptions): Promise<Figures> {
  if (!Object.hasOwn(SCENARIOS, options.scenario)) {
    throw new UsageError(`unknown scenario "${options.scenario}"; known: ${Object.keys(SCENARIOS).join(', ')}`);
  }
  const o = { quota: 100, ...options };
  const setup = scenarioSetup(o);
  let redis: SimulationRedis | undefined;
  if (setup.pod.store === 'redis') {
    try {
      await import('ioredis');
    } catch {
      throw new UsageError(`scenario ${o.scenario} needs the ioredis package: npm install ioredis`);
    }
    if (o.redis !== undefined) {
      if (setup.outage) throw new UsageError(`scenario ${o.scenario} kills and restarts its own redis-server: leave out --redis`);
      const u = new URL(o.redis);
      redis = { host: u.hostname, port: Number(u.port || 6379), stop: async () => {} };
    } else {
      const bin = findRedisServer();
      if (bin === undefined) {
        throw new UsageError(`scenario ${o.scenario} needs redis-server (apt-get install redis-server, or brew install redis)${setup.outage ? '' : ', or --redis URL of a running one'}`);
      }
      redis = await startRedis({ bin });
    }
  }
  const upstream = await startUpstream({ mode: setup.upstream, rate: o.rate, burst: o.burst, quota: o.quota });
  const key = `simulate:${randomBytes(6).toString('hex')}`;
  const configs = Array.from({ length: o.pods }, (_, pod): PodConfig => ({
    pod,
    scenario: o.scenario,
    url: upstream.url,
    seconds: o.seconds,
    key,
    redis: redis && { host: redis.host, port: redis.port },
    ...setup.pod,
  }));

  // The outage: ~1 s in the middle of the run (a third of it when shorter).
  const outageMs = Math.min(1000, (o.seconds * 1000) / 3);
  const outage: { planned: [number, number]; down?: number; up?: number } | undefined = setup.outage
    ? { planned: [(o.seconds * 1000 - outageMs) / 2, (o.seconds * 1000 + outageMs) / 2] }
    : undefined;
  const timers: NodeJS.Timeout[] = [];
  let restarted = Promise.resolve();
  const since = () => performance.now() - upstream.state.origin;

  let progress: NodeJS.Timeout | undefined;
  let results: PodResult[];
  try {
    results = await runPods(configs, o.seconds * 1000 + 30_000, () => {
      upstream.start();
      if (outage) {
        timers.push(
          setTimeout(() => {
            outage.down = since();
            redis!.kill!('SIGKILL');
          }, outage.planned[0]),
          setTimeout(() => {
            restarted = redis!.restart!().then(() => {
              outage.up = since();
            });
            restarted.catch(() => {});
          }, outage.planned[1]),
        );
      }
      if (process.stderr.isTTY) {
        progress = setInterval(() => {
          const t = since() / 1000;
          process.stderr.write(`\r  ${Math.min(t, o.seconds).toFixed(1)} / ${o.seconds} s   2xx ${upstream.state.ok}   429 ${upstream.state.limited}   `);
        }, 200);
      }
    });
    await restarted;
  } finally {
    timers.forEach(clearTimeout);
    if (progress) {
      clearInterval(progress);
      process.stderr.write('\r\x1b[K');
    }
    await upstream.close();
    await redis?.stop();
  }

  const quotaUpstream = setup.upstream === 'quota';
  const sum = (f: 'sent' | 'errors' | 'other' | 'fallback' | 'dropped') => results.reduce((a, r) => a + r[f], 0);
  const seen = upstream.state.seen;
  const times = seen.map((s) => s.t).sort((a, b) => a - b);
  const waits = results.flatMap((r) => r.waits).sort((a, b) => a - b);
  const figures: Figures = {
    scenario: o.scenario,
    pods: o.pods,
    seconds: o.seconds,
    rate: quotaUpstream ? o.quota : o.rate,
    burst: o.burst,
    quota: quotaUpstream ? o.quota : undefined,
    sent: sum('sent'),
    ok: upstream.state.ok,
    limited: upstream.state.limited,
    errors: sum('errors') + sum('other'),
    fallback: sum('fallback'),
    dropped: sum('dropped'),
    demand: setup.pod.demand,
    peak100ms: peakInWindow(times, 100),
    peak1s: peakInWindow(times, 1000),
    utilization: upstream.state.ok / ((quotaUpstream ? o.quota : o.rate) * o.seconds),
    waitP50: quantile(waits, 0.5),
    waitP99: quantile(waits, 0.99),
    outage: outage && outage.down !== undefined ? { down: outage.down, up: outage.up ?? outage.planned[1] } : undefined,
  };
  if (figures.outage) {
    const [a, b] = [figures.outage.down, figures.outage.up];
    figures.limitedInOutage = seen.filter((s) => !s.ok && s.t >= a && s.t < b + 500).length;
  }

  // Timeline, 100 ms buckets from "go" to the last request seen.
  const span = Math.max(o.seconds * 1000, times.length ? times[times.length - 1]! + 1 : 0);
  const buckets = Array.from({ length: Math.ceil(span / BUCKET_MS) }, () => ({ accepted: 0, rejected: 0 }));
  for (const s of seen) {
    const b = buckets[Math.min(buckets.length - 1, Math.max(0, Math.floor(s.t / BUCKET_MS)))]!;
    if (s.ok) b.accepted++;
    else b.rejected++;
  }
  const upstreamText = quotaUpstream ? `upstream quota ${o.quota} per 1 s window` : `upstream ${o.rate}/s burst ${o.burst}`;
  const title = `cellgate simulate ${o.scenario}: ${o.pods} pods, ${o.seconds} s, ${upstreamText}`;
  const svg = timelineSvg({
    title,
    bucketMs: BUCKET_MS,
    buckets,
    allowedPerBucket: ((quotaUpstream ? o.quota : o.rate) * BUCKET_MS) / 1000,
    seconds: o.seconds,
    pods: { count: o.pods, requests: seen },
    ...(figures.outage ? { shaded: { fromMs: figures.outage.down, toMs: figures.outage.up, label: 'Redis down' } } : {}),
  });
  const rows = tableRows(figures);
  const dir = resolve(o.out);
  mkdirSync(dir, { recursive: true });
  const svgPath = join(dir, `${o.scenario}.svg`);
  const htmlPath = join(dir, `${o.scenario}.html`);
  writeFileSync(svgPath, svg);
  writeFileSync(htmlPath, htmlPage({ title, svg, rows }));

  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = [
    `cellgate simulate: ${o.scenario} (${o.pods} pods, ${o.seconds} s, ${quotaUpstream ? `upstream quota ${o.quota} per 1 s window` : `upstream ${o.rate}/s with burst ${o.burst}`})`,
    `  ${SCENARIOS[o.scenario]}`,
    '',
    ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`),
    '',
    `  wrote ${svgPath}`,
    `        ${htmlPath}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return figures;
}

function tableRows(f: Figures): [string, string][] {
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  const s = (v: number) => `${(v / 1000).toFixed(2)} s`;
  const rows: [string, string][] = [];
  if (f.demand) rows.push(['demand', `${f.demand.count} requests at once per pod every ${f.demand.everyMs} ms, each waits at most ${f.demand.deadlineMs} ms`]);
  rows.push(
    ['requests sent', String(f.sent)],
    ['upstream 2xx', String(f.ok)],
    ['upstream 429', String(f.limited)],
  );
  if (f.dropped > 0) rows.push(['gave up waiting', `${f.dropped} (not admitted within ${f.demand!.deadlineMs} ms)`]);
  if (f.errors > 0) rows.push(['errors', String(f.errors)]);
  if (f.outage) {
    rows.push(['redis down', `${s(f.outage.down)} to ${s(f.outage.up)} (SIGKILL, then restarted)`]);
    rows.push(['429 in outage', `${f.limitedInOutage} (from the kill to 0.5 s after the restart)`]);
  }
  if (f.fallback > 0) rows.push(['fallback decisions', String(f.fallback)]);
  if (f.quota !== undefined) {
    rows.push(
      ['peak in any 100 ms', `${f.peak100ms} (upstream admits at most ${f.quota}, one window's quota)`],
      ['peak in any 1 s', `${f.peak1s} (upstream admits at most ${2 * f.quota}, across a window boundary)`],
      ['utilization', `${(f.utilization * 100).toFixed(1)}% (2xx / (${f.quota} per window x ${f.seconds} s))`],
    );
  } else {
    rows.push(
      ['peak in any 100 ms', `${f.peak100ms} (upstream admits at most ${Math.floor(f.burst + f.rate * 0.1)})`],
      ['peak in any 1 s', `${f.peak1s} (upstream admits at most ${Math.floor(f.burst + f.rate)})`],
      ['utilization', `${(f.utilization * 100).toFixed(1)}% (2xx / (${f.rate}/s x ${f.seconds} s))`],
    );
  }
  rows.push(['admission wait p50', ms(f.waitP50)], ['admission wait p99', ms(f.waitP99)]);
  return rows;
}
