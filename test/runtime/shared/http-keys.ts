// The over-long, unusable and spoofed key cases of cellgate/http's Fetch
// adapter, run on each runtime's own server by test/runtime/{bun,deno}-http:
// each case gets `serve`, which starts that server on loopback.
import { Limiter, gcra } from 'cellgate';
import { keyDigest, rateLimit, type RateLimitOptions } from 'cellgate/http';

/** Starts the runtime's server with `handler` on 127.0.0.1, an ephemeral port. */
export type Serve = (handler: (request: Request, ...rest: unknown[]) => Promise<Response>) => Promise<{ url: string; stop(): Promise<void> }>;

/** Throws unless `actual` is `expected` (Object.is), naming `what`: the runtimes share no assertion library. */
export function check(actual: unknown, expected: unknown, what: string): void {
  if (!Object.is(actual, expected)) throw new Error(`${what}: expected ${String(expected)}, got ${String(actual)}`);
}

/** Serves a counting handler, limit 2, and returns the statuses of one request per headers object. */
async function run(serve: Serve, options: Omit<RateLimitOptions, 'limiter'>, requests: Record<string, string>[]) {
  const limiter = new Limiter({ policy: gcra({ limit: 2, period: '1s', burst: 2 }), clock: () => 0 });
  let served = 0;
  const handler = rateLimit(
    () => {
      served++;
      return new Response('hello');
    },
    { limiter, ...options },
  );
  const server = await serve(handler);
  try {
    const statuses: number[] = [];
    for (const headers of requests) {
      const res = await fetch(server.url, { headers });
      statuses.push(res.status);
      await res.text();
    }
    return { statuses, served, limiter, ok: statuses.filter((s) => s === 200).length };
  } finally {
    await server.stop();
  }
}

const times = <T>(n: number, value: T): T[] => Array.from({ length: n }, () => value);

export const keyCases: { name: string; run(serve: Serve): Promise<void> }[] = [
  {
    name: 'a 600-character header key is limited under its digest: 2 of 20 served',
    async run(serve) {
      const long = 'k'.repeat(600);
      const r = await run(serve, { key: { header: 'x-api-key' } }, times(20, { 'x-api-key': long }));
      check(r.ok, 2, 'served');
      check(r.statuses.filter((s) => s === 429).length, 18, 'denied');
      check(r.served, 2, 'handler calls');
      check((await r.limiter.peek(keyDigest(`header:x-api-key:${long}`))).allowed, false, 'the digest key is exhausted');
    },
  },
  {
    name: 'a key function that throws gets 500, one that returns no key 400, and the handler never runs',
    async run(serve) {
      const threw = await run(serve, { key: () => { throw new Error('boom'); } }, times(5, {}));
      check(threw.statuses.join(','), '500,500,500,500,500', 'statuses when the key function throws');
      check(threw.served, 0, 'handler calls');
      const empty = await run(serve, { key: async () => '' }, times(5, {}));
      check(empty.statuses.join(','), '400,400,400,400,400', 'statuses for an empty key');
      check(empty.served, 0, 'handler calls');
    },
  },
  {
    name: 'spoofed X-Forwarded-For entries that are not addresses share the peer key behind a trusted hop',
    async run(serve) {
      const junk = ['not-an-ip', '_hidden', 'unknown', '1.2.3', '256.0.0.1', '1.2.3.04', '::g', 'x'.repeat(600), '01::02::03', 'a, b'];
      const r = await run(serve, { trustProxy: 1 }, junk.map((v) => ({ 'x-forwarded-for': v })));
      check(r.ok, 2, 'served');
      check(r.served, 2, 'handler calls');
      check((await r.limiter.peek('ip:127.0.0.1')).allowed, false, 'the peer key is exhausted');
    },
  },
  {
    name: '20 addresses of one IPv6 /64 share a budget; Forwarded is read when configured',
    async run(serve) {
      const addresses = Array.from({ length: 20 }, (_, i) => `2001:db8:1:2:${(i * 97).toString(16)}::${i + 1}`);
      const r = await run(serve, { trustProxy: 1 }, addresses.map((a) => ({ 'x-forwarded-for': a })));
      check(r.ok, 2, 'served');
      check((await r.limiter.peek('ip:2001:db8:1:2::/64')).allowed, false, 'the /64 key is exhausted');
      const f = await run(serve, { trustProxy: 1, forwardedHeader: 'forwarded' }, addresses.map((a) => ({ forwarded: `for="[${a}]:4711"` })));
      check(f.ok, 2, 'served through Forwarded');
    },
  },
];
