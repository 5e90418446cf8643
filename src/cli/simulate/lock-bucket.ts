// The lock-contention scenario's foil: a leaky bucket kept in Redis and
// guarded by a lock, written the way blog posts and Stack Overflow answers
// write it (and not cellgate's design). Every step is its own round trip:
//
//   1. SET <key>:lock <token> NX PX <lockTtlMs>   take the lock (SETNX with a TTL,
//      so that a client dying inside the critical section cannot wedge the fleet)
//   2. taken by someone else? sleep <retryMs> (a fixed delay) and go to 1
//   3. GET <key>                                  the bucket: {"level":L,"at":ms}
//   4. leak in the client: level = max(0, L - (now - at) x rate / 1000)
//   5. SET <key> {"level":level(+1 if it fits),"at":now}
//   6. DEL <key>:lock
//   7. it fitted (level + 1 <= capacity): admitted. Otherwise sleep until one
//      request's worth has leaked out and go to 1.
//
// Only the pods of `cellgate simulate --scenario lock-contention` use it.
import type { Redis } from 'ioredis';
import { AcquireTimeoutError } from '../../index.js';

/** The settings of {@link lockedLeakyBucket}. */
export interface LockedLeakyBucketOptions {
  /** Requests per second the bucket leaks (the limit). */
  rate: number;
  /** How many requests the bucket holds (the burst). */
  capacity: number;
  /** The lock's expiry (PX), ms. */
  lockTtlMs: number;
  /** The fixed sleep before trying a taken lock again, ms. */
  retryMs: number;
}

/** A lock-guarded leaky bucket's acquire, shaped like `Limiter.acquire` for the pod's loop. */
export interface LockedLeakyBucket {
  /** Resolves when the caller may send one request; rejects with AcquireTimeoutError past `maxWaitMs`. */
  acquire(key: string, options: { maxWaitMs: number }): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A leaky bucket in Redis behind a `SET NX PX` lock, as commonly written
 * (the steps are in this module's header comment).
 *
 * @example
 * ```ts
 * const bucket = lockedLeakyBucket(new Redis(), { rate: 500, capacity: 1, lockTtlMs: 1000, retryMs: 10 });
 * await bucket.acquire('upstream', { maxWaitMs: 5_000 }); // now call the upstream
 * ```
 */
export function lockedLeakyBucket(redis: Redis, { rate, capacity, lockTtlMs, retryMs }: LockedLeakyBucketOptions): LockedLeakyBucket {
  let serial = 0;
  return {
    async acquire(key, { maxWaitMs }) {
      const asked = Date.now();
      const lock = `${key}:lock`;
      const token = `${process.pid}:${++serial}`;
      for (;;) {
        if (Date.now() - asked > maxWaitMs) throw new AcquireTimeoutError(key, Date.now() - asked, maxWaitMs);
        if ((await redis.set(lock, token, 'PX', lockTtlMs, 'NX')) !== 'OK') {
          await sleep(retryMs);
          continue;
        }
        const now = Date.now();
        const state = JSON.parse((await redis.get(key)) ?? '{"level":0,"at":0}') as { level: number; at: number };
        const level = Math.max(0, state.level - ((now - state.at) * rate) / 1000);
        const fits = level + 1 <= capacity;
        await redis.set(key, JSON.stringify({ level: fits ? level + 1 : level, at: now }));
        await redis.del(lock);
        if (fits) return;
        // Full: wait until one request's worth has leaked out, then queue for the lock again.
        await sleep(Math.max(1, ((level + 1 - capacity) * 1000) / rate));
      }
    },
  };
}
