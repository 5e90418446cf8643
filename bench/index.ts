// npm run bench: cellgate against its peers, every contender in its documented
// normal configuration and the same limit per key (1000/s; burst 10 where the
// contender has one), like-for-like rows (sync against sync, async against
// async, clock read per decision against the same), in one run.
// How: each group's contenders run in interleaved rounds (one warm-up round,
// then A B C, A B C, ...); a row is the median decisions/s of its rounds, with
// the decisions it made, the share admitted, and for cellgate the share from
// the intended Decision.source (a row short of it is flagged, not compared).
// Ratios are taken within this run only. See bench/harness.ts.
//   --quick  fewer, shorter rounds (about a minute)
//   --smoke  embedded rows at 10k keys only, a few seconds (the harness's own test)
//   --json   one JSON document on stdout and nothing else; tables go to stderr
//   --no-redis  skip the Redis rows
// Also: memory per live key, and what hashing a key costs (bench/key-hash.ts).
// Progress lines go to stderr as rows finish.
import { embeddedContenders, hotKeyContenders, memoryPerKey } from './embedded.js';
import { benchKeyHash } from './key-hash.js';
import { fmtRate, planRows, progress, runGroup, type Row } from './harness.js';
import { clusterContenders, redisContenders } from './redis-rows.js';
import { startRedis, startRedisCluster } from '../build/lib/src/cli/redis-server.js';
import { Console } from 'node:console';

const argv = process.argv.slice(2);
const smoke = argv.includes('--smoke');
const quick = smoke || argv.includes('--quick');
const json = argv.includes('--json');
const withRedis = !smoke && !argv.includes('--no-redis');
const keyCounts = smoke ? [10_000] : [10_000, 1_000_000];
const embeddedOpts = smoke ? { sliceMs: 40, rounds: 2 } : quick ? { sliceMs: 150, rounds: 3 } : { sliceMs: 400, rounds: 5 };
const redisOpts = quick ? { sliceMs: 300, rounds: 3 } : { sliceMs: 1000, rounds: 5 };
const memN = smoke ? 10_000 : quick ? 100_000 : 1_000_000;

/** Tables: stdout normally, stderr under --json (stdout then holds only the JSON document). */
const out = (s: string) => (json ? process.stderr : process.stdout).write(`${s}\n`);
const con = json ? new Console(process.stderr) : console;

planRows(keyCounts.length * 6 + 2 + (withRedis ? 8 : 0));
progress(`cellgate benchmark: node ${process.version}, ${process.platform}/${process.arch}; ${embeddedOpts.rounds} interleaved rounds of ${embeddedOpts.sliceMs} ms per embedded row${withRedis ? `, ${redisOpts.rounds} of ${redisOpts.sliceMs} ms per Redis row` : ''}, after one warm-up round`);

const CLUSTER_GROUP = 'Redis Cluster (3 masters) strict, 1000 concurrent callers, 10k keys';
const rows: Row[] = [];
const notes: string[] = [];
for (const n of keyCounts) {
  rows.push(...(await runGroup(`embedded ${n.toLocaleString('en-US')} keys`, embeddedContenders(n), embeddedOpts)));
}
rows.push(...(await runGroup('embedded one hot key, async', hotKeyContenders(), embeddedOpts)));

if (withRedis) {
  const server = await startRedis();
  const set = redisContenders(server.host, server.port);
  try {
    rows.push(...(await runGroup('Redis strict, 1000 concurrent callers, 10k keys', set.strict, redisOpts)));
    rows.push(...(await runGroup('Redis strict, serial (one call at a time), 10k keys', set.serial, redisOpts)));
    rows.push(...(await runGroup('Redis leased, hot keys (1% of 10k keys take 90% of hits)', set.leased, redisOpts)));
  } finally {
    set.close();
    await server.stop();
  }
  progress('starting a 3-master redis cluster');
  const cluster = await startRedisCluster({ masters: 3 });
  const onCluster = clusterContenders(cluster.nodes);
  try {
    rows.push(...(await runGroup(CLUSTER_GROUP, onCluster.contenders, redisOpts)));
  } finally {
    await onCluster.close();
    await cluster.stop();
  }
} else notes.push(smoke ? 'Redis rows skipped (--smoke)' : 'Redis rows skipped (--no-redis)');

progress(`memory per live key at ${memN.toLocaleString('en-US')} keys`);
const memory = await memoryPerKey(memN);
progress('key hashing, ns per key');
const hashes = await benchKeyHash(smoke ? 50 : quick ? 200 : 1000);
if (!(globalThis as { gc?: unknown }).gc) notes.push('run with --expose-gc for the JS heap figures of the peers');

// ---- tables
const pct = (x: number | null) => (x === null ? '—' : `${(100 * x).toFixed(1)}%`);
const ms = (x: number | null) => (x === null ? '— (not timed per call)' : x.toFixed(3));
for (const group of [...new Set(rows.map((r) => r.group))]) {
  const mine = rows.filter((r) => r.group === group);
  const base = mine.find((r) => r.flagged === null);
  out(`\n${group}`);
  const timed = mine.some((r) => r.p50Ms !== null);
  con.table(
    mine.map((r) => ({
      contender: r.contender,
      'decisions/s (median)': fmtRate(r.perSecond),
      decisions: r.decisions.toLocaleString('en-US'),
      admitted: pct(r.admittedShare),
      'from intended source': r.expectedSource === null ? '— (not cellgate)' : `${pct(r.sourceShare)} '${r.expectedSource}'`,
      [`vs ${base ? base.contender.slice(0, 24) : 'first'}`]: r.flagged ? '— (flagged)' : base ? `${(r.perSecond / base.perSecond).toFixed(2)}x` : '—',
      ...(timed ? { 'p50 ms': ms(r.p50Ms), 'p99 ms': ms(r.p99Ms) } : {}),
      flag: r.flagged ?? '',
    })),
  );
}
out(`\nmemory per key at ${memN.toLocaleString('en-US')} keys`);
con.table(memory.map((m) => ({ contender: m.contender, 'bytes/key': Number.isFinite(m.bytesPerKey) ? m.bytesPerKey.toFixed(1) : '—', note: m.note })));
out('\nkey hashing, ns per key (tinybench, one run; a decision hashes its key once)');
con.table(hashes.map((h) => ({ hash: h.hash, 'key length': h.keyLength, 'ns/key': h.nsPerKey.toFixed(1) })));

// ---- summary of the goals
interface Goal {
  goal: string;
  status: 'met' | 'MISSED' | 'not measured';
  figure: string;
}
const goals: Goal[] = [];
const find = (group: string, prefix: string) => rows.find((r) => r.group === group && r.contender.startsWith(prefix));
/** A goal on rows of this run; not measured when a row is missing or flagged (with the reason). */
function goal(name: string, parts: (Row | undefined)[], value: (...r: Row[]) => number, target: number, unit: 'x' | '/s' | 'ms<=' ): void {
  const missing = parts.findIndex((r) => r === undefined);
  if (missing >= 0) return void goals.push({ goal: name, status: 'not measured', figure: '— (row not run in this mode)' });
  const flagged = parts.find((r) => r!.flagged !== null);
  if (flagged) return void goals.push({ goal: name, status: 'not measured', figure: `— (${flagged.contender}: ${flagged.flagged})` });
  const v = value(...(parts as Row[]));
  const ok = unit === 'ms<=' ? v <= target : v >= target;
  const figure = unit === 'x' ? `${v.toFixed(2)}x` : unit === '/s' ? `${fmtRate(v)}/s` : `${v.toFixed(3)} ms vs ${target.toFixed(3)} ms`;
  goals.push({ goal: name, status: ok ? 'met' : 'MISSED', figure });
}
const ratio = (a: Row, b: Row) => a.perSecond / b.perSecond;
for (const [n, min] of [[10_000, 15e6], [1_000_000, 8e6]] as const) {
  const g = `embedded ${n.toLocaleString('en-US')} keys`;
  const sync = find(g, 'cellgate limitSync (default');
  const exact = find(g, 'cellgate limitSync (systemClock');
  const lim = find(g, 'limiter ');
  goal(`limitSync >= ${min / 1e6} M/s at ${n.toLocaleString('en-US')} keys`, [sync], (a) => a.perSecond, min, '/s');
  goal(`limitSync >= 10x RateLimiterMemory at ${n.toLocaleString('en-US')} keys`, [sync, find(g, 'rate-limiter-flexible')], ratio, 10, 'x');
  goal(`limitSync >= 1.2x limiter, both reading the clock per decision, ${n.toLocaleString('en-US')} keys`, [exact, lim], ratio, 1.2, 'x');
  goal(`limitSync (default clock) >= 2x limiter, ${n.toLocaleString('en-US')} keys`, [sync, lim], ratio, 2, 'x');
  goal(`limitManySync >= 2x limitSync per decision, ${n.toLocaleString('en-US')} keys`, [find(g, 'cellgate limitManySync'), sync], ratio, 2, 'x');
}
goal('await limit() >= 3x rlf consume() at 10k keys', [find('embedded 10,000 keys', 'cellgate await'), find('embedded 10,000 keys', 'rate-limiter-flexible')], ratio, 3, 'x');
goal('await limit() >= 1.5x rlf consume() on one hot key', [find('embedded one hot key, async', 'cellgate'), find('embedded one hot key, async', 'rate-limiter')], ratio, 1.5, 'x');
const strictG = 'Redis strict, 1000 concurrent callers, 10k keys';
goal('Redis strict 1000 callers 10k keys >= 5x RateLimiterRedis', [find(strictG, 'cellgate'), find(strictG, 'rate-limiter')], ratio, 5, 'x');
goal('Redis strict 1000 callers 10k keys >= 250k decisions/s', [find(strictG, 'cellgate')], (a) => a.perSecond, 250e3, '/s');
const serialG = 'Redis strict, serial (one call at a time), 10k keys';
const rlfSerial = find(serialG, 'rate-limiter');
goal("Redis serial p50 no worse than rlf's", [find(serialG, 'cellgate'), rlfSerial], (a) => a.p50Ms ?? Infinity, rlfSerial?.p50Ms ?? 0, 'ms<=');
goal('Redis Cluster (3 masters) >= 3x rlf', [find(CLUSTER_GROUP, 'cellgate'), find(CLUSTER_GROUP, 'rate-limiter')], ratio, 3, 'x');
goal('leased await limit() >= 1 M/s on hot keys', [find('Redis leased, hot keys (1% of 10k keys take 90% of hits)', 'cellgate RedisStore leased await')], (a) => a.perSecond, 1e6, '/s');
const table = memory.find((m) => m.contender === 'cellgate EmbeddedStore');
if (memN === 1_000_000 && table) goals.push({ goal: '<= 48 bytes per live key at 1M keys', status: table.bytesPerKey <= 48 ? 'met' : 'MISSED', figure: `${table.bytesPerKey.toFixed(1)} bytes/key` });
else goals.push({ goal: '<= 48 bytes per live key at 1M keys', status: 'not measured', figure: `— (measured at ${memN.toLocaleString('en-US')} keys in this mode: ${table?.bytesPerKey.toFixed(1)} bytes/key)` });

out('\nsummary (ratios within this run; flagged rows are not compared)');
for (const g of goals) out(`  ${g.status.padEnd(12)} ${g.goal}: ${g.figure}`);
for (const n of notes) out(`  note: ${n}`);

if (json) {
  process.stdout.write(
    `${JSON.stringify({ node: process.version, platform: `${process.platform}/${process.arch}`, mode: smoke ? 'smoke' : quick ? 'quick' : 'full', embeddedOpts, redisOpts: withRedis ? redisOpts : null, rows, memory, hashes, goals, notes })}\n`,
  );
}
