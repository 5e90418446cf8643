// What keyed hashing costs a decision: writing the key's code units into the
// core and SipHash-1-3 under a secret seed there (the table's hash since
// cellgate 0.2), against the unkeyed 64-bit hash in JavaScript it replaced
// (still the fleet-wide shard hash of the Redis store), on the same keys in
// one run.
import { Bench } from 'tinybench';
import { shardHash } from '../build/lib/src/stores/redis/shard-hash.js';
import { CoreViews, writeKey } from '../build/lib/src/core/core-views.js';
import { instantiateCore } from '../build/lib/src/core/wasm.js';

const INNER = 1000;

export interface HashRow {
  readonly hash: string;
  readonly keyLength: number;
  readonly nsPerKey: number;
}

export async function benchKeyHash(timeMs: number): Promise<HashRow[]> {
  const core = instantiateCore();
  core.init(0, 0, 0, 1, 1024);
  const seed = crypto.getRandomValues(new Uint32Array(4));
  core.seed(seed[0]!, seed[1]!, seed[2]!, seed[3]!);
  const views = new CoreViews(core);
  const rows: HashRow[] = [];
  for (const [label, make] of [
    ['user:<n>', (i: number) => `user:${i}`],
    ['64-char API key', (i: number) => `key_${i.toString(36).padStart(8, '0')}${'x'.repeat(52)}`],
  ] as const) {
    const keys = Array.from({ length: 4096 }, (_, i) => make(i));
    let sink = 0;
    let cursor = 0;
    const bench = new Bench({ time: timeMs, warmupTime: Math.min(300, timeMs / 2) });
    bench
      .add(`SipHash-1-3 in the core, keyed (${label})`, () => {
        // What a decision does before its lookup: the key into the core, hashed there.
        for (let i = 0; i < INNER; i++) core.hashToBatch(writeKey(views, keys[cursor++ & 4095]!), 0);
      })
      .add(`cyrb-64 in JS, unkeyed: cellgate 0.1 (${label})`, () => {
        for (let i = 0; i < INNER; i++) sink ^= shardHash(keys[cursor++ & 4095]!);
      });
    await bench.run();
    if (sink === 0.5) console.log(sink); // keeps the results alive
    for (const task of bench.tasks) {
      const period = (task.result as { period?: number }).period ?? NaN;
      rows.push({ hash: task.name, keyLength: keys[100]!.length, nsPerKey: (period * 1e6) / INNER });
    }
  }
  return rows;
}
