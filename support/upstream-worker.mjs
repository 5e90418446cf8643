// One pod of test/fleet-upstream.test.ts: limitedFetch over a limiter on a
// RedisStore shared with the other pods, calling a mock upstream. Waits for
// "go" on stdin, then keeps `loops` calls in flight for `ms` milliseconds and
// prints one JSON line: its status counts, and when (Date.now(), one clock
// for every process of the machine) each 429 it was answered had been
// handled, its hold written for the fleet.
// Each request carries x-pod and x-checked: the Date.now() at which
// limitedFetch let it go (its pace checked, fetch called).
// Usage: node upstream-worker.mjs <redis port> <prefix> <url> <ms> <options JSON>
//   options: { shared?: boolean, rate?: number (gcra per second, default 60),
//              bucket?: { capacity, period, mode } (a tokenBucket instead),
//              name?: string (a limiter with plans), shape?: 'auto', quota?,
//              loops?: number (default 3), maxRetryAfterMs?: number, pod?: number }
// The JSON line also has `stats`: the wrapper's stats('upstream') at the end,
// and `remaining`: the limiter's peek of the key then.
import { Redis } from 'ioredis';
import { Limiter, gcra, tokenBucket } from '../build/lib/src/index.js';
import { limitedFetch } from '../build/lib/src/http/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';

const [port, prefix, url, ms, json] = process.argv.slice(2);
const options = JSON.parse(json ?? '{}');
const client = new Redis({ host: '127.0.0.1', port: Number(port), maxRetriesPerRequest: 1 });
client.on('error', () => {});
const store = new RedisStore({ client, prefix, timeoutMs: 1000 });
const policy = options.bucket ? tokenBucket(options.bucket) : gcra({ limit: options.rate ?? 60, period: '1s' });
const limiter = new Limiter({ policy, store, ...(options.name === undefined ? {} : { name: options.name }) });
const pod = String(options.pod ?? process.pid);
const tagged = (input, init) => fetch(input, { ...init, headers: { 'x-pod': pod, 'x-checked': String(Date.now()) } });
const api = limitedFetch(tagged, {
  limiter,
  key: 'upstream',
  ...(options.shared === undefined ? {} : { shared: options.shared }),
  ...(options.maxRetryAfterMs === undefined ? {} : { maxRetryAfterMs: options.maxRetryAfterMs }),
  ...(options.shape === undefined ? {} : { shape: options.shape }),
  ...(options.quota === undefined ? {} : { quota: options.quota }),
});
await client.ping();
process.stdout.write('ready\n');
await new Promise((resolve) => process.stdin.once('data', resolve));

const end = Date.now() + Number(ms);
const counts = { ok: 0, limited: 0, other: 0, errors: 0 };
const handled429 = [];
const loop = async () => {
  while (Date.now() < end) {
    try {
      const res = await api(url, { signal: AbortSignal.timeout(Math.max(1, end - Date.now())) });
      await res.body?.cancel();
      if (res.status === 429) {
        counts.limited++;
        handled429.push(Date.now());
      } else if (res.ok) counts.ok++;
      else counts.other++;
    } catch {
      counts.errors++;
    }
  }
};
await Promise.all(Array.from({ length: options.loops ?? 3 }, loop));
const stats = await api.stats('upstream');
const { remaining } = await limiter.peek('upstream');
await store.close();
client.disconnect();
process.stdout.write(JSON.stringify({ ...counts, handled429, stats, remaining }) + '\n');
