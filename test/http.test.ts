// cellgate/http on real servers on loopback under Node: node:http, Express
// and Fastify with the Node adapters, and the Fetch adapter called as
// Bun.serve and Deno.serve call it (their own servers are tested under their
// runtimes in test/runtime/{bun,deno}-http). Status codes, header values
// against the policy, key extraction and trusted proxies.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import fc from 'fast-check';
import express from 'express';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, Limiter, fixedWindow, gcra } from '../build/lib/src/index.js';
import { clientAddress, fastifyRateLimit, keyDigest, nodeRateLimit, rateLimit } from '../build/lib/src/http/index.js';
import { parseNode } from '../build/lib/src/http/ip.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { startRedis } from '../build/lib/src/cli/redis-server.js';

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

/**
 * Serves a Fetch-API handler on node:http: each request bridged to a
 * `Request` and passed with `context(req)` as the runtime's second argument
 * (Deno.serve's `{ remoteAddr }`, Bun.serve's server with `requestIP`), the
 * `Response` written back; a rejection answers 500, as Bun and Deno do.
 */
function serveFetch(handler: (request: Request, context: unknown) => Promise<Response>, context: (req: IncomingMessage) => unknown): Promise<string> {
  return listen(
    createServer(async (req, res) => {
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers.set(name, value);
      const response = await handler(new Request(`http://x${req.url}`, { headers }), context(req)).catch(() => new Response('error', { status: 500 }));
      response.headers.forEach((value, name) => res.setHeader(name, value));
      res.statusCode = response.status;
      res.end(await response.text());
    }),
  );
}
/** What Deno.serve passes after the request: the connection's info. */
const denoInfo = (req: IncomingMessage) => ({ remoteAddr: { hostname: req.socket.remoteAddress } });
/** What Bun.serve passes after the request: the server, which tells a request's address. */
const bunServer = (req: IncomingMessage) => ({ requestIP: () => ({ address: req.socket.remoteAddress }) });

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
    // Either runtime's second argument gives the peer's address, which keys
    // the request (without it there is no key, and every request gets 400).
    for (const context of [denoInfo, bunServer]) {
      const limiter = twoPerSecond();
      let served = 0;
      const url = await serveFetch(rateLimit(() => (served++, new Response('ok')), { limiter }), context);
      expectThirdDenied(await hit(url, 3));
      expect(served).toBe(2);
      expect((await limiter.peek('ip:127.0.0.1')).allowed).toBe(false);
    }
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

/**
 * Each adapter on a real loopback server, serving 'ok' from a handler that
 * counts its calls. node:http is wired as the README says (an error answers
 * 500); `ignoring` wires it the unsafe way (every `next` serves), which must
 * still never serve a request whose key is unusable.
 */
type Options = Parameters<typeof nodeRateLimit>[0];
const adapters: { name: string; start(options: Options, served: { count: number }): Promise<string> }[] = [
  {
    name: 'node:http',
    start(options, served) {
      const mw = nodeRateLimit(options);
      return listen(
        createServer((req, res) =>
          mw(req, res, (error) => {
            if (error) {
              res.statusCode = 500;
              return res.end('error');
            }
            served.count++;
            res.end('ok');
          }),
        ),
      );
    },
  },
  {
    name: 'node:http, next errors ignored',
    start(options, served) {
      const mw = nodeRateLimit(options);
      return listen(
        createServer((req, res) =>
          mw(req, res, () => {
            served.count++;
            res.end('ok');
          }),
        ),
      );
    },
  },
  {
    name: 'Express',
    start(options, served) {
      const app = express();
      app.use(nodeRateLimit(options));
      app.get('/', (_req, res) => {
        served.count++;
        res.send('ok');
      });
      return listen(createServer(app));
    },
  },
  {
    name: 'Fastify',
    async start(options, served) {
      const app = Fastify();
      app.addHook('onRequest', fastifyRateLimit(options));
      app.get('/', async () => {
        served.count++;
        return 'ok';
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      servers.push({ close: () => app.close() });
      return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`;
    },
  },
  {
    name: 'Fetch (as Deno.serve calls it)',
    start(options, served) {
      const handler = rateLimit(
        () => {
          served.count++;
          return new Response('ok');
        },
        options as never,
      );
      return serveFetch(handler, denoInfo);
    },
  },
];

/** Statuses of `headers.length` sequential requests, one per headers object. */
async function statuses(url: string, headers: Record<string, string>[]): Promise<number[]> {
  const out: number[] = [];
  for (const h of headers) out.push((await hit(url, 1, h))[0]!.status);
  return out;
}
const count = (list: number[], status: number) => list.filter((s) => s === status).length;

describe.each(adapters)('over-long, unusable and spoofed keys: $name', ({ start }) => {
  it('limits 20 requests with a 600-character header key under its digest: exactly 2 served', async () => {
    const limiter = twoPerSecond();
    const served = { count: 0 };
    const url = await start({ limiter, key: { header: 'x-api-key' } }, served);
    const long = 'k'.repeat(600);
    const got = await statuses(url, Array.from({ length: 20 }, () => ({ 'x-api-key': long })));
    expect(count(got, 200)).toBe(2);
    expect(count(got, 429)).toBe(18);
    expect(served.count).toBe(2);
    expect((await limiter.peek(keyDigest(`header:x-api-key:${long}`))).allowed).toBe(false);
    // Another long key is another client.
    expect(await statuses(url, [{ 'x-api-key': 'j'.repeat(600) }])).toEqual([200]);
  });

  it('limits an over-long key function result under its digest', async () => {
    const served = { count: 0 };
    const url = await start({ limiter: twoPerSecond(), key: (req) => `user:${'u'.repeat(700)}${(req as { url?: string }).url ?? ''}` }, served);
    const got = await statuses(url, Array.from({ length: 20 }, () => ({})));
    expect(count(got, 200)).toBe(2);
    expect(count(got, 429)).toBe(18);
    expect(served.count).toBe(2);
  });

  it('refuses, never serves, when the key function throws (500), rejects (500) or returns no key (400)', async () => {
    const cases: [Options['key'], number][] = [
      [
        () => {
          throw new Error('no session store');
        },
        500,
      ],
      [async () => Promise.reject(new Error('no session store')), 500],
      [(() => undefined) as never, 400],
      [(() => 42) as never, 400],
      [() => '', 400],
      [async () => '', 400],
      [(() => ['a', 'b']) as never, 400],
    ];
    for (const [key, status] of cases) {
      const served = { count: 0 };
      const url = await start({ limiter: twoPerSecond(), key }, served);
      const got = await statuses(url, Array.from({ length: 5 }, () => ({})));
      expect(got, String(key)).toEqual([status, status, status, status, status]);
      expect(served.count).toBe(0);
    }
  });

  it('keys spoofed X-Forwarded-For entries that are not addresses as the trusted hop: limited', async () => {
    const limiter = twoPerSecond();
    const served = { count: 0 };
    const url = await start({ limiter, trustProxy: 1 }, served);
    const junk = ['not-an-ip', '_hidden', 'unknown', '1.2.3', '256.0.0.1', '1.2.3.04', '::g', '[::1', 'x'.repeat(600), '1.2.3.4.5', '01::02::03'];
    const random = fc.sample(fc.string({ unit: fc.constantFrom(...'0123456789abcdef:.xyz_-'.split('')), minLength: 1, maxLength: 30 }).filter((s) => isIP(s) === 0 && parseNode(s) === undefined), { numRuns: 20, seed: 7 });
    const got = await statuses(url, [...junk, ...random].map((v) => ({ 'x-forwarded-for': v })));
    expect(count(got, 200)).toBe(2);
    expect(served.count).toBe(2);
    expect((await limiter.peek('ip:127.0.0.1')).allowed).toBe(false);
    // A real address behind the trusted hop has its own budget.
    expect(await statuses(url, [{ 'x-forwarded-for': '203.0.113.7' }])).toEqual([200]);
    // With two trusted hops, junk on the left stops the walk at the proxy's entry.
    const limiter2 = twoPerSecond();
    const url2 = await start({ limiter: limiter2, trustProxy: 2 }, { count: 0 });
    const got2 = await statuses(url2, junk.map((j) => ({ 'x-forwarded-for': `${j}, 10.0.0.1` })));
    expect(count(got2, 200)).toBe(2);
    expect((await limiter2.peek('ip:10.0.0.1')).allowed).toBe(false);
  });

  it('gives 20 addresses of one IPv6 /64 one budget, and spellings of one address one key', async () => {
    const limiter = twoPerSecond();
    const served = { count: 0 };
    const url = await start({ limiter, trustProxy: 1 }, served);
    const addresses = Array.from({ length: 20 }, (_, i) => `2001:db8:1:2:${((i * 4099) % 0x10000).toString(16)}::${i + 1}`);
    expect(addresses.every((a) => isIP(a) === 6)).toBe(true);
    const got = await statuses(url, addresses.map((a) => ({ 'x-forwarded-for': a })));
    expect(count(got, 200)).toBe(2);
    expect(served.count).toBe(2);
    expect((await limiter.peek('ip:2001:db8:1:2::/64')).allowed).toBe(false);
    expect(await statuses(url, [{ 'x-forwarded-for': '2001:db8:1:3::1' }])).toEqual([200]); // the next /64
    // One IPv4 client however it is written.
    const spelled = await statuses(url, ['198.51.100.9', '::ffff:198.51.100.9', '::FFFF:c633:6409', '198.51.100.9:4711'].map((a) => ({ 'x-forwarded-for': a })));
    expect(spelled).toEqual([200, 200, 429, 429]);
    // ipv6Subnet: 128 keys each address.
    const perAddress = await start({ limiter: twoPerSecond(), trustProxy: 1, ipv6Subnet: 128 }, { count: 0 });
    expect(count(await statuses(perAddress, addresses.map((a) => ({ 'x-forwarded-for': a }))), 200)).toBe(20);
  });

  it('reads Forwarded only when configured, with quoted IPv6 and ports, obfuscated identifiers keyed as the hop', async () => {
    const limiter = twoPerSecond();
    const url = await start({ limiter, trustProxy: 1, forwardedHeader: 'forwarded' }, { count: 0 });
    expect(await statuses(url, [{ forwarded: 'for="[2001:db8:cafe::17]:4711";proto=https' }])).toEqual([200]);
    expect((await limiter.peek('ip:2001:db8:cafe::/64')).remaining).toBe(0);
    const hidden = await statuses(url, ['for=_hidden', 'for=unknown', 'proto=https', 'for="_x:1"', 'for=not-an-ip'].map((f) => ({ forwarded: f })));
    expect(hidden).toEqual([200, 200, 429, 429, 429]); // all the peer's
    // X-Forwarded-For is ignored when Forwarded is the configured header.
    expect(await statuses(url, [{ 'x-forwarded-for': '203.0.113.9' }])).toEqual([429]);
  });
});
