// cellgate/http under Deno.serve, on loopback (the only permission: net to 127.0.0.1):
// deno test --no-prompt --no-check --allow-net=127.0.0.1 test/runtime/deno-http
import { Limiter, gcra } from 'cellgate';
import { rateLimit } from 'cellgate/http';
import { keyCases, type Serve } from '../shared/http-keys.ts';
import { slotCase, slotCaseName } from '../shared/http-slots.ts';

function assertEquals(actual: unknown, expected: unknown, what: string): void {
  if (!Object.is(actual, expected)) throw new Error(`${what}: expected ${String(expected)}, got ${String(actual)}`);
}

Deno.test('rateLimit wraps a Deno.serve handler: 200, 200, then 429 with headers, keyed by the peer address', async () => {
  const limiter = new Limiter({ policy: gcra({ limit: 2, period: '1s', burst: 2 }), clock: () => 0 });
  const server = Deno.serve({ hostname: '127.0.0.1', port: 0, onListen() {} }, rateLimit(() => new Response('hello'), { limiter }));
  try {
    const url = `http://127.0.0.1:${server.addr.port}/`;
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 3; i++) {
      last = await fetch(url);
      statuses.push(last.status);
      await last.body?.cancel();
    }
    assertEquals(statuses.join(','), '200,200,429', 'statuses');
    assertEquals(last!.headers.get('ratelimit-policy'), '"gcra";q=2;w=1', 'RateLimit-Policy');
    assertEquals(last!.headers.get('ratelimit'), '"gcra";r=0;t=1', 'RateLimit');
    assertEquals(last!.headers.get('retry-after'), '1', 'Retry-After');
    // Keyed by the peer address Deno reports.
    assertEquals((await limiter.peek('ip:127.0.0.1')).allowed, false, 'the peer key is exhausted');
  } finally {
    await server.shutdown();
  }
});

const serve: Serve = async (handler) => {
  const server = Deno.serve({ hostname: '127.0.0.1', port: 0, onListen() {} }, handler);
  return { url: `http://127.0.0.1:${server.addr.port}/`, stop: () => server.shutdown() };
};
for (const c of keyCases) Deno.test(c.name, () => c.run(serve));
Deno.test(slotCaseName, () => slotCase(serve));
