// One contender of the leased-mode benchmark, alone in its own process so that
// no other contender's code shares its JIT state (V8's call-site feedback is
// per process: a loop that has called one limiter is slower at calling
// another). Decides on hot keys (1% of 10k keys take 90% of hits) for the
// given duration, then prints one JSON line: decisions/s (admitted or not),
// the decisions made and how many were admitted (the caller shows the share).
//   node --import tsx bench/hot-keys.ts CONTENDER REDIS_HOST:PORT DURATION_MS
// CONTENDER: embedded | leased-sync | leased-async | strict | rlf
// Loops: embedded and leased-sync, one caller deciding 1000 times per
// event-loop turn; leased-async, 1000 calls started per turn; strict and rlf,
// 1000 concurrent callers each awaiting its answer.
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { EmbeddedStore, Limiter, gcra } from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { pickHot, rng } from '../build/lib/src/cli/key-picks.js';

const [contender, address, duration] = process.argv.slice(2);
const [host, port] = address!.includes(':') ? address!.split(':') : ['127.0.0.1', address];
const DURATION_MS = Number(duration);
const CALLERS = 1000;
// A limit high enough that nearly every decision admits.
const policy = gcra({ limit: 100_000, period: '1s', burst: 10_000 });

/** One caller deciding back to back, 1000 decisions between yields to I/O (a gateway's event loop). */
async function chunkLoop(decide: (key: string) => boolean | Promise<boolean>, ms: number) {
  const pick = pickHot(rng(3));
  let n = 0;
  let admitted = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (let i = 0; i < 1000; i++, n++) {
      const r = decide(pick());
      if (typeof r === 'boolean' ? r : await r) admitted++;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { perSecond: (n / (performance.now() - start)) * 1000, decisions: n, admitted };
}

/**
 * A gateway's event loop with async decisions: each turn starts 1000 calls
 * without waiting for them (a call whose key holds no lease waits for Redis;
 * the rest resolve at once), then yields to I/O; at most 10k calls in flight.
 */
async function pumpLoop(decide: (key: string) => Promise<boolean>, ms: number) {
  const pick = pickHot(rng(3));
  let done = 0;
  let admitted = 0;
  let inFlight = 0;
  const finish = (ok: boolean) => {
    inFlight--;
    done++;
    if (ok) admitted++;
  };
  const start = performance.now();
  while (performance.now() - start < ms) {
    if (inFlight < 10_000) {
      for (let i = 0; i < 1000; i++, inFlight++) void decide(pick()).then(finish);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { perSecond: (done / (performance.now() - start)) * 1000, decisions: done, admitted };
}

/** 1000 concurrent callers, each awaiting its decision (the Redis contenders' best shape). */
async function closedLoop(decide: (key: string) => Promise<boolean>, ms: number) {
  const pick = pickHot(rng(3));
  let n = 0;
  let admitted = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (performance.now() - start < ms) {
        if (await decide(pick())) admitted++;
        n++;
      }
    }),
  );
  return { perSecond: (n / (performance.now() - start)) * 1000, decisions: n, admitted };
}

const client = new Redis({ host: host!, port: Number(port) });
let result: { perSecond: number; decisions: number; admitted: number };
let sources: unknown;
// Each contender is warmed up for half the duration, then measured.
if (contender === 'embedded') {
  const limiter = new Limiter({ policy, store: new EmbeddedStore() });
  const decide = (key: string) => limiter.limitSync(key).allowed;
  await chunkLoop(decide, DURATION_MS / 2);
  result = await chunkLoop(decide, DURATION_MS);
} else if (contender === 'leased-sync') {
  const store = new RedisStore({ client, prefix: 'leased-sync:', mode: 'leased' });
  const limiter = new Limiter({ policy, store });
  const decide = (key: string) => limiter.limitSync(key).allowed;
  await chunkLoop(decide, DURATION_MS / 2);
  result = await chunkLoop(decide, DURATION_MS);
  sources = store.stats().decisions;
} else if (contender === 'leased-async') {
  const store = new RedisStore({ client, prefix: 'leased-async:', mode: 'leased' });
  const limiter = new Limiter({ policy, store });
  const decide = async (key: string) => (await limiter.limit(key)).allowed;
  await pumpLoop(decide, DURATION_MS / 2);
  result = await pumpLoop(decide, DURATION_MS);
  sources = store.stats().decisions;
} else if (contender === 'strict') {
  const limiter = new Limiter({ policy, store: new RedisStore({ client, prefix: 'strict:' }) });
  const decide = async (key: string) => (await limiter.limit(key)).allowed;
  await closedLoop(decide, DURATION_MS / 2);
  result = await closedLoop(decide, DURATION_MS);
} else {
  const rlf = new RateLimiterRedis({ storeClient: client, points: 100_000, duration: 1, keyPrefix: 'rlfhot' });
  const decide = (key: string) => rlf.consume(key).then(() => true, () => false);
  await closedLoop(decide, DURATION_MS / 2);
  result = await closedLoop(decide, DURATION_MS);
}
process.stdout.write(`${JSON.stringify({ ...result, sources })}\n`);
client.disconnect();
