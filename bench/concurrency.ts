// npm run bench:concurrency: cellgate's concurrency gate (acquire, release)
// against bottleneck and p-limit, every contender in its documented normal
// configuration, the same slots per key (LIMIT) and the same callers, in one
// run. Rows go through bench/harness.ts (interleaved rounds, median of them).
//   - in process, async: LIMIT slots on one key, CALLERS callers each looping
//     acquire, a no-op async task, release; cellgate `await acquire(key)` and
//     `await permit.release()` on an EmbeddedStore, p-limit's `pLimit(LIMIT)`,
//     bottleneck's `new Bottleneck({ maxConcurrent: LIMIT })` `.schedule()`;
//   - in process, sync: cellgate `limitSync(key)` and `release()`, no waiting
//     (no peer decides a slot synchronously: cellgate rows only, beside a
//     limitSync of a rate gate, which has nothing to release, for scale);
//   - Redis (a redis-server started here): cellgate RedisStore on an ioredis
//     client, against bottleneck's Clustering (`datastore: 'ioredis'`, one
//     IORedisConnection on its own ioredis client, an `id`, `expiration` on
//     every job as its README urges), on one key and over 1000 keys (a
//     bottleneck Group, a limiter per key).
// Every async row counts completed operations (acquire + task + release), the
// acquire latency (from asking to holding the slot) and the peak of tasks in
// flight, which must not pass LIMIT on any key (a row that does is flagged).
//   --quick  fewer, shorter rounds   --smoke  in-process rows only, a few seconds
//   --json   one JSON document on stdout, tables on stderr   --no-redis  skip Redis
import Bottleneck from 'bottleneck';
import pLimit from 'p-limit';
import { Redis } from 'ioredis';
import { Console } from 'node:console';
import { EmbeddedStore, Limiter, concurrency, gcra } from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { startRedis } from '../build/lib/src/cli/redis-server.js';
import { KEYS, rng } from '../build/lib/src/cli/key-picks.js';
import { fmtRate, planRows, progress, runGroup, type Contender, type Row, type Step } from './harness.js';

/** Slots per key, for every contender. */
export const LIMIT = 10;
/** Concurrent callers in process and on one Redis key: 10 per slot, so that acquires wait. */
export const CALLERS = 100;
/** Callers over many Redis keys, and how many keys. */
export const MANY_CALLERS = 1000;
export const MANY_KEYS = 1000;

/** Tasks in flight per key, and the most seen, for one contender. */
class InFlight {
  peak = 0;
  readonly #now = new Map<string, number>();
  enter(key: string): void {
    const n = (this.#now.get(key) ?? 0) + 1;
    this.#now.set(key, n);
    if (n > this.peak) this.peak = n;
  }
  leave(key: string): void {
    this.#now.set(key, this.#now.get(key)! - 1);
  }
}

/** The work guarded by a slot, the same for every contender: one no-op async task. */
const noop = async (): Promise<void> => {};

/**
 * One operation: asks for a slot of `key`, runs the task once admitted, gives
 * the slot back; resolves when the slot is back (p-limit, bottleneck: when the
 * task's promise settles). `started` is called as the task starts, `off` says
 * whether the slot came from another source than intended (cellgate only).
 */
type Op = (key: string, task: () => Promise<void>) => Promise<boolean>;

interface AsyncContender extends Contender {
  inFlight: InFlight;
}

/** `callers` callers, each doing `per` operations on keys from `pick`, one after another. */
function closedLoop(name: string, op: Op, pick: () => string, callers: number, per: number, source?: Contender['source']): AsyncContender {
  const inFlight = new InFlight();
  return {
    name,
    inFlight,
    ...(source ? { source } : {}),
    step: async (): Promise<Step> => {
      let off = 0;
      const latencies: number[] = [];
      await Promise.all(
        Array.from({ length: callers }, async () => {
          for (let i = 0; i < per; i++) {
            const key = pick();
            const asked = performance.now();
            const offSource = await op(key, async () => {
              latencies.push(performance.now() - asked);
              inFlight.enter(key);
              await noop();
              inFlight.leave(key);
            });
            if (offSource) off++;
          }
        }),
      );
      // Every operation ends admitted (each waits for its slot): the admitted share is 100% by construction.
      return { made: callers * per, allowed: callers * per, offSource: off, latencies };
    },
  };
}

/** cellgate: `await acquire(key)`, the task, `await permit.release()`. */
const cellgateOp = (limiter: Limiter, expect: string): Op => async (key, task) => {
  const permit = await limiter.acquire(key);
  try {
    await task();
  } finally {
    await permit.release();
  }
  return permit.source !== expect;
};

/** The in-process async rows: one key, LIMIT slots, CALLERS callers. */
export function inProcessAsync(per = 10): AsyncContender[] {
  const limiter = new Limiter({ policy: concurrency({ limit: LIMIT }), store: new EmbeddedStore() });
  const limit = pLimit(LIMIT);
  const bottleneck = new Bottleneck({ maxConcurrent: LIMIT });
  const one = () => 'one';
  return [
    closedLoop(`cellgate await acquire() + release(), EmbeddedStore`, cellgateOp(limiter, 'local'), one, CALLERS, per, { expect: 'local', minShare: 1 }),
    closedLoop(`p-limit pLimit(${LIMIT})(task)`, async (_key, task) => (await limit(task), false), one, CALLERS, per),
    closedLoop(`bottleneck local schedule(task)`, async (_key, task) => (await bottleneck.schedule(task), false), one, CALLERS, per),
  ];
}

/** Decisions per harness step of the sync rows. */
const INNER = 1000;

/**
 * The in-process sync rows: `limitSync(key)` and, for an admission, its
 * `release()`; no waiting. On one key, 2 x LIMIT callers take turns (one
 * holding a permit releases it, one without asks for one): about two in three
 * asks are admitted. Over 10k keys, each ask is released at once (all admitted).
 */
export function inProcessSync(): Contender[] {
  const store = () => new EmbeddedStore({ maxKeys: 100_000 });
  const oneKey = new Limiter({ policy: concurrency({ limit: LIMIT }), store: store() });
  const manyKeys = new Limiter({ policy: concurrency({ limit: LIMIT }), store: store() });
  const rate = new Limiter({ policy: gcra({ limit: 1000, period: '1s', burst: 10 }), store: store() });
  /** Per caller taking turns, the release of the permit it holds. */
  const turns: ((() => Promise<void>) | undefined)[] = new Array(2 * LIMIT).fill(undefined);
  let turn = 0;
  let cursor = 0;
  /** INNER decisions over 10k keys, each admission released at once (a rate gate's has no release). */
  const overKeys = (l: Limiter) => (): Step => {
    let allowed = 0;
    let off = 0;
    for (let i = 0; i < INNER; i++) {
      const d = l.limitSync(KEYS[cursor]!);
      if (++cursor === KEYS.length) cursor = 0;
      if (d.source !== 'local') off++;
      if (d.allowed) {
        allowed++;
        void d.release?.();
      }
    }
    return { made: INNER, allowed, offSource: off };
  };
  const local = { expect: 'local', minShare: 1 };
  return [
    {
      name: `cellgate limitSync() + release(), one key, ${2 * LIMIT} callers taking turns`,
      source: local,
      step: () => {
        let made = 0;
        let allowed = 0;
        let off = 0;
        for (let i = 0; i < INNER; i++) {
          const held = turns[turn];
          if (held !== undefined) {
            void held();
            turns[turn] = undefined;
          } else {
            const d = oneKey.limitSync('one');
            made++;
            if (d.source !== 'local') off++;
            if (d.allowed) {
              allowed++;
              turns[turn] = d.release!;
            }
          }
          if (++turn === turns.length) turn = 0;
        }
        return { made, allowed, offSource: off };
      },
    },
    { name: 'cellgate limitSync() + release() at once, 10k keys', source: local, step: overKeys(manyKeys) },
    { name: 'for scale: cellgate limitSync() of gcra (a rate gate, nothing to release), 10k keys', source: local, step: overKeys(rate) },
  ];
}

export interface RedisRows {
  oneKey: AsyncContender[];
  manyKeys: AsyncContender[];
  close(): Promise<void>;
}

/** The Redis rows: each contender on its own ioredis client(s) to the same server. */
export async function redisRows(host: string, port: number): Promise<RedisRows> {
  const ours = new Redis({ host, port });
  const theirs = new Redis({ host, port });
  const limiter = new Limiter({ policy: concurrency({ limit: LIMIT }), store: new RedisStore({ client: ours, prefix: 'bench-conc:' }) });
  // bottleneck's Clustering, as its README sets it up: a Connection on an existing ioredis client (it makes a
  // second one for pubsub), an id per limiter, the state cleared at start, an expiration on every job
  // (cellgate's lease, 30 s, is the same safety: a crashed holder's slot comes back), errors listened to.
  const connection = new Bottleneck.IORedisConnection({ client: theirs });
  connection.on('error', (e: unknown) => progress(`bottleneck connection error: ${String(e)}`));
  const shared = { datastore: 'ioredis' as const, connection, clearDatastore: true, maxConcurrent: LIMIT };
  const single = new Bottleneck({ ...shared, id: 'bench-conc-one' });
  single.on('error', (e: unknown) => progress(`bottleneck error: ${String(e)}`));
  const group = new Bottleneck.Group({ ...shared, id: 'bench-conc-many' });
  group.on('error', (e: unknown) => progress(`bottleneck group error: ${String(e)}`));
  const keys = KEYS.slice(0, MANY_KEYS);
  // Every key's limiter made and connected before measuring (cellgate's keys need no set-up).
  await single.ready();
  await Promise.all(keys.map((k) => group.key(k).ready()));
  const job = { expiration: 30_000 };
  const bottleneckOp = (of: (key: string) => Bottleneck): Op => async (key, task) => (await of(key).schedule(job, task), false);
  const r1 = rng(11);
  const r2 = rng(11);
  const pick = (r: () => number) => () => keys[Math.floor(r() * keys.length)]!;
  const redis = { expect: 'redis', minShare: 1 };
  return {
    oneKey: [
      closedLoop('cellgate RedisStore await acquire() + release()', cellgateOp(limiter, 'redis'), () => 'one', CALLERS, 5, redis),
      closedLoop("bottleneck Clustering ('ioredis') schedule(task)", bottleneckOp(() => single), () => 'one', CALLERS, 5),
    ],
    manyKeys: [
      closedLoop('cellgate RedisStore await acquire() + release()', cellgateOp(limiter, 'redis'), pick(r1), MANY_CALLERS, 2, redis),
      closedLoop("bottleneck Clustering ('ioredis') Group key(k).schedule(task)", bottleneckOp((k) => group.key(k)), pick(r2), MANY_CALLERS, 2),
    ],
    async close() {
      await group.disconnect(false);
      await single.disconnect(false);
      await connection.disconnect(false);
      theirs.disconnect();
      ours.disconnect();
    },
  };
}

/** Flags an async row whose tasks in flight passed LIMIT on a key (never compared). */
function checkPeaks(rows: Row[], contenders: Contender[]): Row[] {
  return rows.map((r, i) => {
    const peak = (contenders[i] as Partial<AsyncContender>).inFlight?.peak;
    if (peak !== undefined && peak > LIMIT) r.flagged = [r.flagged, `${peak} tasks in flight on one key (limit ${LIMIT})`].filter((f) => f !== null).join('; ');
    peaks.set(r, peak ?? null);
    return r;
  });
}
const peaks = new Map<Row, number | null>();

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const smoke = argv.includes('--smoke');
  const quick = smoke || argv.includes('--quick');
  const json = argv.includes('--json');
  const withRedis = !smoke && !argv.includes('--no-redis');
  const localOpts = smoke ? { sliceMs: 40, rounds: 2 } : quick ? { sliceMs: 150, rounds: 3 } : { sliceMs: 400, rounds: 5 };
  const redisOpts = quick ? { sliceMs: 300, rounds: 3 } : { sliceMs: 1000, rounds: 5 };
  const out = (s: string) => (json ? process.stderr : process.stdout).write(`${s}\n`);
  const con = json ? new Console(process.stderr) : console;

  planRows(6 + (withRedis ? 4 : 0));
  progress(
    `cellgate concurrency benchmark: node ${process.version}, ${process.platform}/${process.arch}; ${localOpts.rounds} interleaved rounds of ${localOpts.sliceMs} ms per in-process row${withRedis ? `, ${redisOpts.rounds} of ${redisOpts.sliceMs} ms per Redis row` : ''}, after one warm-up round`,
  );
  const rows: Row[] = [];
  const group = async (name: string, cs: Contender[], opts: { sliceMs: number; rounds: number }) => rows.push(...checkPeaks(await runGroup(name, cs, opts), cs));
  // Each step is every caller doing `per` operations; one each under --smoke (bottleneck's 100 take about 0.3 s).
  await group(`in process, async: one key, ${LIMIT} slots, ${CALLERS} callers`, inProcessAsync(smoke ? 1 : 10), localOpts);
  await group(`in process, sync: limitSync + release, ${LIMIT} slots per key`, inProcessSync(), localOpts);
  const notes: string[] = [];
  if (withRedis) {
    const server = await startRedis();
    const set = await redisRows(server.host, server.port);
    try {
      await group(`Redis: one key, ${LIMIT} slots, ${CALLERS} callers`, set.oneKey, redisOpts);
      await group(`Redis: ${MANY_KEYS} keys (uniform), ${LIMIT} slots each, ${MANY_CALLERS} callers`, set.manyKeys, redisOpts);
    } finally {
      await set.close();
      await server.stop();
    }
  } else notes.push(smoke ? 'Redis rows skipped (--smoke)' : 'Redis rows skipped (--no-redis)');

  const pct = (x: number | null) => (x === null ? '—' : `${(100 * x).toFixed(1)}%`);
  const ms = (x: number | null) => (x === null ? '—' : x.toFixed(3));
  for (const g of [...new Set(rows.map((r) => r.group))]) {
    const mine = rows.filter((r) => r.group === g);
    const base = mine.find((r) => r.flagged === null);
    const timed = mine.some((r) => r.p50Ms !== null);
    out(`\n${g}`);
    con.table(
      mine.map((r) => ({
        contender: r.contender,
        [timed ? 'ops/s (median)' : 'decisions/s (median)']: fmtRate(r.perSecond),
        [timed ? 'ops' : 'decisions']: r.decisions.toLocaleString('en-US'),
        admitted: pct(r.admittedShare),
        'from intended source': r.expectedSource === null ? '— (not cellgate)' : `${pct(r.sourceShare)} '${r.expectedSource}'`,
        [`vs ${base ? base.contender.slice(0, 24) : 'first'}`]: r.flagged ? '— (flagged)' : base ? `${(r.perSecond / base.perSecond).toFixed(2)}x` : '—',
        ...(timed ? { 'acquire p50 ms': ms(r.p50Ms), 'acquire p99 ms': ms(r.p99Ms), 'peak in flight': peaks.get(r) ?? '—' } : {}),
        flag: r.flagged ?? '',
      })),
    );
  }
  out('\nops: acquire, a no-op async task, release, counted when the slot is back; acquire latency: from asking to the task starting. Ratios within this run.');
  for (const n of notes) out(`  note: ${n}`);
  if (json) {
    const doc = { node: process.version, platform: `${process.platform}/${process.arch}`, mode: smoke ? 'smoke' : quick ? 'quick' : 'full', limit: LIMIT, localOpts, redisOpts: withRedis ? redisOpts : null, rows: rows.map((r) => ({ ...r, peakInFlight: peaks.get(r) ?? null })), notes };
    process.stdout.write(`${JSON.stringify(doc)}\n`);
  }
}

await main();
