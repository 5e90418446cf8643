import { Limiter, concurrency } from '../build/lib/src/index.js';
let now = 1_760_000_000_000;
const limiter = new Limiter({ policy: concurrency({ limit: 3, leaseMs: 1000 }), clock: () => now });
const a = limiter.limitSync('k'); console.log('a at', a.at - 1_760_000_000_000);
now -= 60_000;
const b = limiter.limitSync('k'); console.log('b at', b.at - 1_760_000_000_000, b.remaining);
await b.release();
console.log((await limiter.peek('k')).remaining);
