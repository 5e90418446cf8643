// One "pod" of `cellgate simulate`: a separate OS process that, once the
// parent writes "go" on stdin, calls the mock upstream as fast as its limiter
// admits for the given number of seconds, then prints one JSON line with what
// it did and exits.
//   node pod.mjs '{"pod":0,"scenario":"stampede","url":"http://127.0.0.1:PORT/","rate":50,"burst":5,"seconds":3}'
// shared-gcra also needs "redis": {"host", "port"} and "key".
import http from 'node:http';
import { Limiter, gcra, AcquireTimeoutError } from '../../build/lib/src/index.js';

const config = JSON.parse(process.argv[2] ?? '{}');
const { pod, scenario, url, rate, burst, seconds } = config;

let limiter;
let client;
if (scenario === 'stampede') {
  // The naive setup: every pod believes it alone talks to the upstream.
  limiter = new Limiter({ policy: gcra({ limit: rate, period: '1s', burst }) });
} else if (scenario === 'shared-gcra') {
  const [{ Redis }, { RedisStore }] = await Promise.all([import('ioredis'), import('../../build/lib/src/redis/index.js')]);
  client = new Redis({ host: config.redis.host, port: config.redis.port, maxRetriesPerRequest: 1 });
  await client.ping();
  // One GCRA for the whole fleet, at the upstream's rate, spaced exactly.
  // A generous timeout: this run is about spacing, not about the fallback.
  const store = new RedisStore({ client, prefix: 'cellgate-sim:', timeoutMs: 5_000 });
  limiter = new Limiter({ policy: gcra({ limit: rate, period: '1s' }), store });
} else {
  throw new Error(`unknown scenario ${scenario}`);
}
const key = config.key ?? 'upstream';

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const target = new URL(url);
/** One upstream call: resolves with the status code, or 0 on a network error. */
function call() {
  return new Promise((resolve) => {
    const req = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, method: 'GET', agent, headers: { 'x-pod': String(pod) } },
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

const go = new Promise((resolve) => process.stdin.once('data', resolve));
process.stdout.write('ready\n');
await go;

const end = performance.now() + seconds * 1000;
const waits = [];
const inflight = new Set();
const counts = { sent: 0, ok: 0, limited: 0, other: 0, errors: 0, fallback: 0 };
for (;;) {
  const left = end - performance.now();
  if (left <= 0) break;
  const asked = performance.now();
  let decision;
  try {
    // Waits its turn; a turn after the end of the run is not booked.
    decision = await limiter.acquire(key, { maxWaitMs: Math.floor(left) });
  } catch (error) {
    if (error instanceof AcquireTimeoutError) break;
    throw error;
  }
  if (decision.source === 'fallback') counts.fallback++;
  waits.push(performance.now() - asked);
  counts.sent++;
  const p = call().then((status) => {
    if (status >= 200 && status < 300) counts.ok++;
    else if (status === 429) counts.limited++;
    else if (status === 0) counts.errors++;
    else counts.other++;
  });
  inflight.add(p);
  p.finally(() => inflight.delete(p));
}
await Promise.all(inflight);
agent.destroy();
client?.disconnect();
process.stdout.write(`${JSON.stringify({ pod, ...counts, waits: waits.map((w) => Math.round(w * 100) / 100) })}\n`);
