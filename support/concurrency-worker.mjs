// One process of the concurrency-gate fleet tests (test/concurrency-fleet.test.ts):
// a separate OS process using the built package against a Redis (or a Redis
// Cluster) with a `concurrency` gate. It prints "ready" once connected (and,
// with `pods`, once it counts that many stores in the fleet), waits for "go"
// on stdin, then runs its mode and prints one JSON line as its last.
//   node concurrency-worker.mjs '<JSON config>'
// Config: { ports: [port...], cluster?: bool, prefix, keys: [key...], limit, leaseMs,
//           mode: 'loop' | 'hog' | 'probe', pods?, timeoutMs?, probeIntervalMs?,
//           loops?, durationMs?, holdMinMs?, holdMaxMs? }
// - loop: per key, `loops` concurrent loops of acquire -> hold a random
//   holdMinMs..holdMaxMs -> release, for durationMs. Each holding records
//   [key index, enter, leave, source] on one clock shared by every process of
//   the machine (process.hrtime: CLOCK_MONOTONIC, ns; not each process's
//   performance.timeOrigin, taken once from the wall clock at its start). `enter` is read after acquire() resolved and
//   `leave` before release() is called: the recorded interval lies inside the
//   interval the permit was held, so an overlap of recorded intervals is an
//   overlap of holders.
// - hog: acquires `limit` permits of keys[0] and holds them for good; prints
//   "held AT" once they are held and "renewed AT" after each renewal (AT: the
//   latest time on Redis's clock the permits count from, read from the permits).
//   It waits to be killed.
// - probe: acquires one permit of keys[0] (waiting up to durationMs) and prints
//   when Redis admitted it (`at`, Redis's clock) and when acquire resolved.
import Redis, { Cluster } from 'ioredis';
import { Limiter, concurrency } from 'cellgate';
import { RedisStore } from 'cellgate/redis';

const config = JSON.parse(process.argv[2]);
const { ports, prefix, keys, limit, leaseMs, mode } = config;
const client = config.cluster
  ? new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })), { redisOptions: { maxRetriesPerRequest: 1 } })
  : new Redis({ port: ports[0], host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => 50 });
client.on('error', () => {}); // an outage is under test: reconnects are the client's business
const store = new RedisStore({
  client,
  prefix,
  ...(config.timeoutMs === undefined ? {} : { timeoutMs: config.timeoutMs }),
  ...(config.probeIntervalMs === undefined ? {} : { probeIntervalMs: config.probeIntervalMs }),
});
await store.ready();
const want = config.pods ?? 0;
while ((store.stats().fleetSize ?? 0) < want) await new Promise((r) => setTimeout(r, 50));
const limiter = new Limiter({ policy: concurrency({ limit, leaseMs }), store });
// The machine's monotonic clock (CLOCK_MONOTONIC, the same in every process), in ms.
const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

process.stdout.write('ready\n');
await new Promise((resolve) => process.stdin.once('data', resolve));

if (mode === 'loop') {
  const { loops, durationMs, holdMinMs, holdMaxMs } = config;
  const startedAt = now();
  const end = startedAt + durationMs;
  const intervals = [];
  const sources = {};
  let lost = 0;
  await Promise.all(
    keys.flatMap((key, k) =>
      Array.from({ length: loops }, async () => {
        while (now() < end) {
          const permit = await limiter.acquire(key);
          const enter = now(); // after acquire resolved: the permit is held from before
          permit.signal.addEventListener('abort', () => lost++);
          await sleep(holdMinMs + Math.random() * (holdMaxMs - holdMinMs));
          const leave = now(); // before release is called: the permit is held until after
          intervals.push([k, enter, leave, permit.source]);
          sources[permit.source] = (sources[permit.source] ?? 0) + 1;
          await permit.release();
        }
      }),
    ),
  );
  const stats = store.stats();
  process.stdout.write(`${JSON.stringify({ startedAt, stoppedAt: end, intervals, sources, lost, opens: stats.opens, decisions: stats.decisions, fleetSize: stats.fleetSize })}\n`);
} else if (mode === 'hog') {
  const permits = [];
  for (let i = 0; i < limit; i++) permits.push(await limiter.acquire(keys[0]));
  // `at` is internal (when the permit's holders count from, on Redis's clock): read here only to time the lease.
  const latest = () => Math.max(...permits.map((p) => p.at));
  let seen = latest();
  process.stdout.write(`held ${seen}\n`);
  for (;;) {
    await sleep(2);
    const at = latest();
    if (at !== seen && permits.every((p) => p.held)) {
      seen = at;
      process.stdout.write(`renewed ${at}\n`);
    }
  }
} else if (mode === 'probe') {
  const askedAt = Date.now();
  const permit = await limiter.acquire(keys[0], { maxWaitMs: config.durationMs });
  const resolvedAt = Date.now();
  process.stdout.write(`${JSON.stringify({ askedAt, at: permit.at, resolvedAt, source: permit.source })}\n`);
  await permit.release();
}
await store.close();
client.disconnect();
