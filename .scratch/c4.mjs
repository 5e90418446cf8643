import { Limiter, gcra } from '../build/lib/src/index.js';
let bad = 0, n = 2000;
for (let i = 0; i < n; i++) {
  let now = 1.76e12 + Math.random() * 1e10;
  const l = new Limiter({ policy: gcra({ limit: 3, period: '1s', burst: 3 }), clock: () => now });
  const ok = [l.limitSync('k'), l.limitSync('k'), l.limitSync('k')].filter((d) => d.allowed).length;
  if (ok !== 3) bad++;
}
console.log('burst 3 at one instant admitted fewer than 3 in', bad, 'of', n);
