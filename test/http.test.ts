// cellgate/http on real servers on loopback under Node: node:http, Express
// and Fastify with the Node adapters, and the Fetch adapter called as
// Bun.serve and Deno.serve call it (their own servers are tested under their
// runtimes in test/runtime/{bun,deno}-http). Status codes, header values
// against the policy, key extraction and trusted proxies.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, Limiter, fixedWindow, gcra } from '../src/index.js';
import { clientAddress, fastifyRateLimit, nodeRateLimit, rateLimit } from '../src/http/index.js';
import { RedisStore } from '../src/redis/index.js';
import { startRedis } from './helpers/redis-process.js';

const servers: { close(): unknown }[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

/** gcra 2 per second, burst 2, on a frozen clock: 2 pass, the 3rd waits 500 ms. */
const twoPerSecond = () => new Limiter({ policy: gcra({ limit: 2, period: '1s', burst: 2 }), clock: () => 0 });

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push({ close: () => new Promise((resolve) => server.close(resolve)) });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

async function hit(url: string, times: number, headers: Record<string, string> = {}): Promise<Response[]> {
  const out: Response[] = [];
  for (let i = 0; i < times; i++) {
    const res = await fetch(url, { headers });
    await res.text();
    out.push(res);
  }
  return out;
}

/** What every adapter must answer to 3 requests of one client under twoPerSecond(). */
function expectThirdDenied(responses: Response[]): void {
  expect(responses.map((r) => r.status)).toEqual([200, 200, 429]);
  const [first, second, third] = responses as [Response, Response, Response];
  expect(first.headers.get('ratelimit-policy')).toBe('"gcra";q=2;w=1');
  expect(first.headers.get('ratelimit')).toBe('"gcra";r=1;t=1');
  expect(second.headers.get('ratelimit')).toBe('"gcra";r=0;t=1');
  expect(third.headers.get('ratelimit')).toBe('"gcra";r=0;t=1');
  expect(third.headers.get('retry-after')).toBe('1');
  expect(first.headers.get('retry-after')).toBeNull();
}

describe('node:http with nodeRateLimit', () => {
  function serve(options: Parameters<typeof nodeRateLimit>[0]): Promise<string> {
    const mw = nodeRateLimit(options);
    return listen(
      createServer((req: IncomingMessage, res: ServerResponse) =>
        mw(req, res, (error?: unknown) => {
          res.statusCode = error === undefined ? 200 : 500;
          res.end('ok');
        }),
      ),
    );
  }

  it('admits, then answers 429 with Retry-After and the draft headers', async () => {
    expectThirdDenied(await hit(await serve({ limiter: twoPerSecond() }), 3));
  });

  it('sends the legacy X-RateLimit trio on request', async () => {
    const [, , third] = await hit(await serve({ limiter: twoPerSecond(), headers: 'legacy' }), 3);
    expect(third!.headers.get('x-ratelimit-limit')).toBe('2');
    expect(third!.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(third!.headers.get('x-ratelimit-reset')).toBe('1');
    expect(third!.headers.get('ratelimit')).toBeNull();
  });

  it('ignores X-Forwarded-For unless the proxy is trusted', async () => {
    // Untrusted: a client cannot escape its limit by inventing addresses.
    const spoofed = await serve({ limiter: twoPerSecond() });
    const statuses = (await Promise.all(['1.1.1.1', '2.2.2.2', '3.3.3.3'].map((ip) => hit(spoofed, 1, { 'x-forwarded-for': ip })))).flat().map((r) => r.status);
    expect(statuses.sort()).toEqual([200, 200, 429]);
    // One trusted hop (the loopback peer is the proxy): each forwarded client has its own budget.
    const limiter = twoPerSecond();
    const proxied = await serve({ limiter, trustProxy: 1 });
    for (const ip of ['1.1.1.1', '2.2.2.2', '3.3.3.3']) expect((await hit(proxied, 1, { 'x-forwarded-for': ip }))[0]!.status).toBe(200);
    expect((await limiter.peek('ip:2.2.2.2')).remaining).toBe(0); // 1 used, and peek's own 1
  });

  it('keys by a header, costs per request, and skips what it is told to', async () => {
    const limiter = twoPerSecond();
    const url = await serve({ limiter, key: { header: 'x-api-key' }, cost: (req) => (req.url === '/big' ? 2 : 1), skip: (req) => req.url === '/health' });
    expect((await hit(`${url}big`, 1, { 'x-api-key': 'a' }))[0]!.status).toBe(200);
    expect((await hit(url, 1, { 'x-api-key': 'a' }))[0]!.status).toBe(429); // 'a' spent both units at once
    expect((await hit(url, 1, { 'x-api-key': 'b' }))[0]!.status).toBe(200); // another key
    expect((await hit(`${url}health`, 5, { 'x-api-key': 'a' })).map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
  });
});

describe('Express and Fastify', () => {
  it('Express: app.use(nodeRateLimit(...))', async () => {
    const app = express();
    app.use(nodeRateLimit({ limiter: twoPerSecond() }));
    app.get('/', (_req, res) => {
      res.send('ok');
    });
    expectThirdDenied(await hit(await listen(createServer(app)), 3));
  });

  it('Fastify: an onRequest hook', async () => {
    const app = Fastify();
    app.addHook('onRequest', fastifyRateLimit({ limiter: twoPerSecond() }));
    app.get('/', async () => 'ok');
    await app.listen({ port: 0, host: '127.0.0.1' });
    servers.push({ close: () => app.close() });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`;
    expectThirdDenied(await hit(url, 3));
  });
});

describe('the Fetch adapter', () => {
  it('serves under node:http through a Request bridge, as Bun.serve and Deno.serve call it', async () => {
    const limiter = twoPerSecond();
    const handler = rateLimit(() => new Response('ok'), { limiter });
    // Deno.serve passes { remoteAddr }, Bun.serve passes the server (requestIP).
    const deno = await handler(new Request('http://x/'), { remoteAddr: { hostname: '192.0.2.1' } } as never);
    const bun = await handler(new Request('http://x/'), { requestIP: () => ({ address: '192.0.2.2' }) } as never);
    expect([deno.status, bun.status]).toEqual([200, 200]);
    expect((await limiter.peek('ip:192.0.2.1')).remaining).toBe(0);
    expect((await limiter.peek('ip:192.0.2.2')).remaining).toBe(0);
    const responses = [];
    for (let i = 0; i < 3; i++) responses.push(await handler(new Request('http://x/'), { remoteAddr: { hostname: '192.0.2.9' } } as never));
    expectThirdDenied(responses);
  });

  it('lets the denial response be configured, and adds headers to immutable responses', async () => {
    const handler = rateLimit(async () => Response.redirect('http://example.test/', 302), {
      limiter: new Limiter({ policy: fixedWindow({ limit: 1, window: '1m' }), clock: () => 0 }),
      key: () => 'everyone',
      onLimited: (d) => Response.json({ error: 'slow down', retryAfterMs: d.retryAfterMs }, { status: 503 }),
    });
    const ok = await handler(new Request('http://x/'));
    expect(ok.status).toBe(302);
    expect(ok.headers.get('ratelimit')).toBe('"fixedWindow";r=0;t=60');
    const denied = await handler(new Request('http://x/'));
    expect(denied.status).toBe(503);
    expect(await denied.json()).toEqual({ error: 'slow down', retryAfterMs: 60_000 });
    expect(denied.headers.get('retry-after')).toBe('60');
  });

  it('follows the store’s fallback policy when Redis is down', async () => {
    const own = await startRedis();
    const redis = new Redis({ host: own.host, port: own.port, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    redis.on('error', () => {});
    const open = new RedisStore({ client: redis, prefix: 'http-open:', timeoutMs: 100, fallback: 'open' });
    const closed = new RedisStore({ client: redis, prefix: 'http-closed:', timeoutMs: 100, fallback: 'closed' });
    try {
      const policy = gcra({ limit: 100, period: '1s' });
      const viaOpen = rateLimit(() => new Response('ok'), { limiter: new Limiter({ policy, store: open }), key: () => 'k' });
      const viaClosed = rateLimit(() => new Response('ok'), { limiter: new Limiter({ policy, store: closed }), key: () => 'k' });
      expect((await viaOpen(new Request('http://x/'))).status).toBe(200);
      own.kill('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await viaOpen(new Request('http://x/'))).status).toBe(200);
      expect((await viaClosed(new Request('http://x/'))).status).toBe(429);
    } finally {
      open.close();
      closed.close();
      redis.disconnect();
      await own.stop();
    }
  });

  it('rejects bad options with a typed error naming them', () => {
    const limiter = twoPerSecond();
    const cases: [unknown, string][] = [
      [{}, 'limiter'],
      [{ limiter, key: 'cookie' }, 'key'],
      [{ limiter, key: { header: '' } }, 'key'],
      [{ limiter, trustProxy: -1 }, 'trustProxy'],
      [{ limiter, cost: 0 }, 'cost'],
      [{ limiter, skip: true }, 'skip'],
      [{ limiter, headers: 'ietf' }, 'headers'],
      [{ limiter, onLimited: 429 }, 'onLimited'],
    ];
    for (const [options, parameter] of cases) {
      expect(() => rateLimit(() => new Response(), options as never)).toThrow(ConfigError);
      expect(() => rateLimit(() => new Response(), options as never)).toThrow(expect.objectContaining({ parameter }));
    }
  });
});

describe('clientAddress', () => {
  it('believes only the trusted hops', () => {
    expect(clientAddress('10.0.0.2', '203.0.113.7, 10.0.0.1', false)).toBe('10.0.0.2');
    expect(clientAddress('10.0.0.2', '203.0.113.7, 10.0.0.1', 1)).toBe('10.0.0.1');
    expect(clientAddress('10.0.0.2', '203.0.113.7, 10.0.0.1', 2)).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.2', '203.0.113.7, 10.0.0.1', 9)).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.2', '6.6.6.6, 203.0.113.7', ['10.0.0.2'])).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.2', '6.6.6.6, 203.0.113.7', ['9.9.9.9'])).toBe('10.0.0.2');
    expect(clientAddress('::ffff:127.0.0.1', null, true)).toBe('127.0.0.1');
    expect(clientAddress(undefined, '1.2.3.4', 1)).toBeUndefined();
  });
});
