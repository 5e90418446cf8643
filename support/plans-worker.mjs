// One pod of test/plans.test.ts: a limiter with plans (name 'fleet') on a
// RedisStore shared with the other pods, linear windows of 1 minute (from the first admission: no boundary for a run to cross). Waits
// for "go" on stdin, then sends `calls` limit() calls for each key, one
// after another, and prints one JSON line: per key the allowed count.
// Usage: node plans-worker.mjs <port> <prefix> <calls> <plan> <key>...
//   plan "v<version>:<limit>": one policy for every key (limit per minute, that version);
//   plan "tiers": a resolver, keys starting "pro" 100 a minute, others 10;
//   plan "switch:<carry>": 10 a minute for the first half of the calls, then
//     setPolicy(30 a minute, { carry }) and the second half.
import { Redis } from 'ioredis';
import { Limiter, linearWindow } from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';

const [port, prefix, calls, plan, ...keys] = process.argv.slice(2);
const client = new Redis({ host: '127.0.0.1', port: Number(port), maxRetriesPerRequest: 1 });
const store = new RedisStore({ client, prefix, timeoutMs: 2000 });
const tiers = { pro: linearWindow({ limit: 100, within: '1m' }), free: linearWindow({ limit: 10, within: '1m' }) };
const fixed = /^v(\d+):(\d+)$/.exec(plan);
const switched = /^switch:(.+)$/.exec(plan);
const limiter = fixed
  ? new Limiter({ name: 'fleet', policy: linearWindow({ limit: Number(fixed[2]), within: '1m' }), version: Number(fixed[1]), store })
  : switched
    ? new Limiter({ name: 'fleet', policy: tiers.free, store })
    : new Limiter({ name: 'fleet', policy: (key) => (key.startsWith('pro') ? tiers.pro : tiers.free), store });
await client.ping();
process.stdout.write('ready\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
const counts = {};
for (const key of keys) {
  counts[key] = 0;
  for (let i = 0; i < Number(calls); i++) {
    if (switched && i === Number(calls) / 2) limiter.setPolicy(linearWindow({ limit: 30, within: '1m' }), { carry: switched[1] });
    if ((await limiter.limit(key)).allowed) counts[key]++;
  }
}
await store.close();
client.disconnect();
process.stdout.write(JSON.stringify(counts) + '\n');
