// `cellgate bench --redis URL` from the installed package (no devDependencies):
// cellgate's strict and leased Redis stores on the user's Redis, with the
// user's client library, beside rate-limiter-flexible's RateLimiterRedis
// when the user has it installed (its documented normal configuration, on
// the same server, the same limit and the same keys). Each row counts its
// decisions and shows the admitted share; ratios are from this one run.
import { pathToFileURL } from 'node:url';
import { Limiter } from '../limiter/limiter.js';
import { gcra } from '../policies/gcra.js';
import { RedisStore } from '../stores/redis/redis-store.js';
import { pickHot, pickUniform, rng } from './key-picks.js';
import { closedLoop, syncLoop, type Measured } from './measure.js';
import { connect, resolveInProject, type Connected, type RedisUrl } from './redis-clients.js';

const CALLERS = 1000;
const STRICT = 'cellgate RedisStore (strict)';
const PEER = 'rate-limiter-flexible RateLimiterRedis';

/** One row: a contender in a setting, or why it has no figures. */
export interface BenchRow {
  row: string;
  contender: string;
  result?: Measured;
  missing?: string;
  /**
   * Set when some of the row's decisions were not made through Redis (the
   * store's fallback decided them: Redis did not answer within timeoutMs):
   * the figures are then not the Redis store's, and no ratio uses them.
   */
  flagged?: string;
}

/** What `--json` prints. */
export interface RedisBenchReport {
  redis: string;
  client: string;
  durationMs: number;
  rows: BenchRow[];
  ratios: string[];
}

type Decide = (key: string) => Promise<boolean>;

/** Measures `run` on `store`, flagging the row when the store's fallback decided any of it. */
async function onStore(store: RedisStore, row: string, contender: string, run: () => Promise<Measured>): Promise<BenchRow> {
  const before = store.stats().decisions.fallback;
  const result = await run();
  const fallback = store.stats().decisions.fallback - before;
  return fallback === 0 ? { row, contender, result } : { row, contender, result, flagged: `${fallback.toLocaleString('en-US')} decisions by the fallback (Redis did not answer within timeoutMs): not a Redis figure` };
}

/** rate-limiter-flexible's RateLimiterRedis on the same client library, if the user has it installed. */
async function peer(redis: Connected): Promise<{ decide: Decide } | { missing: string }> {
  const entry = resolveInProject('rate-limiter-flexible');
  if (entry === undefined) return { missing: 'not installed here (npm install rate-limiter-flexible to compare)' };
  const module = (await import(pathToFileURL(entry).href)) as { RateLimiterRedis?: new (o: object) => { consume(key: string): Promise<unknown> }; default?: { RateLimiterRedis?: unknown } };
  const RateLimiterRedis = (module.RateLimiterRedis ?? module.default?.RateLimiterRedis) as new (o: object) => { consume(key: string): Promise<unknown> };
  // Its documented setup: the client as storeClient (node-redis with useRedisPackage), points per duration.
  const limiter = new RateLimiterRedis({ storeClient: redis.client, ...(redis.library === 'redis' ? { useRedisPackage: true } : {}), points: 1000, duration: 1, keyPrefix: 'cellgate-bench-rlf' });
  return { decide: (key) => limiter.consume(key).then(() => true, () => false) };
}

/**
 * Runs the rows on `url` and returns the report; `progress` hears a line
 * before each row (the command prints them on stderr when it is a TTY).
 *
 * @example
 * ```ts
 * const report = await benchRedis(parseRedisUrl('redis://127.0.0.1:6379'), { durationMs: 3000 });
 * ```
 */
export async function benchRedis(url: RedisUrl, options: { durationMs: number; client?: string; progress?: (line: string) => void }): Promise<RedisBenchReport> {
  const progress = options.progress ?? (() => {});
  const ms = options.durationMs;
  const redis = await connect(url, 5000, options.client);
  const stores: RedisStore[] = [];
  const rows: BenchRow[] = [];
  try {
    // The limit of bench/redis.ts: 1000 per second per key, so that uniform keys are seldom denied and the store is what is measured.
    const strictStore = new RedisStore({ client: redis.client, prefix: 'cellgate-bench:' });
    stores.push(strictStore);
    await strictStore.ready();
    const strict = new Limiter({ policy: gcra({ limit: 1000, period: '1s', burst: 1000 }), store: strictStore });
    const cellgate: Decide = async (key) => (await strict.limit(key)).allowed;
    const theirs = await peer(redis);
    const contenders: [string, Decide | string][] = [
      [STRICT, cellgate],
      [PEER, 'decide' in theirs ? theirs.decide : theirs.missing],
    ];
    progress('warming up');
    for (const [, decide] of contenders) if (typeof decide !== 'string') await closedLoop(decide, pickUniform(rng(9)), CALLERS, Math.min(ms, 1000));
    for (const [row, pick, callers] of [
      [`${CALLERS} concurrent callers, 10k keys, uniform`, pickUniform, CALLERS],
      [`${CALLERS} concurrent callers, 10k keys, hot keys (1% of keys take 90% of hits)`, pickHot, CALLERS],
      ['one caller, one call at a time (latency of a decision)', pickUniform, 1],
    ] as const) {
      for (const [contender, decide] of contenders) {
        progress(`${row}: ${contender}`);
        if (typeof decide === 'string') rows.push({ row, contender, missing: decide });
        else if (contender === STRICT) rows.push(await onStore(strictStore, row, contender, () => closedLoop(decide, pick(rng(1)), callers, ms)));
        else rows.push({ row, contender, result: await closedLoop(decide, pick(rng(1)), callers, ms) });
      }
    }
    // Leased mode spends leases in process: a limit high enough that leases, not denials, are measured (bench/redis.ts's).
    const leasedStore = new RedisStore({ client: redis.client, prefix: 'cellgate-bench-leased:', mode: 'leased' });
    stores.push(leasedStore);
    await leasedStore.ready();
    const leased = new Limiter({ policy: gcra({ limit: 100_000, period: '1s', burst: 10_000 }), store: leasedStore });
    const leasedRow = 'leased mode, hot keys, gcra 100k/s burst 10k per key';
    progress(`${leasedRow}: limitSync`);
    rows.push(await onStore(leasedStore, leasedRow, 'cellgate leased limitSync (1000 per event-loop turn)', () => syncLoop((key) => leased.limitSync(key).allowed, pickHot(rng(3)), 1000, ms)));
    progress(`${leasedRow}: await limit()`);
    rows.push(await onStore(leasedStore, leasedRow, `cellgate leased await limit(), ${CALLERS} callers`, () => closedLoop(async (key) => (await leased.limit(key)).allowed, pickHot(rng(3)), CALLERS, ms)));
  } finally {
    await Promise.all(stores.map((s) => s.close()));
    await redis.close();
  }
  const ratios: string[] = [];
  for (const row of new Set(rows.map((r) => r.row))) {
    const ours = rows.find((r) => r.row === row && r.contender === STRICT);
    const peerRow = rows.find((r) => r.row === row && r.contender === PEER);
    if (ours?.result !== undefined && ours.flagged === undefined && peerRow?.result !== undefined) {
      ratios.push(`${row}: cellgate / RateLimiterRedis = ${(ours.result.perSecond / peerRow.result.perSecond).toFixed(2)}x decisions/s, p50 ${ours.result.p50.toFixed(3)} vs ${peerRow.result.p50.toFixed(3)} ms`);
    }
  }
  return { redis: url.shown, client: `${redis.library} ${redis.version}${redis.cluster ? ' (Cluster)' : ''}`, durationMs: ms, rows, ratios };
}

/**
 * The report as text tables, one per row.
 *
 * @example
 * ```ts
 * process.stdout.write(formatBench(report));
 * ```
 */
export function formatBench(report: RedisBenchReport): string {
  const out = [`cellgate bench: ${report.redis} with ${report.client}, ${report.durationMs} ms a contender (one run: ratios between rows of this run only)`];
  const cell = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '—');
  for (const row of new Set(report.rows.map((r) => r.row))) {
    out.push('', row);
    out.push(`  ${'contender'.padEnd(52)} ${'decisions/s'.padStart(12)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)}  admitted`);
    for (const r of report.rows.filter((x) => x.row === row)) {
      if (r.result === undefined) {
        out.push(`  ${r.contender.padEnd(52)} ${'—'.padStart(12)}  ${r.missing}`);
        continue;
      }
      const { perSecond, p50, p99, admitted, decisions } = r.result;
      const share = decisions === 0 ? '—' : `${((100 * admitted) / decisions).toFixed(1)}%`;
      out.push(`  ${r.contender.padEnd(52)} ${Math.round(perSecond).toLocaleString('en-US').padStart(12)} ${cell(p50).padStart(8)} ${cell(p99).padStart(8)}  ${admitted.toLocaleString('en-US')} of ${decisions.toLocaleString('en-US')} (${share})`);
      if (r.flagged !== undefined) out.push(`  ${''.padEnd(52)} FLAGGED: ${r.flagged}`);
    }
  }
  if (report.ratios.length > 0) out.push('', 'ratios (this run):', ...report.ratios.map((r) => `  ${r}`));
  return `${out.join('\n')}\n`;
}
