// A concurrency gate in cellgate/http's Fetch adapter on each runtime's own
// server (test/runtime/{bun,deno}-http): the slot is held while the response
// body streams, and comes back when the client goes away mid-body, which
// only the runtime's server can tell (it cancels the body).
import { Limiter, concurrency } from 'cellgate';
import { rateLimit } from 'cellgate/http';
import { check, type Serve } from './http-keys.ts';

/** The case's name, for the runtimes' test functions. */
export const slotCaseName = 'a concurrency slot is held while the body streams, then 429 with Retry-After 1; a client gone mid-body frees it';

/** Runs the case on the runtime's server. */
export async function slotCase(serve: Serve): Promise<void> {
  const limiter = new Limiter({ policy: concurrency({ limit: 1 }) });
  const streams: ReadableStreamDefaultController<Uint8Array>[] = [];
  const handler = async (request: Request) =>
    new URL(request.url).pathname === '/quick'
      ? new Response('ok')
      : new Response(new ReadableStream<Uint8Array>({ start: (c) => void (c.enqueue(new TextEncoder().encode('held')), streams.push(c)) }));
  const { url, stop } = await serve(rateLimit(handler, { limiter, key: () => 'all' }));
  try {
    const gone = new AbortController();
    const held = await fetch(`${url}hold`, { signal: gone.signal });
    const reader = held.body!.getReader();
    await reader.read();
    const denied = await fetch(`${url}quick`);
    await denied.body?.cancel();
    check(denied.status, 429, 'a request while the slot is held');
    check(denied.headers.get('retry-after'), '1', 'Retry-After');
    gone.abort();
    await reader.read().catch(() => {});
    let status = 0;
    for (const deadline = Date.now() + 3000; status !== 200 && Date.now() < deadline; await new Promise((r) => setTimeout(r, 10))) {
      const res = await fetch(`${url}quick`);
      await res.body?.cancel();
      status = res.status;
    }
    check(status, 200, 'a request after the client went away');
  } finally {
    for (const c of streams) {
      try {
        c.close();
      } catch {
        // cancelled by the server when its client went away
      }
    }
    await stop();
  }
}
