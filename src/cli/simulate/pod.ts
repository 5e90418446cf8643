// One "pod" of `cellgate simulate`: a separate OS process that, once the
// parent writes "go" on stdin, calls the mock upstream for the given number of
// seconds, then prints one JSON line with what it did and exits. The runner
// starts the compiled file (build/lib/src/cli/simulate/pod.js) with node, no
// TypeScript loader:
//   node pod.js '{"pod":0,"url":"http://127.0.0.1:PORT/","seconds":3,"policy":{"kind":"gcra","limit":50,"burst":5},"store":"memory"}'
import http from 'node:http';
import type { Redis } from 'ioredis';
import { Limiter, gcra, tokenBucket, AcquireTimeoutError, type Decision } from '../../index.js';
import type { FallbackOption } from '../../stores/redis/index.js';
import { bursts } from './bursts.js';
import type { LockedLeakyBucketOptions } from './lock-bucket.js';

/** A pod's config, built by run.ts for each scenario and passed as JSON in argv[2]. */
export interface PodConfig {
  pod: number;
  scenario: string;
  /** The mock upstream. */
  url: string;
  seconds: number;
  /** The limiter key, shared by the fleet (default 'upstream'). */
  key?: string;
  /** GCRA at `limit` per second, or tokenBucket({ capacity, period: 1s, mode: interval }). */
  policy: { kind: 'gcra'; limit: number; burst?: number } | { kind: 'quota'; capacity: number };
  /**
   * 'memory': each pod its own limiter; 'redis': one RedisStore on `redis`;
   * 'lock': a leaky bucket in `redis` behind a SET NX lock (lock-bucket.ts) at
   * the GCRA policy's limit, its capacity the policy's burst.
   */
  store: 'memory' | 'redis' | 'lock';
  redis?: { host: string; port: number } | undefined;
  timeoutMs?: number;
  fallback?: FallbackOption;
  /** store 'lock': the lock's TTL and the fixed retry sleep. */
  lock?: Pick<LockedLeakyBucketOptions, 'lockTtlMs' | 'retryMs'>;
  /**
   * Absent: send as fast as the limiter admits (at most MAX_INFLIGHT requests
   * in flight). Present: `count` requests arrive at once every `everyMs`; each
   * waits at most `deadlineMs` for its turn, then is given up ("dropped").
   * The first arrive `phaseMs` after "go" (so that pods can take turns).
   */
  demand?: { count: number; everyMs: number; deadlineMs: number; phaseMs?: number };
  /**
   * Present: the pod calls the upstream through `limitedFetch` (global
   * `fetch`) over its Limiter on the RedisStore (store 'redis' only), with
   * these of its options; `name` names the Limiter (`shape: 'auto'` needs
   * one). Without `demand`, fetch-loop.ts's FETCH_LOOPS calls loop back to back.
   */
  fetch?: { shared?: boolean; quota?: false; shape?: 'auto'; name?: string };
}

/** What a pod prints as its last line. */
export interface PodResult {
  pod: number;
  sent: number;
  ok: number;
  limited: number;
  other: number;
  errors: number;
  fallback: number;
  dropped: number;
  /** The first few errors and other statuses, as text (what `errors` counts). */
  errorSamples?: string[];
  /** ms from asking the limiter to being admitted, per request sent. */
  waits: number[];
  /** ms from asking the limiter to giving up, per request dropped. */
  gaveUp: number[];
  /**
   * Through limitedFetch: each 429 answered, as [the request's `x-id`, the
   * Date.now() at which limitedFetch returned it]: by then its hold is
   * written (for the fleet, when shared).
   */
  handled429?: [string, number][];
}

const MAX_INFLIGHT = 32;

const config = JSON.parse(process.argv[2] ?? '{}') as PodConfig;
const { pod, url, seconds, demand } = config;

const p = config.policy;
const policy =
  p.kind === 'gcra'
    ? gcra({ limit: p.limit, period: '1s', burst: p.burst ?? 1 })
    : p.kind === 'quota'
      ? tokenBucket({ capacity: p.capacity, period: '1s', mode: 'interval' })
      : undefined;
// The type says what run.ts sends, but it arrives as JSON: a kind it does not know is a bug there, said loudly.
if (policy === undefined) throw new Error(`unknown policy ${JSON.stringify(p)}`);

/** What the pod's loops need of a limiter: Limiter, or the lock scenario's bucket. */
let limiter: { acquire(key: string, options: { maxWaitMs: number }): Promise<Decision | void> };
let client: Redis | undefined;
/** store 'redis': the store, which limitedFetch's `shared` holds go through. */
let limitedStore: { close(): Promise<void> } | undefined;
if (config.store === 'lock') {
  const [{ Redis }, { lockedLeakyBucket }] = await Promise.all([import('ioredis'), import('./lock-bucket.js')]);
  client = new Redis({ host: config.redis!.host, port: config.redis!.port });
  await client.ping();
  if (p.kind !== 'gcra' || config.lock === undefined) throw new Error(`store lock needs a gcra policy and lock options: ${JSON.stringify(config)}`);
  limiter = lockedLeakyBucket(client, { rate: p.limit, capacity: p.burst ?? 1, ...config.lock });
} else if (config.store === 'memory') {
  // The naive setup: every pod believes it alone talks to the upstream.
  limiter = new Limiter({ policy });
} else if (config.store === 'redis') {
  // Loaded only here: ioredis is an optional peer dependency, and the stampede scenario runs without it.
  const [{ Redis }, { RedisStore }] = await Promise.all([import('ioredis'), import('../../stores/redis/index.js')]);
  // Reconnects every 50 ms after Redis goes away (redis-outage kills it).
  const c = new Redis({ host: config.redis!.host, port: config.redis!.port, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  client = c;
  c.on('error', () => {}); // connection errors during an outage are expected; the store's breaker handles them
  await c.ping();
  const store = new RedisStore({
    client: c,
    prefix: 'cellgate-sim:',
    // A generous default: most runs are about spacing, not about the fallback.
    timeoutMs: config.timeoutMs ?? 5_000,
    ...(config.fallback !== undefined ? { fallback: config.fallback } : {}),
  });
  limiter = new Limiter({ policy, store, ...(config.fetch?.name !== undefined ? { name: config.fetch.name } : {}) });
  limitedStore = store;
} else {
  throw new Error(`unknown store ${config.store}`);
}
const key = config.key ?? 'upstream';
if (config.fetch !== undefined && !(limiter instanceof Limiter)) throw new Error(`fetch needs store redis: ${JSON.stringify(config)}`);

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const target = new URL(url);
/** One upstream call: resolves with the status code, or 0 on a network error. */
function call(waitMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, method: 'GET', agent, headers: { 'x-pod': String(pod), 'x-wait': waitMs.toFixed(2) } },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', () => resolve(0));
      },
    );
    req.once('error', () => resolve(0));
    req.end();
  });
}

// Loaded before "ready", so that no pod spends its first moments after "go" loading modules.
const fetchLoop = config.fetch === undefined ? undefined : (await import('./fetch-loop.js')).fetchLoop;
const go = new Promise<unknown>((resolve) => process.stdin.once('data', resolve));
process.stdout.write('ready\n');
await go;

if (fetchLoop !== undefined) {
  // limitedFetch does its own admission, holds and sending: fetch-loop.ts.
  const result = await fetchLoop(config, limiter as Limiter, key);
  await limitedStore?.close();
  client?.disconnect();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  // The rest of this file is the acquire-then-send pod.
  process.exit(0);
}

const start = performance.now();
const end = start + seconds * 1000;
const waits: number[] = [];
const gaveUp: number[] = [];
const inflight = new Set<Promise<void>>();
const counts = { sent: 0, ok: 0, limited: 0, other: 0, errors: 0, fallback: 0, dropped: 0 };

function send(decision: Decision | void, asked: number): void {
  if (decision?.source === 'fallback') counts.fallback++;
  const wait = performance.now() - asked;
  waits.push(wait);
  counts.sent++;
  const q = call(wait).then((status) => {
    if (status >= 200 && status < 300) counts.ok++;
    else if (status === 429) counts.limited++;
    else if (status === 0) counts.errors++;
    else counts.other++;
  });
  inflight.add(q);
  q.finally(() => inflight.delete(q));
}

if (demand === undefined) {
  // As fast as admitted, with a bounded number of requests in flight (a pod's worker pool).
  for (;;) {
    const left = end - performance.now();
    if (left <= 0) break;
    if (inflight.size >= MAX_INFLIGHT) {
      await Promise.race(inflight);
      continue;
    }
    const asked = performance.now();
    let decision: Decision | void;
    try {
      // Waits its turn; a turn after the end of the run is not booked.
      decision = await limiter.acquire(key, { maxWaitMs: Math.floor(left) });
    } catch (error) {
      if (error instanceof AcquireTimeoutError) break;
      throw error;
    }
    send(decision, asked);
    // A decision made without waiting (an open fallback) must not starve the event loop.
    if (decision?.source === 'fallback') await new Promise((r) => setImmediate(r));
  }
} else {
  // Bursty demand: `count` requests at once every `everyMs`; each gives up after `deadlineMs`.
  const one = async (asked: number) => {
    const maxWaitMs = Math.max(0, Math.floor(Math.min(demand.deadlineMs, end - asked)));
    try {
      send(await limiter.acquire(key, { maxWaitMs }), asked);
    } catch (error) {
      if (!(error instanceof AcquireTimeoutError)) throw error;
      counts.dropped++;
      gaveUp.push(performance.now() - asked);
    }
  };
  await bursts(demand, start, end, one);
}
await Promise.all(inflight);
agent.destroy();
client?.disconnect();
const round = (ms: number[]) => ms.map((w) => Math.round(w * 100) / 100);
const result: PodResult = { pod, ...counts, waits: round(waits), gaveUp: round(gaveUp) };
process.stdout.write(`${JSON.stringify(result)}\n`);
