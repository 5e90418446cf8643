// What keyed hashing costs: SipHash-1-3 under a secret seed (the table's hash
// since cellgate 0.2) against the unkeyed 64-bit hash it replaced (still the
// fleet-wide shard hash of the Redis store), on the same keys in one run. The
// difference is what a decision pays for keys nobody can aim.
import { Bench } from 'tinybench';
import { hashKey, hashSeed, keyLo } from '../src/key-hash.js';
import { shardHash } from '../src/redis/shard-hash.js';

const INNER = 1000;

export interface HashRow {
  readonly hash: string;
  readonly keyLength: number;
  readonly nsPerKey: number;
}

export async function benchKeyHash(timeMs: number): Promise<HashRow[]> {
  const seed = hashSeed();
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
      .add(`SipHash-1-3, keyed (${label})`, () => {
        for (let i = 0; i < INNER; i++) {
          hashKey(keys[cursor++ & 4095]!, seed);
          sink ^= keyLo;
        }
      })
      .add(`unkeyed cyrb-64 (${label})`, () => {
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
