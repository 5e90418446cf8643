// Keys of a Cluster store split by the master that serves them: for tests
// that kill one master and watch its keys fall back while the others' stay
// strict.
import type { Redis } from 'ioredis';
import type { RedisStore } from '../../build/lib/src/stores/redis/index.js';

/**
 * `n` keys (`<prefix><i>`) served by the master on `port` and `n` served by
 * others, asked of the Cluster through `node` (any of its nodes) before
 * anything fails: a key's master is that of its shard's hash tag.
 *
 * @example
 * ```ts
 * const { lost, kept } = await keysByMaster(node, store, victim.port, 4, 'c:');
 * ```
 */
export async function keysByMaster(node: Pick<Redis, 'cluster'>, store: RedisStore, port: number, n: number, prefix: string): Promise<{ lost: string[]; kept: string[] }> {
  const slots = (await node.cluster('SLOTS')) as unknown as [number, number, [string, number]][];
  const portOf = async (key: string) => {
    const slot = (await node.cluster('KEYSLOT', store.shardKey(store.shardOf(key)))) as number;
    return slots.find(([from, to]) => slot >= from && slot <= to)![2][1];
  };
  const lost: string[] = [];
  const kept: string[] = [];
  for (let i = 0; lost.length < n || kept.length < n; i++) {
    const key = `${prefix}${i}`;
    const list = (await portOf(key)) === port ? lost : kept;
    if (list.length < n) list.push(key);
  }
  return { lost, kept };
}
