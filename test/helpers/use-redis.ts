// One redis-server and one ioredis client for a whole test file: started
// before its tests, stopped after.
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { startRedis, type RedisServer } from '../../build/lib/src/cli/redis-server.js';

/** What {@link useRedis} provides once its `beforeAll` has run. */
export interface RedisFixture {
  server: RedisServer;
  client: Redis;
}

/**
 * Registers the file's hooks; read the fields inside tests.
 *
 * @example
 * ```ts
 * const redis = useRedis();
 * it('works', async () => expect(await redis.client.ping()).toBe('PONG'));
 * ```
 */
export function useRedis(): RedisFixture {
  const fixture = {} as RedisFixture;
  beforeAll(async () => {
    fixture.server = await startRedis();
    fixture.client = new Redis({ host: fixture.server.host, port: fixture.server.port, maxRetriesPerRequest: 1 });
  }, 30_000);
  afterAll(async () => {
    fixture.client?.disconnect();
    await fixture.server?.stop();
  });
  return fixture;
}
