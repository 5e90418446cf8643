// Type-level check (npm run typecheck): every supported client, as its
// library types it, is accepted by `new RedisStore({ client })` without a
// cast; something else is not.
import { Cluster, Redis } from 'ioredis';
import { Cluster as ValkeyCluster, Redis as Valkey } from 'iovalkey';
import { createClient, createCluster } from 'redis';
import { createClient as createClient5, createCluster as createCluster5 } from 'redis5';
import { RedisStore } from '../../src/stores/redis/index.js';

export function accepted(): RedisStore[] {
  return [
    new RedisStore({ client: new Redis() }),
    new RedisStore({ client: new Cluster([{ port: 7000 }]) }),
    new RedisStore({ client: new Valkey() }),
    new RedisStore({ client: new ValkeyCluster([{ port: 7000 }]) }),
    new RedisStore({ client: createClient() }),
    new RedisStore({ client: createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:7000' }] }) }),
    new RedisStore({ client: createClient5() }),
    new RedisStore({ client: createCluster5({ rootNodes: [{ url: 'redis://127.0.0.1:7000' }] }) }),
  ];
}

export function refused(): void {
  // @ts-expect-error not a Redis client
  new RedisStore({ client: { get: () => 1 } });
}
