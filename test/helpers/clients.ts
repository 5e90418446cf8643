// The Redis clients RedisStore takes, each made as its users make it, for the
// client matrix (test/redis-clients.test.ts): ioredis, iovalkey, node-redis 6
// and node-redis 5, standalone and Cluster.
import { Cluster as IoCluster, Redis as IoRedis } from 'ioredis';
import { Cluster as ValkeyCluster, Redis as Valkey } from 'iovalkey';
import { createClient, createCluster } from 'redis';
import { createClient as createClient5, createCluster as createCluster5 } from 'redis5';

import type { RedisStoreOptions } from '../../build/lib/src/stores/redis/index.js';

type Node = { host: string; port: number };
/** Any client the store takes. */
export type AnyClient = RedisStoreOptions['client'];

/** One client library: how its users make a client and a Cluster client, and close them. */
export interface ClientKind {
  name: string;
  /** Whether a client made but not connected sends (ioredis connects at its first command) or refuses (node-redis). */
  connectsOnFirstCommand: boolean;
  /** A connected client (node-redis: connect() awaited; `connect: false` leaves it unconnected). */
  standalone(node: Node, options?: { connect?: boolean }): Promise<AnyClient>;
  cluster(nodes: Node[]): Promise<AnyClient>;
  close(client: unknown): Promise<void>;
}

/** Reconnection every 50 ms (the tests restart servers): each library's own option for it. */
const RETRY_MS = 50;

function ioredisLike(name: string, Redis: typeof IoRedis, Cluster: typeof IoCluster): ClientKind {
  return {
    name,
    connectsOnFirstCommand: true,
    async standalone(node, { connect = true } = {}) {
      return new Redis({ ...node, maxRetriesPerRequest: 1, retryStrategy: () => RETRY_MS, lazyConnect: !connect }) as unknown as AnyClient;
    },
    async cluster(nodes) {
      return new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: 1 }, clusterRetryStrategy: () => RETRY_MS }) as unknown as AnyClient;
    },
    async close(client) {
      (client as IoRedis).disconnect();
    },
  };
}

function nodeRedis(name: string, make: typeof createClient, makeCluster: typeof createCluster): ClientKind {
  return {
    name,
    connectsOnFirstCommand: false,
    async standalone(node, { connect = true } = {}) {
      const client = make({ socket: { ...node, reconnectStrategy: () => RETRY_MS } });
      // node-redis throws an 'error' event nobody listens to; the store listens once it has the client.
      if (connect) await client.connect();
      return client as unknown as AnyClient;
    },
    async cluster(nodes) {
      const cluster = makeCluster({ rootNodes: nodes.map((socket) => ({ socket })), defaults: { socket: { reconnectStrategy: () => RETRY_MS } } });
      await cluster.connect();
      return cluster as unknown as AnyClient;
    },
    async close(client) {
      const c = client as { isOpen: boolean; destroy(): void };
      if (c.isOpen) c.destroy();
    },
  };
}

export const CLIENT_KINDS: ClientKind[] = [
  ioredisLike('ioredis', IoRedis, IoCluster),
  ioredisLike('iovalkey', Valkey as unknown as typeof IoRedis, ValkeyCluster as unknown as typeof IoCluster),
  nodeRedis('node-redis 6', createClient, createCluster),
  nodeRedis('node-redis 5', createClient5 as unknown as typeof createClient, createCluster5 as unknown as typeof createCluster),
];
