// The client matrix: RedisStore with every client it takes as it is
// (ioredis, iovalkey, node-redis 6 and 5), against real redis-server
// processes, standalone and Cluster. Each client gets the same checks: the
// decide script's agreement with the reference model through that client's
// replies, exactness under hostile keys and concurrency (also with stores on
// other clients sharing the keys), custom limiters (compare-and-set), the
// fleet heartbeat, a flushed script cache, a client not connected, and Redis
// killed, frozen and restarted.
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Limiter, fixedWindow, gcra, type Decision, type Policy, type RateLimiter } from '../build/lib/src/index.js';
import { RedisStore, RedisUnavailableError, type RedisConnection } from '../build/lib/src/stores/redis/index.js';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../build/lib/src/cli/redis-server.js';
import { modelClock, opArb, policyArb, runBoth, runScript, scriptOpArb } from './helpers/agreement.js';
import { keysByMaster } from './helpers/cluster-keys.js';
import { CLIENT_KINDS, type AnyClient, type ClientKind } from './helpers/clients.js';

/** Keys a hostile caller picks: unicode, lone surrogates, the hash-tag braces, separators, control bytes, the longest allowed. */
const HOSTILE_KEYS = ['user:1', 'é', '😀', '\ud800', '\udfff😀\ud83d', '{0}', '}{', 'a|b', 'a:b', ' ', '\r\n', '\u0000', 'x'.repeat(512), '雪'.repeat(512)];

let server: RedisServer;
let cluster: RedisCluster;
let admin: Redis;

beforeAll(async () => {
  [server, cluster] = await Promise.all([startRedis(), startRedisCluster({ masters: 3 })]);
  admin = new Redis({ host: server.host, port: server.port });
}, 60_000);

afterAll(async () => {
  admin?.disconnect();
  await Promise.all([server?.stop(), cluster?.stop()]);
});

/** Stores and clients made by a test, closed after it whatever happened. */
function cleanup(kind: ClientKind) {
  const stores: RedisStore[] = [];
  const clients: unknown[] = [];
  return {
    store(options: ConstructorParameters<typeof RedisStore>[0]): RedisStore {
      const store = new RedisStore(options);
      stores.push(store);
      return store;
    },
    client<T>(client: T): T {
      clients.push(client);
      return client;
    },
    async done(): Promise<void> {
      await Promise.all(stores.map((s) => s.close()));
      await Promise.all(clients.map((c) => kind.close(c)));
    },
  };
}

/** Each key hit `times` times at once through `limiters` in turn; the decisions by key. */
async function hammer(limiters: Limiter[], keys: string[], times: number): Promise<Map<string, Decision[]>> {
  const calls = keys.flatMap((key) => Array.from({ length: times }, (_, i) => limiters[i % limiters.length]!.limit(key).then((d) => [key, d] as const)));
  const byKey = new Map<string, Decision[]>(keys.map((k) => [k, []]));
  for (const [key, d] of await Promise.all(calls)) byKey.get(key)!.push(d);
  return byKey;
}

/** At most 2 a key, ever (until reset): a custom limiter, decided by compare-and-set in Redis. */
const twice: RateLimiter<{ used: number }> = {
  name: 'twice',
  capacity: 2,
  initial: () => ({ used: 0 }),
  decide: (state, _now, cost) =>
    state.used + cost > 2 ? { allowed: false, retryAfterMs: 60_000, remaining: 2 - state.used } : { allowed: true, state: { used: state.used + cost }, remaining: 2 - state.used - cost, ttlMs: 60_000 },
};

let run = 0;

describe.each(CLIENT_KINDS)('RedisStore with $name', (kind) => {
  const node = () => ({ host: server.host, port: server.port });

  describe('on one server', () => {
    it('the decide script agrees with the reference model through its replies', async () => {
      const client = await kind.standalone(node());
      try {
        await fc.assert(
          fc.asyncProperty(fc.array(policyArb, { minLength: 1, maxLength: 3 }), fc.array(scriptOpArb('limit'), { minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: 2e12 }), (ps, ops, start) =>
            runScript(client, `m${run++}:`, ps, ops, start).then(() => undefined),
          ),
          { numRuns: 40 },
        );
        await fc.assert(
          fc.asyncProperty(fc.array(policyArb, { minLength: 1, maxLength: 2 }), fc.array(opArb, { minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: 2e12 }), (ps, ops, start) =>
            runBoth(new RedisStore({ client, ...modelClock, timeoutMs: 10_000, prefix: `ma${run++}:` }), ps, ops, start, false),
          ),
          { numRuns: 25 },
        );
      } finally {
        await kind.close(client);
      }
    }, 60_000);

    it('admits exactly the limit of every hostile key, with a store on ioredis sharing the keys', async () => {
      const t = cleanup(kind);
      try {
        const prefix = `hostile${run++}:`;
        const policy = fixedWindow({ limit: 3, window: '1h' });
        const mine = new Limiter({ policy, store: t.store({ client: t.client(await kind.standalone(node())), prefix, timeoutMs: 10_000, negativeCache: false }) });
        const other = new Limiter({ policy, store: t.store({ client: t.client(new Redis(node()) as unknown as AnyClient), prefix, timeoutMs: 10_000, negativeCache: false }) });
        const byKey = await hammer([mine, other], HOSTILE_KEYS, 8);
        for (const [key, decisions] of byKey) {
          expect(decisions.filter((d) => d.allowed), `admitted for ${JSON.stringify(key)}`).toHaveLength(3);
          expect(new Set(decisions.map((d) => d.source))).toEqual(new Set(['redis']));
        }
        // One Redis key per distinct string, under the prefix: no two hostile keys met.
        const stored = (await admin.keys(`${prefix}*`)).filter((k) => k !== `${prefix}{fleet}`);
        expect(stored).toHaveLength(HOSTILE_KEYS.length);
      } finally {
        await t.done();
      }
    });

    it('decides a custom limiter by compare-and-set, exactly under concurrency', async () => {
      const t = cleanup(kind);
      try {
        const store = t.store({ client: t.client(await kind.standalone(node())), prefix: `cas${run++}:`, timeoutMs: 10_000 });
        const limiter = new Limiter({ policy: twice, store });
        const byKey = await hammer([limiter], ['a', '😀', '\ud800'], 6);
        for (const decisions of byKey.values()) {
          expect(decisions.filter((d) => d.allowed)).toHaveLength(2);
          expect(decisions.every((d) => d.source === 'redis')).toBe(true);
        }
        await limiter.reset('a');
        expect((await limiter.limit('a')).allowed).toBe(true);
      } finally {
        await t.done();
      }
    });

    it('joins the fleet (heartbeat) and leaves it on close', async () => {
      const t = cleanup(kind);
      try {
        const prefix = `fleet${run++}:`;
        const client = t.client(await kind.standalone(node()));
        const a = t.store({ client, prefix });
        const b = t.store({ client, prefix });
        await Promise.all([a.ready(), b.ready()]);
        await expect.poll(() => admin.zcard(`${prefix}{fleet}`), { timeout: 5000 }).toBe(2);
        await b.close();
        await expect.poll(() => admin.zcard(`${prefix}{fleet}`), { timeout: 5000 }).toBe(1);
      } finally {
        await t.done();
      }
    });

    it('stores made and closed on one client leave no listener on it', async () => {
      const client = (await kind.standalone(node())) as unknown as { listenerCount(event: string): number; on(event: string, l: () => void): unknown };
      // The owner's own listener, as node-redis requires one.
      client.on('error', () => {});
      const events = ['error', 'ready', 'connect', 'node-ready'];
      const count = () => events.map((e) => client.listenerCount(e));
      const before = count();
      try {
        for (let i = 0; i < 12; i++) {
          const store = new RedisStore({ client: client as never, prefix: `listen${run++}:`, timeoutMs: 10_000 });
          await store.ready();
          await store.close();
        }
        expect(count()).toEqual(before);
      } finally {
        await kind.close(client);
      }
    });

    it('sends the script again after SCRIPT FLUSH (EVALSHA answered NOSCRIPT)', async () => {
      const t = cleanup(kind);
      try {
        const limiter = new Limiter({ policy: fixedWindow({ limit: 10, window: '1h' }), store: t.store({ client: t.client(await kind.standalone(node())), prefix: `flush${run++}:`, timeoutMs: 10_000 }) });
        expect(await limiter.limit('a')).toMatchObject({ allowed: true, source: 'redis' });
        await admin.script('FLUSH');
        expect(await limiter.limit('b')).toMatchObject({ allowed: true, source: 'redis' });
        expect(await limiter.limit('a')).toMatchObject({ allowed: true, source: 'redis', remaining: 8 });
      } finally {
        await t.done();
      }
    });

    it('a client its owner has not connected: no heartbeat sent, ready() as the client behaves, decisions never throw', async () => {
      const t = cleanup(kind);
      try {
        const prefix = `idle${run++}:`;
        const client = t.client(await kind.standalone(node(), { connect: false }));
        const store = t.store({ client, prefix, timeoutMs: 200, connectTimeoutMs: 500 });
        const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }), store });
        expect(await admin.exists(`${prefix}{fleet}`)).toBe(0);
        if (kind.connectsOnFirstCommand) {
          // ioredis's lazyConnect: the first command connects.
          await store.ready();
          expect(await limiter.limit('k')).toMatchObject({ allowed: true, source: 'redis' });
        } else {
          // node-redis refuses commands until connect(): a typed error naming the server, and the fallback decides.
          const error = await store.ready().then(() => undefined, (e: unknown) => e);
          expect(error).toBeInstanceOf(RedisUnavailableError);
          expect(String((error as Error).message)).toContain(String(server.port));
          expect((await limiter.limit('k')).source).toBe('fallback');
        }
      } finally {
        await t.done();
      }
    });

    it('a wrong port: ready() rejects with RedisUnavailableError, decisions fall back, no unhandled error', async () => {
      const t = cleanup(kind);
      const unhandled: unknown[] = [];
      const onUnhandled = (e: unknown) => unhandled.push(e);
      process.on('unhandledRejection', onUnhandled);
      try {
        const dead = await startRedis();
        const port = dead.port;
        await dead.stop();
        const client = t.client(await kind.standalone({ host: server.host, port }, { connect: false }));
        const store = t.store({ client, prefix: `wrong${run++}:`, timeoutMs: 100, connectTimeoutMs: 300 });
        // node-redis users start the connection themselves (and catch its failure).
        (client as { connect?: () => Promise<unknown> }).connect?.().catch(() => {});
        await expect(store.ready()).rejects.toBeInstanceOf(RedisUnavailableError);
        const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }), store });
        const d = await limiter.limit('k');
        expect(d.source).toBe('fallback');
        await new Promise((r) => setTimeout(r, 200));
        expect(unhandled).toEqual([]);
      } finally {
        process.off('unhandledRejection', onUnhandled);
        await t.done();
      }
    });

    it('Redis killed (-9) and restarted, then frozen (SIGSTOP): calls resolve by the fallback within budget, then strictly again, charged back', async () => {
      const own = await startRedis();
      const t = cleanup(kind);
      try {
        const policy = fixedWindow({ limit: 100, window: '1h' });
        const store = t.store({ client: t.client(await kind.standalone({ host: own.host, port: own.port })), prefix: 'fault:', timeoutMs: 100, probeIntervalMs: 50, fallback: { nodes: 4 } });
        await store.ready();
        const limiter = new Limiter({ policy, store });
        const outage = async (fail: () => void, recover: () => Promise<void> | void): Promise<Decision[]> => {
          expect(await limiter.limit('k')).toMatchObject({ source: 'redis' });
          fail();
          const during: Decision[] = [];
          const until = performance.now() + 600;
          while (performance.now() < until) {
            during.push(await limiter.limit('k'));
            await new Promise((r) => setTimeout(r, 10));
          }
          await recover();
          await expect.poll(async () => (await limiter.limit('k')).source, { timeout: 10_000, interval: 50 }).toBe('redis');
          return during;
        };
        const killed = await outage(
          () => own.kill('SIGKILL'),
          () => own.restart(),
        );
        const frozen = await outage(
          () => own.kill('SIGSTOP'),
          () => own.kill('SIGCONT'),
        );
        for (const during of [killed, frozen]) {
          expect(during.filter((d) => d.source === 'fallback').length).toBeGreaterThan(0);
          // The fallback's share: 1/4 of the window's 100.
          expect(during.filter((d) => d.source === 'fallback' && d.allowed).length).toBeLessThanOrEqual(25);
        }
        await expect.poll(() => store.stats().owedKeys, { timeout: 5000 }).toBe(0);
        expect(store.stats().decisions.reconciled).toBeGreaterThan(0);
      } finally {
        await t.done();
        await own.stop();
      }
    }, 40_000);
  });

  describe('on a 3-master Cluster', () => {
    it('decides exactly over every master, with hostile keys, beside an ioredis store', async () => {
      const t = cleanup(kind);
      try {
        const prefix = `c${run++}:`;
        const { Cluster } = await import('ioredis');
        const policy = fixedWindow({ limit: 3, window: '1h' });
        const mine = t.store({ client: t.client(await kind.cluster(cluster.nodes)), prefix, timeoutMs: 10_000, negativeCache: false });
        const io = t.client(new Cluster(cluster.nodes) as unknown as AnyClient);
        const other = t.store({ client: io, prefix, timeoutMs: 10_000, negativeCache: false });
        const keys = [...HOSTILE_KEYS, ...Array.from({ length: 60 }, (_, i) => `spread:${i}`)];
        const byKey = await hammer([new Limiter({ policy, store: mine }), new Limiter({ policy, store: other })], keys, 6);
        for (const [key, decisions] of byKey) {
          expect(decisions.filter((d) => d.allowed), `admitted for ${JSON.stringify(key)}`).toHaveLength(3);
          expect(decisions.every((d) => d.source === 'redis')).toBe(true);
        }
        // The keys went to every master.
        const counts = await Promise.all(cluster.servers.map(async (s) => {
          const r = new Redis({ host: s.host, port: s.port });
          try {
            return (await r.keys(`${prefix}*`)).filter((k) => k !== `${prefix}{fleet}`).length;
          } finally {
            r.disconnect();
          }
        }));
        expect(counts.every((n) => n > 0)).toBe(true);
        expect(counts.reduce((a, b) => a + b, 0)).toBe(keys.length);
      } finally {
        await t.done();
      }
    }, 30_000);

    it('a master killed: keys on the others stay strict, its keys fall back, then all are strict again', async () => {
      const own = await startRedisCluster({ masters: 3 });
      const t = cleanup(kind);
      try {
        const store = t.store({ client: t.client(await kind.cluster(own.nodes)), prefix: 'ck:', timeoutMs: 100, probeIntervalMs: 50, fallback: { nodes: 4 } });
        await store.ready();
        const limiter = new Limiter({ policy: fixedWindow({ limit: 1000, window: '1h' }), store });
        // Which master serves each key (its shard's hash tag), asked of the servers themselves.
        const victim = own.servers[0]!;
        const probe = new Redis({ host: victim.host, port: victim.port });
        const { lost, kept } = await keysByMaster(probe, store, victim.port, 3, 'ck:').finally(() => probe.disconnect());
        victim.kill('SIGKILL');
        const during: [string, Decision][] = [];
        const until = performance.now() + 800;
        while (performance.now() < until) {
          for (const key of [...lost, ...kept]) during.push([key, await limiter.limit(key)]);
          await new Promise((r) => setTimeout(r, 10));
        }
        await victim.restart();
        const keptSources = new Set(during.filter(([k]) => kept.includes(k)).map(([, d]) => d.source));
        expect(keptSources).toEqual(new Set(['redis']));
        expect(during.some(([k, d]) => lost.includes(k) && d.source === 'fallback')).toBe(true);
        // A restarted cluster node serves again after its rejoin (about the cluster node timeout).
        for (const key of lost) await expect.poll(async () => (await limiter.limit(key)).source, { timeout: 15_000, interval: 100 }).toBe('redis');
      } finally {
        await t.done();
        await own.stop();
      }
    }, 40_000);

    it('agrees with the reference model through the Cluster', async () => {
      const client = await kind.cluster(cluster.nodes);
      try {
        await fc.assert(
          fc.asyncProperty(fc.array(policyArb as fc.Arbitrary<Policy>, { minLength: 1, maxLength: 2 }), fc.array(opArb, { minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: 2e12 }), (ps, ops, start) =>
            runBoth(new RedisStore({ client, ...modelClock, timeoutMs: 10_000, prefix: `cm${run++}:` }), ps, ops, start, false),
          ),
          { numRuns: 15 },
        );
      } finally {
        await kind.close(client);
      }
    }, 60_000);
  });
});

describe('beyond the four clients', () => {
  it('node-redis speaking RESP3 decides as with RESP2', async () => {
    const { createClient } = await import('redis');
    const client = await createClient({ RESP: 3, socket: { host: server.host, port: server.port } }).connect();
    const store = new RedisStore({ client, prefix: `resp3${run++}:`, timeoutMs: 10_000 });
    try {
      const byKey = await hammer([new Limiter({ policy: fixedWindow({ limit: 3, window: '1h' }), store })], HOSTILE_KEYS, 5);
      for (const decisions of byKey.values()) expect(decisions.map((d) => [d.allowed, d.source])).toEqual([...Array(3).fill([true, 'redis']), ...Array(2).fill([false, 'redis'])]);
      const custom = await hammer([new Limiter({ policy: twice, store })], ['a'], 4);
      expect(custom.get('a')!.filter((d) => d.allowed)).toHaveLength(2);
    } finally {
      await store.close();
      client.destroy();
    }
  });

  it('a RedisConnection written by hand around a client is enough', async () => {
    const redis = new Redis({ host: server.host, port: server.port });
    // The interface's TSDoc example, with ioredis's callBuffer as the client's send.
    const send = (args: (string | Uint8Array)[]) => redis.callBuffer(...(args as [string, ...(string | Buffer)[]]));
    const connection: RedisConnection = {
      cluster: false,
      get state() {
        return redis.status === 'ready' ? 'ready' : 'down';
      },
      target: `${server.host}:${server.port}`,
      async evalScript(script, key, args) {
        try {
          return await send(['EVALSHA', script.sha, '1', key, ...args]);
        } catch (error) {
          if (!String(error).includes('NOSCRIPT')) throw error;
          return send(['EVAL', script.lua, '1', key, ...args]);
        }
      },
      command: (args) => redis.call(...(args as [string, ...string[]])),
      on: (event, listener) => {
        redis.on(event, listener);
        return () => void redis.off(event, listener);
      },
    };
    await new Promise((r) => redis.once('ready', r));
    const store = new RedisStore({ client: connection, prefix: `hand${run++}:`, timeoutMs: 10_000 });
    try {
      await store.ready();
      const byKey = await hammer([new Limiter({ policy: fixedWindow({ limit: 2, window: '1h' }), store }), new Limiter({ policy: twice, store })], ['k', '😀'], 6);
      for (const decisions of byKey.values()) expect(decisions.every((d) => d.source === 'redis')).toBe(true);
    } finally {
      await store.close();
      redis.disconnect();
    }
  });

  it('a connection answering bulk strings as text: the calls fail to the fallback, never a decision read from garbage', async () => {
    const redis = new Redis({ host: server.host, port: server.port });
    const connection: RedisConnection = {
      cluster: false,
      state: 'ready',
      target: 'text-replies',
      // `call` (not callBuffer): bulk strings come back as (mangled) strings.
      evalScript: (script, key, args) => redis.call('EVAL', script.lua, '1', key as string, ...(args as string[])),
      command: (args) => redis.call(...(args as [string, ...string[]])),
      on: (event, listener) => void redis.on(event, listener),
    };
    const store = new RedisStore({ client: connection, prefix: `text${run++}:`, timeoutMs: 2000, fallback: 'closed' });
    try {
      const limiter = new Limiter({ policy: fixedWindow({ limit: 5, window: '1h' }), store });
      const decisions = await Promise.all([1, 2, 3].map(() => limiter.limit('k')));
      expect(decisions.map((d) => [d.allowed, d.source])).toEqual(Array(3).fill([false, 'fallback']));
      expect(store.stats().state).toBe('open');
    } finally {
      await store.close();
      redis.disconnect();
    }
  });

  it('refuses what is no client, naming every accepted kind, and leaves the object untouched', () => {
    for (const client of [undefined, null, 42, 'redis://localhost', {}, { sendCommand() {} }, { evalScript() {} }]) {
      const before = client !== null && typeof client === 'object' ? JSON.stringify(Object.keys(client)) : '';
      expect(() => new RedisStore({ client: client as never })).toThrow(/client must be an ioredis or iovalkey Redis or Cluster, a node-redis client or cluster \(v5 or later\), or a RedisConnection/);
      if (client !== null && typeof client === 'object') expect(JSON.stringify(Object.keys(client))).toBe(before);
    }
  });
});

describe('a client refusing calls at once while others are on the wire', () => {
  it('the fallback waits for the answers in flight: no admission on top of what Redis has just admitted', async () => {
    const redis = new Redis({ host: server.host, port: server.port });
    await new Promise((r) => redis.once('ready', r));
    let pending = 0;
    // Like a client whose command queue is full: while a decide call is on the wire (held 50 ms), the next is refused at once.
    const connection: RedisConnection = {
      cluster: false,
      state: 'ready',
      target: 'queue-full',
      async evalScript(script, key, args) {
        if (script.name !== 'cellgateDecide') return redis.callBuffer('EVAL', script.lua, '1', key as string, ...(args as string[]));
        if (pending > 0) throw new Error('The queue is full');
        pending++;
        try {
          const reply = await redis.callBuffer('EVAL', script.lua, '1', key as string, ...(args as string[]));
          await new Promise((r) => setTimeout(r, 50));
          return reply;
        } finally {
          pending--;
        }
      },
      command: (args) => redis.call(...(args as [string, ...string[]])),
      on: () => {},
    };
    const store = new RedisStore({ client: connection, prefix: `full${run++}:`, timeoutMs: 1000, probeIntervalMs: 20, fallback: { nodes: 1 } });
    try {
      const limiter = new Limiter({ policy: fixedWindow({ limit: 20, window: '1h' }), store });
      const first = Array.from({ length: 20 }, () => limiter.limit('k'));
      await new Promise((r) => setImmediate(r)); // the first batch is on the wire
      const second = Array.from({ length: 40 }, () => limiter.limit('k'));
      const decisions = await Promise.all([...first, ...second]);
      expect(decisions.filter((d) => d.source === 'fallback').length).toBeGreaterThan(0);
      expect(decisions.filter((d) => d.allowed)).toHaveLength(20);
    } finally {
      await store.close();
      redis.disconnect();
    }
  });
});
