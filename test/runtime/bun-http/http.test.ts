// cellgate/http under Bun.serve, on loopback: bun test ./test/runtime/bun-http
import { describe, expect, test } from 'bun:test';
import { Limiter, gcra } from 'cellgate';
import { rateLimit } from 'cellgate/http';
import { keyCases, type Serve } from '../shared/http-keys.ts';
import { slotCase, slotCaseName } from '../shared/http-slots.ts';

describe('cellgate/http on Bun', () => {
  test('rateLimit wraps a Bun.serve handler: 200, 200, then 429 with headers, keyed by the peer address', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 2, period: '1s', burst: 2 }), clock: () => 0 });
    const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: rateLimit(() => new Response('hello'), { limiter }) });
    try {
      const url = `http://127.0.0.1:${server.port}/`;
      const statuses: number[] = [];
      let last: Response | undefined;
      for (let i = 0; i < 3; i++) {
        last = await fetch(url);
        statuses.push(last.status);
        await last.text();
      }
      expect(statuses).toEqual([200, 200, 429]);
      expect(last!.headers.get('ratelimit-policy')).toBe('"gcra";q=2;w=1');
      expect(last!.headers.get('ratelimit')).toBe('"gcra";r=0;t=1');
      expect(last!.headers.get('retry-after')).toBe('1');
      // Keyed by the peer address Bun reports.
      expect((await limiter.peek('ip:127.0.0.1')).allowed).toBe(false);
    } finally {
      server.stop(true);
    }
  });
});

describe('cellgate/http on Bun: keys that cannot be used are never served unlimited', () => {
  const serve: Serve = async (handler) => {
    const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: handler });
    return { url: `http://127.0.0.1:${server.port}/`, stop: async () => void server.stop(true) };
  };
  for (const c of keyCases) test(c.name, () => c.run(serve));
  test(slotCaseName, () => slotCase(serve));
});
