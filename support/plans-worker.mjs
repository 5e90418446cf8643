// One pod of test/plans.test.ts: a limiter with plans (name 'fleet') on a
// RedisStore shared with the other pods, fixed windows of 1 minute. Waits
// for "go" on stdin, then sends `calls` limit() calls for each key, one
// after another, and prints one JSON line: per key the allowed count.
// Usage: node plans-worker.mjs <port> <prefix> <calls> <plan> <key>...
//   plan "v<version>:<limit>": one policy for every key (limit per minute, that version);
//   plan "tiers": a resolver, keys starting "pro" 100 a minute, others 10.
import { Redis } from 'ioredis';
import { Limiter, fixedWindow } from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';

const [port, prefix, calls, plan, ...keys] = process.argv.slice(2);
const client = new Redis({ host: '127.0.0.1', port: Number(port), maxRetriesPerRequest: 1 });
const store = new RedisStore({ client, prefix, timeoutMs: 2000 });
const tiers = { pro: fixedWindow({ limit: 100, window: '1m' }), free: fixedWindow({ limit: 10, window: '1m' }) };
const fixed = /^v(\d+):(\d+)$/.exec(plan);
const limiter = fixed
  ? new Limiter({ name: 'fleet', policy: fixedWindow({ limit: Number(fixed[2]), window: '1m' }), version: Number(fixed[1]), store })
  : new Limiter({ name: 'fleet', policy: (key) => (key.startsWith('pro') ? tiers.pro : tiers.free), store });
await client.ping();
process.stdout.write('ready\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
const counts = {};
for (const key of keys) {
  counts[key] = 0;
  for (let i = 0; i < Number(calls); i++) if ((await limiter.limit(key)).allowed) counts[key]++;
}
await store.close();
client.disconnect();
process.stdout.write(JSON.stringify(counts) + '\n');
