// The embedded limiter against its in-process peers, on the same keys in the
// same run: rate-limiter-flexible's RateLimiterMemory, the `limiter` package
// (one TokenBucket per key in a Map: it limits one thing per instance) and the
// pure-TS reference model of the test suite. Every contender allows 1000 per
// second per key with a burst of 10, so nearly every decision admits.
import { TokenBucket } from 'limiter';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { EmbeddedStore, Limiter, gcra, systemClock } from '../build/lib/src/index.js';
import { ReferenceLimiter } from '../support/reference-model.js';
import { tally, type Contender, type Step } from './harness.js';

/** Decisions per harness step: amortises the harness's own per-step cost. */
const INNER = 1000;
const BATCH = 1024;

/** Keys like `user:123`, as flat strings, visited in a fixed pseudo-random order. */
function makeKeys(n: number): { keys: string[]; order: Uint32Array } {
  const keys = Array.from({ length: n }, (_, i) => `user:${i}`);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let s = 12345;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return { keys, order };
}

/** INNER awaited cellgate decisions, counting the admitted and those not decided locally. */
const awaitLimit = (l: Limiter, next: () => string) => async (): Promise<Step> => {
  let allowed = 0;
  let off = 0;
  for (let i = 0; i < INNER; i++) {
    const d = await l.limit(next());
    if (d.allowed) allowed++;
    if (d.source !== 'local') off++;
  }
  return { made: INNER, allowed, offSource: off };
};

/** INNER awaited rate-limiter-flexible decisions (a rejected consume() is a denial). */
const awaitConsume = (rlf: RateLimiterMemory, next: () => string) => async (): Promise<Step> => {
  let allowed = 0;
  for (let i = 0; i < INNER; i++) if (await rlf.consume(next()).then(() => true, () => false)) allowed++;
  return { made: INNER, allowed };
};

/** Every embedded contender at `n` keys, each allowing 1000/s per key with a burst of 10. */
export function embeddedContenders(n: number): Contender[] {
  const { keys, order } = makeKeys(n);
  const policy = gcra({ limit: 1000, period: '1s', burst: 10 });
  const maxKeys = Math.max(n, 100_000);
  const mk = (clock?: typeof systemClock) => new Limiter({ policy, store: new EmbeddedStore({ maxKeys }), ...(clock ? { clock } : {}) });
  const sync = mk();
  const exact = mk(systemClock);
  const batched = mk();
  const async = mk();
  // Limiters with plans: a name (no change yet: the plain path), and a resolver (each key's plan cached and recorded).
  const planned = new Limiter({ name: 'bench', policy, store: new EmbeddedStore({ maxKeys: 2 * maxKeys }) });
  const resolved = new Limiter({ policy: () => policy, store: new EmbeddedStore({ maxKeys: 2 * maxKeys }) });
  // rate-limiter-flexible's documented normal configuration: 1000 points per 1 s window per key (it has no burst).
  const rlf = new RateLimiterMemory({ points: 1000, duration: 1 });
  const buckets = new Map<string, TokenBucket>();
  const chunk = new Array<string>(BATCH);
  let cursor = 0;
  const next = () => {
    const k = keys[order[cursor]!]!;
    if (++cursor === n) cursor = 0;
    return k;
  };
  const cg = (l: Limiter): Step => {
    let allowed = 0;
    let off = 0;
    for (let i = 0; i < INNER; i++) {
      const d = l.limitSync(next());
      if (d.allowed) allowed++;
      if (d.source !== 'local') off++;
    }
    return { made: INNER, allowed, offSource: off };
  };
  const local = { expect: 'local', minShare: 1 };
  return [
    { name: 'cellgate limitSync (default taskClock: clock read once per task / 64 decisions)', source: local, step: () => cg(sync) },
    { name: 'cellgate limitSync (systemClock: clock read per decision)', source: local, step: () => cg(exact) },
    { name: 'cellgate limitSync, a limiter with a name (plans; none changed yet)', source: local, step: () => cg(planned) },
    { name: 'cellgate limitSync, a policy resolver (each key\'s plan cached, 65,536 keys, and recorded)', source: local, step: () => cg(resolved) },
    {
      name: 'limiter TokenBucket.tryRemoveTokens per key in a Map (clock read per decision)',
      step: () => {
        let allowed = 0;
        for (let i = 0; i < INNER; i++) {
          const k = next();
          let b = buckets.get(k);
          if (b === undefined) {
            b = new TokenBucket({ bucketSize: 10, tokensPerInterval: 1000, interval: 'second' });
            // A new TokenBucket starts empty (0 of its first calls admitted); filled as its API allows, as a new key is elsewhere.
            b.content = b.bucketSize;
            buckets.set(k, b);
          }
          if (b.tryRemoveTokens(1)) allowed++;
        }
        return { made: INNER, allowed };
      },
    },
    {
      name: `cellgate limitManySync (batches of ${BATCH}), per decision`,
      source: local,
      step: () => {
        for (let i = 0; i < BATCH; i++) chunk[i] = next();
        return tally(batched.limitManySync(chunk), 'local');
      },
    },
    { name: 'cellgate await limit() (default taskClock)', source: local, step: awaitLimit(async, next) },
    { name: 'rate-limiter-flexible RateLimiterMemory await consume() (clock read per decision)', step: awaitConsume(rlf, next) },
  ];
}

/** Async on one hot key: cellgate await limit() against rlf await consume(), same 1000/s limit. */
export function hotKeyContenders(): Contender[] {
  const l = new Limiter({ policy: gcra({ limit: 1000, period: '1s', burst: 10 }), store: new EmbeddedStore() });
  const rlf = new RateLimiterMemory({ points: 1000, duration: 1 });
  const hot = () => 'hot';
  return [
    { name: 'cellgate await limit()', source: { expect: 'local', minShare: 1 }, step: awaitLimit(l, hot) },
    { name: 'rate-limiter-flexible RateLimiterMemory await consume()', step: awaitConsume(rlf, hot) },
  ];
}

/**
 * Holds what is being measured: an object only a dead local points to may be
 * collected before the heap is read.
 */
const retained: unknown[] = [];

/** Bytes per key at `n` keys: the embedded table, and the heap growth of each peer. */
export async function memoryPerKey(n: number): Promise<{ contender: string; bytesPerKey: number; note: string }[]> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const heap = () => {
    gc?.();
    gc?.();
    return process.memoryUsage().heapUsed;
  };
  const keys = Array.from({ length: n }, (_, i) => `user:${i}`);
  const out: { contender: string; bytesPerKey: number; note: string }[] = [];

  // The default store: it starts at 256 KiB and grows with the live keys.
  const store = new EmbeddedStore();
  const limiter = new Limiter({ policy: gcra({ limit: 1, period: '1h' }), store });
  for (const k of keys) limiter.limitSync(k);
  const stats = store.stats();
  out.push({
    contender: 'cellgate EmbeddedStore',
    bytesPerKey: stats.tableBytes / n,
    note: `table ${(stats.tableBytes / 2 ** 20).toFixed(1)} MiB (${stats.growths} doublings), wasm memory ${(stats.memoryBytes / 2 ** 20).toFixed(1)} MiB, ${stats.keys} live keys, ${stats.evictions + stats.refusals} lost or refused`,
  });

  let before = heap();
  const model = new ReferenceLimiter([gcra({ limit: 1, period: '1h' })]);
  const t = Date.now();
  for (const k of keys) model.limit(k, 1, t);
  retained.push(model);
  out.push({ contender: 'reference model (Map of objects)', bytesPerKey: (heap() - before) / n, note: 'JS heap growth' });
  before = heap();
  const rlf = new RateLimiterMemory({ points: 1, duration: 3600 });
  for (const k of keys) await rlf.consume(k).catch(() => undefined);
  retained.push(rlf);
  out.push({ contender: 'rate-limiter-flexible RateLimiterMemory', bytesPerKey: (heap() - before) / n, note: 'JS heap growth' });
  before = heap();
  const buckets = new Map<string, TokenBucket>();
  for (const k of keys) {
    const b = new TokenBucket({ bucketSize: 1, tokensPerInterval: 1, interval: 'hour' });
    b.content = b.bucketSize;
    b.tryRemoveTokens(1);
    buckets.set(k, b);
  }
  retained.push(buckets);
  out.push({ contender: 'limiter TokenBucket per key (Map)', bytesPerKey: (heap() - before) / n, note: 'JS heap growth' });
  retained.length = 0;

  return out;
}
