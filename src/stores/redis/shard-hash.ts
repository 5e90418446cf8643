/**
 * The 32-bit hash that picks a key's virtual shard in Redis. It must be the
 * same in every process of a fleet (a key's Redis state lives under its
 * shard's hash tag), so unlike the table's hash it has no secret seed. That is
 * safe because nothing is indexed by it alone: Redis keys hold the whole key,
 * so two keys with the same shard share a cluster slot and a batch, never a
 * state. Knowing it lets a client aim load at one shard, as it could by
 * sending more requests anyway. Two lanes over two UTF-16 units per step,
 * cross-mixed at the end (the cyrb53 construction); the high lane is
 * returned, whose top bits are the shard.
 * @internal
 *
 * @example
 * ```ts
 * const shard = shardHash('user:1') >>> (32 - 6); // one of 64 shards
 * ```
 */
export function shardHash(key: string): number {
  const n = key.length;
  let h1 = 0xdeadbeef ^ n;
  let h2 = 0x41c6ce57 ^ n;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const c = key.charCodeAt(i) | (key.charCodeAt(i + 1) << 16);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  if (i < n) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return h2 >>> 0;
}
