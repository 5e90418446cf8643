// The Redis rows of npm run bench, on one redis-server started here on a free
// loopback port (both contenders on the same server, in the same run):
//   - strict, 1000 concurrent callers over 10k uniform keys: cellgate
//     RedisStore (every decision must come from 'redis') against
//     rate-limiter-flexible's RateLimiterRedis;
//   - strict, serial (one call at a time): decisions/s and p50/p99 latency;
//   - strict on a 3-master cluster (ioredis Cluster clients), 1000 callers;
//   - leased mode on hot keys (1% of 10k keys take 90% of hits): RedisStore
//     `mode: 'leased'`, limitSync and await limit(); at least half of the
//     decisions must come from a lease ('lease'), else the row is flagged.
// Every contender allows 1000/s per key (cellgate gcra burst 10; rlf 1000
// points per 1 s window). Rows go through bench/harness.ts (interleaved rounds).
import { Cluster, Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { Limiter, gcra } from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { pickHot, pickUniform, rng } from '../build/lib/src/cli/key-picks.js';
import type { Contender, Step } from './harness.js';

const CALLERS = 1000;
const policy = gcra({ limit: 1000, period: '1s', burst: 10 });

type Decide = (key: string) => Promise<{ allowed: boolean; off: boolean }>;

/** 1000 concurrent callers, each making `per` decisions awaiting each one. */
function concurrent(decide: Decide, pick: () => string, per: number): () => Promise<Step> {
  return async () => {
    let allowed = 0;
    let off = 0;
    await Promise.all(
      Array.from({ length: CALLERS }, async () => {
        for (let i = 0; i < per; i++) {
          const d = await decide(pick());
          if (d.allowed) allowed++;
          if (d.off) off++;
        }
      }),
    );
    return { made: CALLERS * per, allowed, offSource: off };
  };
}

/** One call at a time, 100 per step, each call's latency recorded. */
function serial(decide: Decide, pick: () => string): () => Promise<Step> {
  return async () => {
    let allowed = 0;
    let off = 0;
    const latencies: number[] = [];
    for (let i = 0; i < 100; i++) {
      const t = performance.now();
      const d = await decide(pick());
      latencies.push(performance.now() - t);
      if (d.allowed) allowed++;
      if (d.off) off++;
    }
    return { made: 100, allowed, offSource: off, latencies };
  };
}

const redis = { expect: 'redis', minShare: 1 };

/** cellgate RedisStore strict and RateLimiterRedis, each on its own client to the same server(s). */
function strictPair(ours: Redis | Cluster, theirs: Redis | Cluster): [Decide, Decide] {
  const strict = new Limiter({ policy, store: new RedisStore({ client: ours, prefix: 'bench:' }) });
  const rlf = new RateLimiterRedis({ storeClient: theirs, points: 1000, duration: 1, keyPrefix: 'rlf' });
  const cg: Decide = async (key) => {
    const d = await strict.limit(key);
    return { allowed: d.allowed, off: d.source !== 'redis' };
  };
  const flex: Decide = (key) => rlf.consume(key).then(() => ({ allowed: true, off: false }), () => ({ allowed: false, off: false }));
  return [cg, flex];
}

/** Strict, 1000 concurrent callers over 10k keys, on a 3-master cluster: an ioredis Cluster client for each contender. */
export function clusterContenders(nodes: { host: string; port: number }[]): { contenders: Contender[]; close(): Promise<void> } {
  const ours = new Cluster(nodes);
  const theirs = new Cluster(nodes);
  const [cg, flex] = strictPair(ours, theirs);
  return {
    contenders: [
      { name: `cellgate RedisStore strict await limit() on a Cluster, ${CALLERS} callers`, source: redis, step: concurrent(cg, pickUniform(rng(5)), 5) },
      { name: `rate-limiter-flexible RateLimiterRedis await consume() on a Cluster, ${CALLERS} callers`, step: concurrent(flex, pickUniform(rng(5)), 5) },
    ],
    async close() {
      await Promise.all([ours.quit(), theirs.quit()]);
    },
  };
}

export interface RedisSet {
  strict: Contender[];
  serial: Contender[];
  leased: Contender[];
  close(): void;
}

export function redisContenders(host: string, port: number): RedisSet {
  const ours = new Redis({ host, port });
  const theirs = new Redis({ host, port });
  const leasedClient = new Redis({ host, port });
  const [cg, flex] = strictPair(ours, theirs);

  const leasedSync = new Limiter({ policy, store: new RedisStore({ client: leasedClient, prefix: 'leased-sync:', mode: 'leased' }) });
  const leasedAsync = new Limiter({ policy, store: new RedisStore({ client: leasedClient, prefix: 'leased-async:', mode: 'leased' }) });
  const hotSync = pickHot(rng(3));
  const hotAsync = pickHot(rng(4));
  const lease = { expect: 'lease', minShare: 0.5 };
  return {
    strict: [
      { name: `cellgate RedisStore strict await limit(), ${CALLERS} callers`, source: redis, step: concurrent(cg, pickUniform(rng(1)), 5) },
      { name: `rate-limiter-flexible RateLimiterRedis await consume(), ${CALLERS} callers`, step: concurrent(flex, pickUniform(rng(1)), 5) },
    ],
    serial: [
      { name: 'cellgate RedisStore strict await limit(), one at a time', source: redis, step: serial(cg, pickUniform(rng(2))) },
      { name: 'rate-limiter-flexible RateLimiterRedis await consume(), one at a time', step: serial(flex, pickUniform(rng(2))) },
    ],
    leased: [
      {
        // One caller deciding 1000 times per event-loop turn (a gateway's loop); the harness yields between slices,
        // and each step yields once so that lease answers are read.
        name: 'cellgate RedisStore leased limitSync, 1000 per event-loop turn',
        source: lease,
        step: async () => {
          let allowed = 0;
          let off = 0;
          for (let i = 0; i < 1000; i++) {
            const d = leasedSync.limitSync(hotSync());
            if (d.allowed) allowed++;
            if (d.source !== 'lease') off++;
          }
          await new Promise((r) => setImmediate(r));
          return { made: 1000, allowed, offSource: off };
        },
      },
      {
        name: 'cellgate RedisStore leased await limit(), 1000 calls started per event-loop turn',
        source: lease,
        step: async () => {
          let allowed = 0;
          let off = 0;
          const ds = await Promise.all(Array.from({ length: 1000 }, () => leasedAsync.limit(hotAsync())));
          for (const d of ds) {
            if (d.allowed) allowed++;
            if (d.source !== 'lease') off++;
          }
          return { made: 1000, allowed, offSource: off };
        },
      },
    ],
    close() {
      ours.disconnect();
      theirs.disconnect();
      leasedClient.disconnect();
    },
  };
}
