// quick Redis smoke
import { spawn } from 'node:child_process';
import Redis from 'ioredis';
import { Limiter, concurrency, gcra } from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
const port = 17000 + Math.floor(Math.random() * 1000);
const srv = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 300));
const client = new Redis({ port });
const store = new RedisStore({ client });
const l = new Limiter({ policy: [gcra({ limit: 100, period: '1s', burst: 100 }), concurrency({ limit: 2, leaseMs: 1000 })], store });
const a = await l.limit('k'), b = await l.limit('k'), c = await l.limit('k');
console.log(a.allowed, a.source, a.remaining, b.allowed, c.allowed, c.gate, c.retryAfterMs);
await a.release();
const d = await l.limit('k'); console.log('after release', d.allowed, d.remaining);
const t0 = Date.now(); setTimeout(() => b.release(), 100);
const e = await l.acquire('k'); console.log('acquire waited', Date.now() - t0, e.allowed, e.source);
await new Promise((r) => setTimeout(r, 2500)); // renewals keep d and e
const f = await l.limit('k'); console.log('after 2.5s (renewed holders)', f.allowed);
await d.release(); await e.release();
const g = await l.limit('k'); console.log('after releases', g.allowed, g.remaining);
await g.release();
await store.close(); client.disconnect(); srv.kill();
