// One pod of test/blocks.test.ts: a Limiter with blockAfter on a RedisStore
// shared with the other pods. Waits for "go" on stdin, then sends `calls`
// limit() calls for each key, one after another, and prints one JSON line:
// per key the allowed, denied (by the limit) and blocked counts.
// Usage: node blocks-worker.mjs <port> <prefix> <calls> <key>...
import { Redis } from 'ioredis';
import { Limiter, linearWindow } from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';

const [port, prefix, calls, ...keys] = process.argv.slice(2);
const client = new Redis({ host: '127.0.0.1', port: Number(port), maxRetriesPerRequest: 1 });
const store = new RedisStore({ client, prefix, timeoutMs: 2000 });
const limiter = new Limiter({
  policy: linearWindow({ limit: 10, within: '1m' }),
  store,
  blockAfter: { denials: 20, within: '1m', duration: '1m' },
});
await client.ping();
process.stdout.write('ready\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
const counts = {};
for (const key of keys) {
  const c = (counts[key] = { allowed: 0, denied: 0, blocked: 0, sources: {} });
  for (let i = 0; i < Number(calls); i++) {
    const d = await limiter.limit(key);
    if (d.allowed) c.allowed++;
    else if (d.reason === 'blocked') c.blocked++;
    else c.denied++;
    c.sources[d.source] = (c.sources[d.source] ?? 0) + 1;
  }
}
await store.close();
client.disconnect();
process.stdout.write(JSON.stringify(counts) + '\n');
