import { Limiter, concurrency, gcra } from '../build/lib/src/index.js';
let t = 1_000_000;
const l = new Limiter({ policy: concurrency({ limit: 2, leaseMs: 1000 }), clock: () => t });
const a = l.limitSync('k'); const b = l.limitSync('k'); const c = l.limitSync('k');
console.log(a.allowed, a.remaining, b.allowed, b.remaining, c.allowed, c.retryAfterMs, typeof a.release);
await a.release(); await a.release();
const d = l.limitSync('k'); console.log('after release', d.allowed, d.remaining);
t += 2500; // leases expire
const e = l.limitSync('k'); const f = l.limitSync('k'); console.log('after expiry', e.allowed, f.allowed, f.remaining);
// renew
t += 1500; console.log('extend e', await e.extend()); t += 1000;
const g = l.limitSync('k'); console.log('g (f expired, e renewed)', g.allowed, g.remaining);
const h = l.limitSync('k'); console.log('h', h.allowed);
// stacked
const s = new Limiter({ policy: [gcra({ limit: 10, period: '1s', burst: 10 }), concurrency({ limit: 1 })], clock: () => t });
const p1 = await s.acquire('x'); console.log('p1', p1.allowed, p1.gate, p1.remaining);
setTimeout(() => p1.release(), 50);
const t0 = performance.now(); const p2 = await s.acquire('x'); console.log('p2 after', Math.round(performance.now() - t0), 'ms', p2.allowed);
try { await s.reserve('x'); } catch (e) { console.log(e.name, e.message); }
{ const p3 = await l.acquire('z'); console.log('p3 held', p3.held); await p3[Symbol.asyncDispose](); console.log(p3.held); }
const q = new Limiter({ policy: concurrency({ limit: 1 }) });
const q1 = await q.acquire('k');
const err = await q.acquire('k', { maxWaitMs: 100 }).catch((e) => e); console.log(err.name);
await q1.release();
console.log((await q.acquire('k', { maxWaitMs: 100 })).allowed);
