// The embedded limiter against its in-process peers, on the same keys in the
// same run: rate-limiter-flexible's RateLimiterMemory, the `limiter` package
// (one TokenBucket per key in a Map: it limits one thing per instance) and the
// pure-TS reference model of the test suite. Every contender allows 1000 per
// second per key with a burst of 10, so nearly every decision admits.
import { Bench } from 'tinybench';
import { TokenBucket } from 'limiter';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { EmbeddedStore, Limiter, gcra, systemClock, taskClock } from '../build/lib/src/index.js';
import { ReferenceLimiter } from '../support/reference-model.js';

/** Decisions per task iteration: amortises tinybench's own per-call cost. */
const INNER = 1000;
const BATCH = 1024;

export interface Row {
  keys: number;
  contender: string;
  perSecond: number;
}

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

export async function benchEmbedded(keyCounts: number[], timeMs: number): Promise<Row[]> {
  const rows: Row[] = [];
  for (const n of keyCounts) {
    const { keys, order } = makeKeys(n);
    const policy = gcra({ limit: 1000, period: '1s', burst: 10 });
    const maxKeys = Math.max(n, 100_000);
    const sync = new Limiter({ policy, store: new EmbeddedStore({ maxKeys }) });
    const exact = new Limiter({ policy, store: new EmbeddedStore({ maxKeys }), clock: systemClock });
    const batched = new Limiter({ policy, store: new EmbeddedStore({ maxKeys }) });
    const async = new Limiter({ policy, store: new EmbeddedStore({ maxKeys }) });
    const rlf = new RateLimiterMemory({ points: 10, duration: 0.01 });
    const buckets = new Map<string, TokenBucket>();
    const model = new ReferenceLimiter([policy]);
    const chunk = new Array<string>(BATCH);

    let cursor = 0;
    const next = () => {
      const k = keys[order[cursor]!]!;
      if (++cursor === n) cursor = 0;
      return k;
    };
    const bench = new Bench({ time: timeMs, warmupTime: Math.min(500, timeMs / 2) });
    bench
      .add('cellgate limitSync', () => {
        for (let i = 0; i < INNER; i++) sync.limitSync(next());
      })
      .add('cellgate limitSync, clock read per decision', () => {
        for (let i = 0; i < INNER; i++) exact.limitSync(next());
      })
      .add('cellgate limitManySync (batches of 1024)', () => {
        for (let i = 0; i < BATCH; i++) chunk[i] = next();
        batched.limitManySync(chunk);
      })
      .add('cellgate await limit', async () => {
        for (let i = 0; i < INNER; i++) await async.limit(next());
      })
      .add('rate-limiter-flexible RateLimiterMemory.consume', async () => {
        for (let i = 0; i < INNER; i++) await rlf.consume(next()).catch(() => undefined);
      })
      .add('limiter TokenBucket per key (Map)', () => {
        for (let i = 0; i < INNER; i++) {
          const k = next();
          let b = buckets.get(k);
          if (b === undefined) {
            b = new TokenBucket({ bucketSize: 10, tokensPerInterval: 1000, interval: 'second' });
            buckets.set(k, b);
          }
          b.tryRemoveTokens(1);
        }
      })
      .add('reference model (pure TS)', () => {
        for (let i = 0; i < INNER; i++) model.limit(next(), 1, taskClock());
      });
    await bench.run();
    for (const task of bench.tasks) {
      const r = task.result as { period?: number };
      const per = task.name.startsWith('cellgate limitManySync') ? BATCH : INNER;
      rows.push({ keys: n, contender: task.name, perSecond: r.period ? (per / r.period) * 1000 : 0 });
    }
  }
  return rows;
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
    b.tryRemoveTokens(1);
    buckets.set(k, b);
  }
  retained.push(buckets);
  out.push({ contender: 'limiter TokenBucket per key (Map)', bytesPerKey: (heap() - before) / n, note: 'JS heap growth' });
  retained.length = 0;

  return out;
}
