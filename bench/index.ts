// npm run bench: the embedded limiter against its peers, in one run.
//   --quick  short timings, for a smoke run
//   --json   also print the results as JSON (for CI trend tracking)
import { benchEmbedded, memoryPerKey, type Row } from './embedded.js';
import { benchKeyHash } from './key-hash.js';

const quick = process.argv.includes('--quick');
const json = process.argv.includes('--json');
const keyCounts = quick ? [10_000] : [10_000, 1_000_000];
const timeMs = quick ? 300 : 1500;

const fmt = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : `${(x / 1e3).toFixed(0)}k`);

console.log(`cellgate embedded benchmark: node ${process.version}, ${process.platform}/${process.arch}`);
const rows = await benchEmbedded(keyCounts, timeMs);
for (const n of keyCounts) {
  const mine = rows.filter((r) => r.keys === n);
  const base = mine.find((r) => r.contender === 'cellgate limitSync')!.perSecond;
  console.log(`\n${n.toLocaleString('en-US')} distinct keys`);
  console.table(
    mine.map((r) => ({ contender: r.contender, 'decisions/s': fmt(r.perSecond), 'limitSync / this': (base / r.perSecond).toFixed(2) + 'x' })),
  );
}

const at = (n: number, name: string) => rows.find((r) => r.keys === n && r.contender === name)?.perSecond ?? NaN;
console.log('\nsummary (ratios within this run):');
for (const n of keyCounts) {
  const sync = at(n, 'cellgate limitSync');
  const line = (label: string, value: number, target?: number) =>
    console.log(`  ${n.toLocaleString('en-US')} keys: ${label} = ${value.toFixed(1)}x${target ? ` (target >= ${target}x: ${value >= target ? 'met' : 'MISSED'})` : ''}`);
  line('limitSync / RateLimiterMemory.consume', sync / at(n, 'rate-limiter-flexible RateLimiterMemory.consume'), 10);
  line('limitSync / limiter package', sync / at(n, 'limiter TokenBucket per key (Map)'));
  line('limitSync / reference model', sync / at(n, 'reference model (pure TS)'));
  line('batch / limitSync', at(n, 'cellgate limitManySync (batches of 1024)') / sync);
  if (n === 10_000) {
    console.log(`  10,000 keys: limitSync = ${fmt(sync)} decisions/s (target >= 20M: ${sync >= 20e6 ? 'met' : 'MISSED'})`);
  }
}

const memN = quick ? 100_000 : 1_000_000;
const memory = await memoryPerKey(memN);
console.log(`\nmemory per key at ${memN.toLocaleString('en-US')} keys`);
console.table(memory.map((m) => ({ contender: m.contender, 'bytes/key': m.bytesPerKey.toFixed(0), note: m.note })));
if (!(globalThis as { gc?: unknown }).gc) console.log('(run with --expose-gc for the heap figures)');

const hashes = await benchKeyHash(quick ? 200 : 1000);
console.log('\nkey hashing, ns per key (one run; a decision hashes its key once)');
console.table(hashes.map((h) => ({ hash: h.hash, 'key length': h.keyLength, 'ns/key': h.nsPerKey.toFixed(1) })));
const table = memory.find((m) => m.contender === 'cellgate EmbeddedStore')!;
console.log(`  ${memN.toLocaleString('en-US')} live keys: ${table.bytesPerKey.toFixed(1)} bytes/key in the table (target <= 48: ${table.bytesPerKey <= 48 ? 'met' : 'MISSED'})`);

if (json) console.log(JSON.stringify({ rows, memory, hashes }, null, 2));
