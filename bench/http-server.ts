// One server variant of the HTTP gateway benchmark (bench/http.ts), alone in
// its own process so that no variant shares JIT state or an event loop with
// the load generator or another variant. Started by bench/http.ts with an IPC
// channel:
//   node --import tsx bench/http-server.ts VARIANT KEY REDIS_PORT
// VARIANT: see VARIANTS below; KEY: ip | header (the x-api-key header).
// It listens on a free loopback port, sends { port } to the parent, and on
// the parent's 'stop' sends { stats } (the cellgate RedisStore's decisions
// by source, when there is one) and exits.
import fastifyRedisRateLimit from '@fastify/rate-limit';
import express from 'express';
import { rateLimit as expressRateLimit } from 'express-rate-limit';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import type { AddressInfo } from 'node:net';
import { RedisStore as ErlRedisStore, type RedisReply } from 'rate-limit-redis';
import { Limiter, gcra } from '../build/lib/src/index.js';
import { fastifyRateLimit, nodeRateLimit } from '../build/lib/src/http/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';

/** The server variants, by id: the framework and what limits it (bench/http.ts imports only the types). */
export const VARIANTS = [
  'express-bare',
  'express-cellgate-embedded',
  'express-cellgate-redis',
  'express-erl-redis',
  'fastify-bare',
  'fastify-cellgate-embedded',
  'fastify-cellgate-redis',
  'fastify-rate-limit-redis',
] as const;

/** One of {@link VARIANTS}. */
export type Variant = (typeof VARIANTS)[number];

/** How requests are keyed: by client address (one key for the single load generator) or by the x-api-key header. */
export type KeyMode = 'ip' | 'header';

/** The messages this process sends its parent. */
export type ServerMessage = { port: number } | { stats: unknown };

/** The answer of every variant: a short text, so that the cost measured is the framework's and the limiter's. */
const BODY = 'ok\n';

/**
 * Admits every request: 100k per second (the most a 1 s period allows) with a
 * burst of 100k per key, so that the cost measured is the limiter's, not
 * 429s. The peers get the same numbers (100k per 1 s window).
 */
const LIMIT = 100_000;

/** The x-api-key header's value, for the peers' key generators (cellgate keys by it itself). */
function apiKey(headers: Record<string, string | string[] | undefined>): string {
  const value = headers['x-api-key'];
  return Array.isArray(value) ? value.join(', ') : (value ?? '');
}

/**
 * Builds the variant's server and starts it on a free loopback port; returns
 * its port, a function returning the store's statistics, and how to close it.
 */
async function start(variant: Variant, keyMode: KeyMode, redisPort: number): Promise<{ port: number; stats: () => unknown; close: () => void }> {
  const needsRedis = variant.endsWith('-redis');
  // cellgate's store batches itself: ioredis's autopipelining would only add a
  // tick. The peers get ioredis's defaults, as their READMEs show.
  const client = needsRedis ? new Redis({ host: '127.0.0.1', port: redisPort, ...(variant.includes('-cellgate-') ? { enableAutoPipelining: false } : {}) }) : undefined;
  let stats: () => unknown = () => undefined;
  let limiter: Limiter | undefined;
  const policy = gcra({ limit: LIMIT, period: '1s', burst: 100_000 });
  if (variant.endsWith('-cellgate-embedded')) {
    limiter = new Limiter({ policy });
  } else if (variant.endsWith('-cellgate-redis')) {
    const store = new RedisStore({ client: client!, prefix: `bench-http:${variant}:${keyMode}:` });
    limiter = new Limiter({ policy, store });
    stats = () => store.stats();
  }
  const key = keyMode === 'header' ? { header: 'x-api-key' } : 'ip';

  if (variant.startsWith('express-')) {
    const app = express();
    if (limiter !== undefined) app.use(nodeRateLimit({ limiter, key }));
    if (variant === 'express-erl-redis') {
      app.use(
        expressRateLimit({
          windowMs: 1000,
          limit: LIMIT,
          standardHeaders: 'draft-8',
          legacyHeaders: false,
          ...(keyMode === 'header' ? { keyGenerator: (req) => apiKey(req.headers) } : {}),
          // rate-limit-redis's documented call shape for ioredis: client.call(command, ...args).
          store: new ErlRedisStore({
            prefix: `bench-http:erl:${keyMode}:`,
            sendCommand: (command: string, ...args: string[]) => client!.call(command, ...args) as Promise<RedisReply>,
          }),
        }),
      );
    }
    app.get('/', (_req, res) => {
      res.type('text/plain').send(BODY);
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    return { port: (server.address() as AddressInfo).port, stats, close: () => server.close() };
  }

  const app = Fastify({ logger: false });
  if (limiter !== undefined) app.addHook('onRequest', fastifyRateLimit({ limiter, key }));
  if (variant === 'fastify-rate-limit-redis') {
    await app.register(fastifyRedisRateLimit, {
      max: LIMIT,
      timeWindow: 1000,
      redis: client!,
      nameSpace: `bench-http:frl:${keyMode}:`,
      ...(keyMode === 'header' ? { keyGenerator: (req: { headers: Record<string, string | string[] | undefined> }) => apiKey(req.headers) } : {}),
    });
  }
  app.get('/', async (_req, reply) => {
    reply.type('text/plain');
    return BODY;
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { port: (app.server.address() as AddressInfo).port, stats, close: () => void app.close() };
}

/** Runs the variant named on the command line until the parent says 'stop'. */
async function main(): Promise<void> {
  const [variant, keyMode, redisPort] = process.argv.slice(2) as [Variant, KeyMode, string];
  if (!VARIANTS.includes(variant) || (keyMode !== 'ip' && keyMode !== 'header') || process.send === undefined) {
    throw new Error(`usage (from bench/http.ts, with an IPC channel): http-server.ts ${VARIANTS.join('|')} ip|header REDIS_PORT`);
  }
  const server = await start(variant, keyMode, Number(redisPort));
  process.on('message', (message) => {
    if (message !== 'stop') return;
    server.close();
    process.send!({ stats: server.stats() } satisfies ServerMessage, () => process.exit(0));
  });
  process.send({ port: server.port } satisfies ServerMessage);
}

await main();
