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
import { htmlPage, stackSvg, timelineSvg, type SeenRequest, type Timeline } from '../svg.js';
import { UsageError } from '../usage-error.js';
import type { PodConfig, PodResult } from './pod.js';

// The compiled pod next to this compiled module (build/lib/src/cli/simulate/):
// each pod is a plain `node pod.js`, without the cost of a TypeScript loader in
// every process.
const POD_SCRIPT = fileURLToPath(new URL('./pod.js', import.meta.url));
const BUCKET_MS = 100;

/** The hourly quota a burst-intolerant upstream with `headers` states (see startUpstream). */
const HOURLY = 100_000;

/** Bursty demand of quota and pacing: each pod wants 20 requests at once every 500 ms, each gives up after 250 ms. */
export const BURSTY = { count: 20, everyMs: 500, deadlineMs: 250 };
/** The misconfigured fleet's limit, as a multiple of the upstream's rate. */
const MISCONFIGURED = 1.5;
/**
 * The lock-contention scenario's lock: a 1 s TTL and a fixed 10 ms retry
 * sleep, the values blog-post implementations use (shorter sleeps poll Redis
 * harder, longer ones wait longer; either way the lock serializes the fleet).
 */
const LOCK = { lockTtlMs: 1000, retryMs: 10 };
/** retry-after: the Retry-After (seconds) the upstream answers every 429 with. */
const RETRY_AFTER_S = 2;
/** quota-sync: the fleet's interval token bucket, as a multiple of the upstream's quota (100 for the default 50: too generous). */
const QUOTA_SYNC_GENEROUS = 2;
/** "After the first 2 s": the figures of upstream arrivals at t >= this (ms after "go"), once the fleet has had time to learn. */
export const SETTLED_MS = 2000;
/** The scenarios whose pods call through limitedFetch and whose tables show the figures after {@link SETTLED_MS}. */
const LISTENING = new Set(['retry-after', 'quota-sync', 'auto-pacing', 'auto-quota']);

/**
 * A scenario's defaults of --rate, --burst, --demand, --seconds and --quota:
 * 50/s with burst 5, 3 s, a quota of 100; the four scenarios about listening
 * to the upstream (retry-after, quota-sync, auto-pacing, auto-quota) run 8 s,
 * so that "after the first 2 s" is most of the run, with a quota of 50
 * (auto-pacing: burst 1, an upstream that takes no bursts);
 * for lock-contention an upstream (and both limiters) at 600/s with burst 60
 * (the same 100 ms of slack for a pod woken late that burst 5 is at 50/s),
 * and the pods wanting 500/s in total: the rate locks are said to collapse
 * at, with headroom under the limit so that a wait is the limiter's doing and
 * not a queue that demand at exactly the limit never drains.
 *
 * @example
 * ```ts
 * scenarioDefaults('lock-contention'); // { rate: 600, burst: 60, demand: 500 }
 * ```
 */
export function scenarioDefaults(scenario: string): { rate: number; burst: number; demand?: number; seconds: number; quota: number } {
  if (scenario === 'lock-contention') return { rate: 600, burst: 60, demand: 500, seconds: 3, quota: 100 };
  if (LISTENING.has(scenario)) return { rate: 50, burst: scenario === 'auto-pacing' ? 2 : 5, seconds: 8, quota: 50 };
  return { rate: 50, burst: 5, seconds: 3, quota: 100 };
}

/** The scenarios by name, each with the line printed under the table's title. */
export const SCENARIOS: Record<string, string> = {
  stampede: 'each pod has its own in-process GCRA allowing the full upstream rate (the naive setup)',
  'shared-gcra': 'all pods share one GCRA in Redis (RedisStore, strict) at the upstream rate and acquire() their turn',
  quota: 'a quota upstream (refilled at each 1 s window); the pods share tokenBucket({ capacity: quota, period: 1s, mode: interval }) in Redis; bursty demand',
  pacing: 'the same quota upstream and bursty demand; the pods share a GCRA in Redis pacing at the quota rate with burst 1 (quota wasted, longer waits)',
  'redis-outage': 'shared GCRA in Redis with fallback { nodes: pods }, timeoutMs 100; Redis is killed (SIGKILL) mid-run for ~1 s and restarted',
  'redis-outage-open': 'as redis-outage but with fallback \'open\': every pod admits everything while Redis is down',
  misconfigured: `the pods share one GCRA in Redis configured at ${MISCONFIGURED}x the upstream's limit (a wrong quota): steady 429s`,
  'lock-contention':
    `the pods together want --demand requests/s, evenly spaced; first (a) a leaky bucket in Redis behind a lock, as commonly written: SET lock NX PX ${LOCK.lockTtlMs}, ` +
    `retry every ${LOCK.retryMs} ms while taken, GET the bucket, leak in the client, SET it, DEL the lock (a round trip each); ` +
    'then (b) one GCRA in Redis (RedisStore, strict), acquire(); both at the upstream\'s rate',
  'retry-after':
    `the upstream answers each 429 with Retry-After: ${RETRY_AFTER_S}; the pods share a GCRA in Redis at ${MISCONFIGURED}x its rate and call through limitedFetch: ` +
    '(a) shared: false, each pod holds on its own; (b) the default, holds shared fleet-wide in Redis',
  'quota-sync':
    `a quota upstream sending X-RateLimit-Limit/-Remaining/-Reset on every answer; the pods share tokenBucket({ capacity: ${QUOTA_SYNC_GENEROUS}x quota, period: 1s, mode: interval }) in Redis ` +
    '(too generous) through limitedFetch: (a) quota: false, the headers hold the key only at remaining 0; (b) the default: each remaining lowers the shared bucket, and the fleet\'s calls are booked into the provider\'s window; bursty demand',
  'auto-pacing':
    "a burst-intolerant upstream (--burst, default 2: room for the network's jitter at exactly its rate) stating an hourly quota far from spent on every answer; the pods share gcra({ limit: rate }) in Redis through limitedFetch with shape: 'auto'; each pod calls back to back",
  'auto-quota': "the quota upstream of quota-sync; the pods share gcra({ limit: quota }) in Redis through limitedFetch with shape: 'auto'; bursty demand",
};

/** The options of one simulation (the command's flags, parsed). */
export interface SimulateOptions {
  scenario: string;
  pods: number;
  seconds: number;
  rate: number;
  burst: number;
  quota?: number;
  /** lock-contention: the requests per second the pods want in total (default 500). */
  demand?: number;
  out: string;
  redis?: string | undefined;
  /** Print nothing (the caller prints the JSON document); the SVG and HTML are still written. */
  quiet?: boolean;
}

type PodSetup = Omit<PodConfig, 'pod' | 'scenario' | 'url' | 'seconds' | 'key' | 'redis'>;

/** What a scenario's pods and upstream are (see pod.ts for the pod config). */
interface ScenarioSetup {
  upstream: 'bucket' | 'quota';
  /** Bucket mode: the Retry-After (seconds) of every 429, instead of the time to the next token. */
  retryAfterS?: number;
  /** X-RateLimit-* headers on every answer (see {@link startUpstream}). */
  headers?: boolean;
  outage?: boolean;
  pod: PodSetup;
  /** Pod i's demand starts i / pods of a period after "go": the fleet's arrivals evenly spaced. */
  stagger?: boolean;
  /** A second phase, run after the first on the same upstream and Redis, printed beside it: [first's label, second's label, second's pods]. */
  versus?: [string, string, PodSetup];
}

/** What each scenario's pods and upstream are. */
function scenarioSetup(o: Resolved): ScenarioSetup {
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
    case 'lock-contention': {
      // Open demand: each pod wants one request every pods / demand seconds
      // whatever the limiter does, as traffic arrives; a request waits until
      // admitted or the run ends. Both limiters pace at the rate with burst 1.
      const demand = { count: 1, everyMs: (o.pods * 1000) / o.demand, deadlineMs: o.seconds * 1000 };
      return {
        upstream: 'bucket',
        stagger: true,
        pod: { store: 'lock', policy: gcraAt(o.rate, 1), lock: LOCK, demand },
        versus: ['lock + leaky bucket', 'cellgate GCRA', { store: 'redis', policy: gcraAt(o.rate, 1), demand }],
      };
    }
    case 'retry-after': {
      const pod = (fetch: NonNullable<PodSetup['fetch']>): PodSetup => ({ store: 'redis', policy: gcraAt(o.rate * MISCONFIGURED), fetch });
      return {
        upstream: 'bucket',
        retryAfterS: RETRY_AFTER_S,
        pod: pod({ shared: false }),
        versus: ['shared: false (each pod holds alone)', 'shared (holds fleet-wide in Redis)', pod({})],
      };
    }
    case 'quota-sync': {
      const pod = (fetch: NonNullable<PodSetup['fetch']>): PodSetup => ({
        store: 'redis',
        policy: { kind: 'quota', capacity: o.quota * QUOTA_SYNC_GENEROUS },
        demand: BURSTY,
        fetch,
      });
      return { upstream: 'quota', headers: true, pod: pod({ quota: false }), versus: ['quota: false', "quota: 'requests' (the default)", pod({})] };
    }
    case 'auto-pacing':
      // Steady demand (each pod's calls back to back): under the bursty demand
      // of auto-quota, whose calls give up after 250 ms of each 500, no
      // client can use much more than half a burst-intolerant upstream's rate.
      return { upstream: 'bucket', headers: true, pod: { store: 'redis', policy: gcraAt(o.rate), fetch: { shape: 'auto', name: 'auto' } } };
    case 'auto-quota':
      return { upstream: 'quota', headers: true, pod: { store: 'redis', policy: gcraAt(o.quota), demand: BURSTY, fetch: { shape: 'auto', name: 'auto' } } };
    default:
      throw new UsageError(`unknown scenario "${o.scenario}"`);
  }
}

/** One request as the upstream saw it, with the tags of a limitedFetch pod (fetch-loop.ts). */
interface Arrival extends SeenRequest {
  /** `x-id`: pod:serial. */
  id?: string | undefined;
  /** `x-checked`: the Date.now() at which limitedFetch let the request go. */
  checked?: number | undefined;
}

/** The mock upstream, listening. */
interface Upstream {
  url: string;
  /** `origin`: performance.now() at "go"; `seen`: every request, in arrival order; the 2xx and 429 counts. */
  state: { origin: number; seen: Arrival[]; ok: number; limited: number };
  start(): void;
  close(): Promise<void>;
}

/**
 * The mock upstream. Mode 'bucket': a token bucket of `burst` tokens refilled
 * at `rate` per second. Mode 'quota': `quota` requests per 1 s window, all
 * given back at each window boundary (windows counted from "go"), like a
 * provider's quota. Records every request it sees (time since `origin`, pod,
 * accepted).
 *
 * A 429's Retry-After is the whole seconds until a token (bucket) or the
 * next window (quota), at least 1 for a quota, or `retryAfterS` when given.
 * With `headers`, every answer says what is left: a quota says
 * `X-RateLimit-Limit`, `-Remaining` (left in the window) and `-Reset`
 * (seconds, fractional, until the window ends); a bucket states an hourly
 * quota of 100000 far from spent, as many burst-intolerant APIs do beside
 * their burst limit, so that its 429s come while its headers say quota
 * remains.
 */
function startUpstream({
  mode = 'bucket',
  rate,
  burst,
  quota,
  retryAfterS: fixedRetryAfterS,
  headers: sendHeaders = false,
}: {
  mode?: 'bucket' | 'quota';
  rate: number;
  burst: number;
  quota: number;
  retryAfterS?: number | undefined;
  headers?: boolean | undefined;
}): Promise<Upstream> {
  const full = mode === 'quota' ? quota : burst;
  let tokens = full;
  let last = performance.now();
  let window = 0;
  const seen: Arrival[] = [];
  const state = { origin: 0, seen, ok: 0, limited: 0 };
  const server = http.createServer((req, res) => {
    const now = performance.now();
    let retryAfterS: number;
    let windowEnd = 0;
    if (mode === 'quota') {
      const w = Math.floor((now - state.origin) / 1000);
      if (w !== window) {
        window = w;
        tokens = quota;
      }
      windowEnd = state.origin + (w + 1) * 1000;
      retryAfterS = Math.max(1, Math.ceil((windowEnd - now) / 1000));
    } else {
      tokens = Math.min(burst, tokens + ((now - last) * rate) / 1000);
      last = now;
      retryAfterS = Math.ceil((1 - tokens) / rate);
    }
    if (fixedRetryAfterS !== undefined) retryAfterS = fixedRetryAfterS;
    const pod = Number(req.headers['x-pod'] ?? -1);
    // How long the pod waited for its limiter before sending this request.
    const wait = req.headers['x-wait'] === undefined ? undefined : Number(req.headers['x-wait']);
    const id = req.headers['x-id'] === undefined ? undefined : String(req.headers['x-id']);
    const checked = req.headers['x-checked'] === undefined ? undefined : Number(req.headers['x-checked']);
    const ok = tokens >= 1;
    if (ok) tokens -= 1;
    const told: Record<string, string> = {};
    if (sendHeaders && mode === 'quota') {
      // What is left after this request, as the upstream's own numbers.
      told['x-ratelimit-limit'] = String(quota);
      told['x-ratelimit-remaining'] = String(Math.floor(tokens));
      told['x-ratelimit-reset'] = ((windowEnd - now) / 1000).toFixed(3);
    } else if (sendHeaders) {
      told['x-ratelimit-limit'] = String(HOURLY);
      told['x-ratelimit-remaining'] = String(HOURLY - state.ok - (ok ? 1 : 0));
      told['x-ratelimit-reset'] = String(Math.ceil(3600 - (now - state.origin) / 1000));
    }
    if (ok) {
      state.ok++;
      seen.push({ t: now - state.origin, pod, ok: true, wait, id, checked });
      res.writeHead(200, { 'content-type': 'text/plain', ...told });
      res.end('ok\n');
    } else {
      state.limited++;
      seen.push({ t: now - state.origin, pod, ok: false, wait, id, checked });
      res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': String(retryAfterS), ...told });
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
        /** Resets the bucket to full, forgets what was seen, and sets t = 0 (just before "go"). */
        start() {
          seen.length = 0;
          state.ok = 0;
          state.limited = 0;
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
  /** The first few of them, as text. */
  errorSamples: string[];
  fallback: number;
  dropped: number;
  demand: PodConfig['demand'];
  peak100ms: number;
  peak1s: number;
  utilization: number;
  waitP50: number;
  waitP99: number;
  waitMax: number;
  /** The wait quantiles over every request, a dropped one counted with its wait until it gave up. */
  waitAllP50: number;
  waitAllP99: number;
  outage: { down: number; up: number } | undefined;
  limitedInOutage?: number;
  /** What the upstream saw from {@link SETTLED_MS} after "go" on: arrivals, 2xx, 429. */
  after2s: { sent: number; ok: number; limited: number };
  /** 2xx after {@link SETTLED_MS} / what the upstream admits from then to the end of the run (its rate or quota x the seconds left). */
  utilizationAfter2s: number;
  /** retry-after: the holds the upstream announced and the arrivals inside them (see {@link holdsOf}). */
  holds?: Holds;
  /** A two-phase scenario's second phase (lock-contention: cellgate's GCRA). */
  versus?: Figures;
  /** A two-phase scenario's label of this phase. */
  label?: string;
  /** Where the picture went (set by {@link simulate}). */
  svg?: string;
  html?: string;
}

/**
 * The holds an upstream announced with Retry-After, and who called inside
 * them. The first 429 opens a window from its arrival to its Retry-After
 * moment; the first 429 arriving at or after a window's end opens the next.
 * An arrival strictly inside a window was let go (`x-checked`) either before
 * the pod told that window's 429 had handled it (`inFlight`: nothing could
 * hold it) or after (`late`: a hold written by then should have).
 */
export interface Holds {
  windows: { fromMs: number; toMs: number }[];
  /** Arrivals strictly inside a window. */
  inside: number;
  /** Of those, let go before the window's 429 was handled by its pod. */
  inFlight: number;
  /** Of those, let go after it (or not tagged). */
  late: number;
}

/** The hold windows of a run whose every 429 said Retry-After `retryAfterS` (see {@link Holds}). */
export function holdsOf(seen: Arrival[], retryAfterS: number, handled: Map<string, number>): Holds {
  const holds: Holds = { windows: [], inside: 0, inFlight: 0, late: 0 };
  let handledAt = -Infinity;
  for (const s of seen) {
    const open = holds.windows[holds.windows.length - 1];
    if (open !== undefined && s.t > open.fromMs && s.t < open.toMs) {
      holds.inside++;
      if (s.checked !== undefined && s.checked <= handledAt) holds.inFlight++;
      else holds.late++;
    } else if (!s.ok && (open === undefined || s.t >= open.toMs)) {
      holds.windows.push({ fromMs: s.t, toMs: s.t + retryAfterS * 1000 });
      // A 429 its pod never reported handling (it ended first) let nothing count as in flight.
      handledAt = (s.id !== undefined ? handled.get(s.id) : undefined) ?? Infinity;
    }
  }
  return holds;
}

/** The Redis a simulation's pods share: one started here, or the one given with --redis. */
interface SimulationRedis {
  host: string;
  port: number;
  kill?(signal: NodeJS.Signals): void;
  restart?(): Promise<void>;
  stop(): Promise<void>;
}

/** What one run of the pods left: their results and what the upstream saw. */
interface Measured {
  results: PodResult[];
  seen: Arrival[];
  ok: number;
  limited: number;
  outage: { planned: [number, number]; down?: number; up?: number } | undefined;
}

type Resolved = Required<Omit<SimulateOptions, 'redis' | 'quiet'>>;

/** Starts the pods of one phase against `upstream` and `redis`, and waits for them. */
async function runPhase(o: Resolved, setup: ScenarioSetup, podSetup: PodSetup, upstream: Upstream, redis: SimulationRedis | undefined, quiet: boolean): Promise<Measured> {
  const key = `simulate:${randomBytes(6).toString('hex')}`;
  const configs = Array.from({ length: o.pods }, (_, pod): PodConfig => ({
    pod,
    scenario: o.scenario,
    url: upstream.url,
    seconds: o.seconds,
    key,
    redis: redis && { host: redis.host, port: redis.port },
    ...podSetup,
    ...(setup.stagger && podSetup.demand ? { demand: { ...podSetup.demand, phaseMs: (pod * podSetup.demand.everyMs) / o.pods } } : {}),
  }));

  // The outage: ~1 s in the middle of the run (a third of it when shorter).
  const outageMs = Math.min(1000, (o.seconds * 1000) / 3);
  const outage: Measured['outage'] = setup.outage ? { planned: [(o.seconds * 1000 - outageMs) / 2, (o.seconds * 1000 + outageMs) / 2] } : undefined;
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
      if (process.stderr.isTTY && !quiet) {
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
  }
  const { seen, ok, limited } = upstream.state;
  return { results, seen: [...seen], ok, limited, outage };
}

/** The figures of one phase. */
function figuresOf(o: Resolved, setup: ScenarioSetup, podSetup: PodSetup, m: Measured): Figures {
  const quotaUpstream = setup.upstream === 'quota';
  const sum = (f: 'sent' | 'errors' | 'other' | 'fallback' | 'dropped') => m.results.reduce((a, r) => a + r[f], 0);
  const times = m.seen.map((s) => s.t).sort((a, b) => a - b);
  const waits = m.results.flatMap((r) => r.waits).sort((a, b) => a - b);
  const all = [...waits, ...m.results.flatMap((r) => r.gaveUp)].sort((a, b) => a - b);
  const settled = m.seen.filter((s) => s.t >= SETTLED_MS);
  const settledOk = settled.filter((s) => s.ok).length;
  const figures: Figures = {
    scenario: o.scenario,
    pods: o.pods,
    seconds: o.seconds,
    rate: quotaUpstream ? o.quota : o.rate,
    burst: o.burst,
    quota: quotaUpstream ? o.quota : undefined,
    sent: sum('sent'),
    ok: m.ok,
    limited: m.limited,
    errors: sum('errors') + sum('other'),
    errorSamples: m.results.flatMap((r) => r.errorSamples ?? []).slice(0, 3),
    fallback: sum('fallback'),
    dropped: sum('dropped'),
    demand: podSetup.demand,
    peak100ms: peakInWindow(times, 100),
    peak1s: peakInWindow(times, 1000),
    utilization: m.ok / ((quotaUpstream ? o.quota : o.rate) * o.seconds),
    waitP50: quantile(waits, 0.5),
    waitP99: quantile(waits, 0.99),
    waitMax: waits.length ? waits[waits.length - 1]! : 0,
    waitAllP50: quantile(all, 0.5),
    waitAllP99: quantile(all, 0.99),
    outage: m.outage && m.outage.down !== undefined ? { down: m.outage.down, up: m.outage.up ?? m.outage.planned[1] } : undefined,
    after2s: { sent: settled.length, ok: settledOk, limited: settled.length - settledOk },
    utilizationAfter2s: o.seconds * 1000 > SETTLED_MS ? settledOk / (((quotaUpstream ? o.quota : o.rate) * (o.seconds * 1000 - SETTLED_MS)) / 1000) : 0,
  };
  if (figures.outage) {
    const [a, b] = [figures.outage.down, figures.outage.up];
    figures.limitedInOutage = m.seen.filter((s) => !s.ok && s.t >= a && s.t < b + 500).length;
  }
  if (setup.retryAfterS !== undefined) {
    const handled = new Map(m.results.flatMap((r) => r.handled429 ?? []));
    figures.holds = holdsOf(m.seen, setup.retryAfterS, handled);
  }
  return figures;
}

/** The timeline of one phase: 100 ms buckets from "go" to the last request seen, with each bucket's waits when `waits`. */
function phaseTimeline(o: Resolved, setup: ScenarioSetup, f: Figures, m: Measured, title: string, waits?: { scaleMs: number }): Timeline {
  const span = Math.max(o.seconds * 1000, ...m.seen.map((s) => s.t + 1));
  const count = Math.ceil(span / BUCKET_MS);
  const buckets = Array.from({ length: count }, () => ({ accepted: 0, rejected: 0 }));
  const bucketWaits = Array.from({ length: count }, (): number[] => []);
  for (const s of m.seen) {
    const i = Math.min(count - 1, Math.max(0, Math.floor(s.t / BUCKET_MS)));
    if (s.ok) buckets[i]!.accepted++;
    else buckets[i]!.rejected++;
    if (s.wait !== undefined) bucketWaits[i]!.push(s.wait);
  }
  return {
    title,
    bucketMs: BUCKET_MS,
    buckets,
    allowedPerBucket: (f.rate * BUCKET_MS) / 1000,
    seconds: o.seconds,
    pods: { count: o.pods, requests: m.seen },
    ...(f.outage ? { shaded: { fromMs: f.outage.down, toMs: f.outage.up, label: 'Redis down' } } : {}),
    ...(f.holds ? { shaded: f.holds.windows.map((w) => ({ ...w, label: 'hold' })) } : {}),
    ...(waits
      ? {
          waits: {
            scaleMs: waits.scaleMs,
            buckets: bucketWaits.map((w) => {
              w.sort((a, b) => a - b);
              return { p50: quantile(w, 0.5), p99: quantile(w, 0.99), count: w.length };
            }),
          },
        }
      : {}),
  };
}

/** Runs one simulation, prints its table and writes its SVG and HTML. Resolves with the figures (a two-phase scenario's second in `versus`). */
export async function simulate(options: SimulateOptions): Promise<Figures> {
  if (!Object.hasOwn(SCENARIOS, options.scenario)) {
    throw new UsageError(`unknown scenario "${options.scenario}"; known: ${Object.keys(SCENARIOS).join(', ')}`);
  }
  const o = { quota: scenarioDefaults(options.scenario).quota, ...options, demand: options.demand ?? scenarioDefaults(options.scenario).demand ?? options.rate };
  const setup = scenarioSetup(o);
  // Phases run one after another, not at once: each gets the whole machine
  // and the whole Redis, so neither one's load shows up in the other's waits.
  const phases = [setup.pod, ...(setup.versus ? [setup.versus[2]] : [])];
  let redis: SimulationRedis | undefined;
  if (phases.some((p) => p.store !== 'memory')) {
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
  const upstream = await startUpstream({ mode: setup.upstream, rate: o.rate, burst: o.burst, quota: o.quota, retryAfterS: setup.retryAfterS, headers: setup.headers });
  const measured: Measured[] = [];
  try {
    for (const pod of phases) measured.push(await runPhase(o, setup, pod, upstream, redis, options.quiet === true));
  } finally {
    await upstream.close();
    await redis?.stop();
  }
  const figures = measured.map((m, i): Figures => ({ ...figuresOf(o, setup, phases[i]!, m), ...(setup.versus ? { label: setup.versus[i] as string } : {}) }));

  const quotaUpstream = setup.upstream === 'quota';
  const upstreamText = quotaUpstream ? `upstream quota ${o.quota} per 1 s window` : `upstream ${o.rate}/s burst ${o.burst}`;
  const title = `cellgate simulate ${o.scenario}: ${o.pods} pods, ${o.seconds} s, ${upstreamText}`;
  let svg: string;
  let rows: string[][];
  if (setup.versus) {
    // One wait scale for both, so that the picture compares them.
    const scaleMs = Math.max(...figures.map((f) => f.waitMax));
    svg = stackSvg(measured.map((m, i) => timelineSvg(phaseTimeline(o, setup, figures[i]!, m, `${title}: (${'ab'[i]}) ${setup.versus![i]}`, { scaleMs }))), title);
    rows = LISTENING.has(o.scenario) ? listeningRows(figures, [setup.versus[0], setup.versus[1]]) : versusRows(figures[0]!, figures[1]!, [setup.versus[0], setup.versus[1]]);
  } else {
    svg = timelineSvg(phaseTimeline(o, setup, figures[0]!, measured[0]!, title));
    rows = LISTENING.has(o.scenario) ? listeningRows(figures) : tableRows(figures[0]!);
  }
  const dir = resolve(o.out);
  mkdirSync(dir, { recursive: true });
  const svgPath = join(dir, `${o.scenario}.svg`);
  const htmlPath = join(dir, `${o.scenario}.html`);
  writeFileSync(svgPath, svg);
  writeFileSync(htmlPath, htmlPage({ title, svg, rows }));

  // A column's width counts only the rows where it is not the last: the demand row's long value spans the others.
  const widths = [0, 1].map((c) => Math.max(0, ...rows.filter((r) => r.length > c + 1).map((r) => r[c]!.length)));
  const lines = [
    `cellgate simulate: ${o.scenario} (${o.pods} pods, ${o.seconds} s, ${quotaUpstream ? `upstream quota ${o.quota} per 1 s window` : `upstream ${o.rate}/s with burst ${o.burst}`})`,
    `  ${SCENARIOS[o.scenario]}`,
    '',
    ...rows.map((r) => `  ${r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c]!))).join('  ')}`.trimEnd()),
    '',
    `  wrote ${svgPath}`,
    `        ${htmlPath}`,
  ];
  if (options.quiet !== true) process.stdout.write(`${lines.join('\n')}\n`);
  const first = { ...figures[0]!, svg: svgPath, html: htmlPath };
  return setup.versus ? { ...first, versus: figures[1]! } : first;
}

/** The two phases' figures side by side: a header row, then [label, first, second] rows. */
function versusRows(a: Figures, b: Figures, labels: [string, string]): string[][] {
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  const row = (label: string, f: (x: Figures) => string): string[] => [label, f(a), f(b)];
  const rows: string[][] = [
    ['demand', `${Math.round((a.pods * 1000) / a.demand!.everyMs)}/s in total, evenly spaced; each request waits until admitted or the run ends`],
    ['', ...labels],
    row('requests completed', (x) => String(x.sent)),
    row('upstream 2xx', (x) => String(x.ok)),
    row('upstream 429', (x) => String(x.limited)),
    row('throughput', (x) => `${(x.sent / x.seconds).toFixed(1)}/s`),
    row('not admitted by end', (x) => String(x.dropped)),
  ];
  if (a.errors + b.errors > 0) rows.push(row('errors', (x) => String(x.errors)));
  rows.push(
    row('peak in any 100 ms', (x) => String(x.peak100ms)),
    row('utilization', (x) => `${(x.utilization * 100).toFixed(1)}%`),
    row('admission wait p50', (x) => ms(x.waitP50)),
    row('admission wait p99', (x) => ms(x.waitP99)),
    row('admission wait max', (x) => ms(x.waitMax)),
    // The percentiles above are of the admitted only: a limiter that admits few has few long waits among them.
    row('wait p50 incl. unadmitted', (x) => ms(x.waitAllP50)),
    row('wait p99 incl. unadmitted', (x) => ms(x.waitAllP99)),
  );
  return rows;
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
  if (f.errors > 0) rows.push(['errors', `${f.errors}${f.errorSamples.length > 0 ? ` (${f.errorSamples.join('; ')})` : ''}`]);
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

/**
 * The table of a scenario about listening to the upstream: one column of
 * values per phase (a header row of labels when there are two), the
 * figures after {@link SETTLED_MS} under the whole run's, and the holds
 * when the upstream announced them.
 */
function listeningRows(figs: Figures[], labels?: [string, string]): string[][] {
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  const row = (label: string, f: (x: Figures) => string): string[] => [label, ...figs.map(f)];
  const a = figs[0]!;
  const capacity = a.quota !== undefined ? `${a.quota} per window` : `${a.rate}/s`;
  const rows: string[][] = [];
  if (a.demand) rows.push(['demand', `${a.demand.count} requests at once per pod every ${a.demand.everyMs} ms, each waits at most ${a.demand.deadlineMs} ms`]);
  if (labels) rows.push(['', ...labels]);
  rows.push(row('requests sent', (x) => String(x.sent)), row('upstream 2xx', (x) => String(x.ok)), row('upstream 429', (x) => String(x.limited)));
  if (figs.some((x) => x.dropped > 0)) rows.push(row('gave up waiting', (x) => String(x.dropped)));
  if (figs.some((x) => x.errors > 0)) rows.push(row('errors', (x) => String(x.errors)));
  rows.push(
    row('utilization', (x) => `${pct(x.utilization)} (2xx / (${capacity} x ${x.seconds} s))`),
    row('arrivals after 2 s', (x) => String(x.after2s.sent)),
    row('2xx after 2 s', (x) => String(x.after2s.ok)),
    row('429 after 2 s', (x) => `${x.after2s.limited} (${pct(x.after2s.sent === 0 ? 0 : x.after2s.limited / x.after2s.sent)})`),
    row('utilization after 2 s', (x) => `${pct(x.utilizationAfter2s)} (2xx after 2 s / (${capacity} x ${Math.max(0, x.seconds - SETTLED_MS / 1000)} s))`),
  );
  if (figs.some((x) => x.holds)) {
    rows.push(
      row('hold windows', (x) => String(x.holds?.windows.length ?? 0)),
      row('arrivals inside holds', (x) => String(x.holds?.inside ?? 0)),
      row('  let go before the hold', (x) => String(x.holds?.inFlight ?? 0)),
      row('  let go after it (late)', (x) => String(x.holds?.late ?? 0)),
    );
  }
  rows.push(
    row('peak in any 100 ms', (x) => String(x.peak100ms)),
    row('peak in any 1 s', (x) => String(x.peak1s)),
    row('admission wait p50', (x) => ms(x.waitP50)),
    row('admission wait p99', (x) => ms(x.waitP99)),
  );
  return rows;
}

/** One phase in the JSON document of `cellgate simulate --json` (ms since "go"; counts of upstream arrivals unless said). */
export interface PhaseReport {
  /** A two-phase scenario's label of the phase; absent with one phase. */
  label?: string;
  /** Requests the pods sent (for limitedFetch pods: calls that reached fetch). */
  sent: number;
  /** 2xx and 429 answers the upstream gave. */
  ok: number;
  limited: number;
  /** Network errors and other statuses; requests given up unsent at their deadline. */
  errors: number;
  /** The first few errors, as text. */
  errorSamples?: string[];
  dropped: number;
  /** What the upstream saw at t >= 2000 ms. */
  after2s: { sent: number; ok: number; limited: number };
  /** 2xx / what the upstream admits in the run; the same from 2 s on. */
  utilization: number;
  utilizationAfter2s: number;
  peak100ms: number;
  peak1s: number;
  waitP50Ms: number;
  waitP99Ms: number;
  /** retry-after only: see {@link Holds}. */
  holds?: Holds;
  /** The redis-outage scenarios: when Redis was down, and the 429s from then to 0.5 s after. */
  outage?: { downMs: number; upMs: number; limited: number };
}

/**
 * One scenario in the JSON document of `cellgate simulate --json`: its
 * run, the upstream, each phase's figures, and at the top the figures of
 * the scenario's configuration under test: the only phase's, or for a
 * two-phase scenario its second, (b) (the default or the fix; `phases[0]`
 * is (a), what it is compared with).
 */
export interface ScenarioReport extends PhaseReport {
  scenario: string;
  description: string;
  pods: number;
  seconds: number;
  upstream: { mode: 'bucket'; rate: number; burst: number } | { mode: 'quota'; quota: number };
  /** The pods' bursty or open demand; absent: as fast as admitted. */
  demand?: { count: number; everyMs: number; deadlineMs: number };
  phases: PhaseReport[];
  /** The files written. */
  svg: string;
  html: string;
}

/**
 * The document `cellgate simulate --json` prints: one entry per scenario, in the order asked.
 *
 * @example
 * ```ts
 * const doc: SimulateReport = JSON.parse(stdout);
 * const [retry] = doc.scenarios;
 * console.log(retry.phases[1].holds?.late); // 0: no call let go after a hold was written arrived inside it
 * ```
 */
export interface SimulateReport {
  scenarios: ScenarioReport[];
}

/**
 * The JSON entry of one run's figures (as {@link simulate} resolves them).
 *
 * @example
 * ```ts
 * const doc: SimulateReport = { scenarios: [scenarioReport(await simulate({ ...options, quiet: true }))] };
 * ```
 */
export function scenarioReport(f: Figures): ScenarioReport {
  const phase = (x: Figures, label?: string): PhaseReport => ({
    ...(label !== undefined ? { label } : {}),
    sent: x.sent,
    ok: x.ok,
    limited: x.limited,
    errors: x.errors,
    ...(x.errorSamples.length > 0 ? { errorSamples: x.errorSamples } : {}),
    dropped: x.dropped,
    after2s: x.after2s,
    utilization: round(x.utilization),
    utilizationAfter2s: round(x.utilizationAfter2s),
    peak100ms: x.peak100ms,
    peak1s: x.peak1s,
    waitP50Ms: round(x.waitP50),
    waitP99Ms: round(x.waitP99),
    ...(x.holds ? { holds: { ...x.holds, windows: x.holds.windows.map((w) => ({ fromMs: round(w.fromMs), toMs: round(w.toMs) })) } } : {}),
    ...(x.outage ? { outage: { downMs: round(x.outage.down), upMs: round(x.outage.up), limited: x.limitedInOutage ?? 0 } } : {}),
  });
  const phases = f.versus ? [phase(f, f.label), phase(f.versus, f.versus.label)] : [phase(f)];
  return {
    scenario: f.scenario,
    description: SCENARIOS[f.scenario]!,
    pods: f.pods,
    seconds: f.seconds,
    upstream: f.quota !== undefined ? { mode: 'quota', quota: f.quota } : { mode: 'bucket', rate: f.rate, burst: f.burst },
    ...(f.demand ? { demand: { count: f.demand.count, everyMs: round(f.demand.everyMs), deadlineMs: f.demand.deadlineMs } } : {}),
    ...phases[phases.length - 1]!,
    phases,
    svg: f.svg ?? '',
    html: f.html ?? '',
  };
}

/** Two decimals: the document carries measurements, not float noise. */
const round = (v: number): number => Math.round(v * 100) / 100;
