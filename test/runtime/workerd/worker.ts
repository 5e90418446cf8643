// A Cloudflare Worker (ES module) using the built package as Wrangler would
// bundle it: test/workerd.test.ts bundles this file with esbuild under the
// `workerd` condition (so `#core-module` is the .wasm import, not the base64
// bytes) and serves it with real workerd. Each route answers JSON or the
// adapter's response; the assertions are in the test.
import { Limiter, concurrency, gcra, type Decision } from 'cellgate';
import { rateLimit } from 'cellgate/http';

const policy = () => gcra({ limit: 1, period: '1h', burst: 3 }); // 3 back to back, then nothing for the test's duration

// Built at global scope, as Workers code usually does: workerd forbids random
// values there, so the store draws its hash seed at its first decision (in a
// handler). /global reports how construction went, and decides with it.
let globalScope = 'constructed';
let atGlobalScope: Limiter | undefined;
try {
  atGlobalScope = new Limiter({ policy: policy() });
} catch (error) {
  globalScope = String(error);
}

// Built on the first request, once per isolate: the way a Worker keeps one.
let limiter: Limiter | undefined;
type Handler = (request: Request, ...rest: unknown[]) => Promise<Response>;
let byHeader: Handler | undefined;
let byDefaultKey: Handler | undefined;
const hello = () => new Response('hello');

const json = (value: unknown) => new Response(JSON.stringify(value), { headers: { 'content-type': 'application/json' } });
const fields = (d: Decision) => ({ allowed: d.allowed, remaining: d.remaining, retryAfterMs: d.retryAfterMs, source: d.source });

// The smallest valid module (magic and version): what compiling bytes at run
// time would be given, and what workerd refuses.
const EMPTY_MODULE = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);

export default {
  async fetch(request: Request, env: unknown, ctx: unknown): Promise<Response> {
    limiter ??= new Limiter({ policy: policy() });
    const url = new URL(request.url);
    const key = url.searchParams.get('key') ?? 'k';
    switch (url.pathname) {
      case '/sync': {
        const n = Number(url.searchParams.get('n') ?? '1');
        return json(Array.from({ length: n }, () => fields(limiter!.limitSync(key))));
      }
      case '/permit': {
        // A concurrency slot held across an await (its renewal timer set in the handler) and released.
        const slots = new Limiter({ policy: concurrency({ limit: 1 }) });
        const permit = await slots.acquire(key);
        const whileHeld = fields(slots.limitSync(key));
        await permit.release();
        const after = slots.limitSync(key);
        await after.release?.();
        return json({ held: fields(permit), whileHeld, after: fields(after) });
      }
      case '/many':
        return json(limiter.limitManySync((url.searchParams.get('keys') ?? '').split(',')).map(fields));
      case '/global':
        return json({ globalScope, decisions: atGlobalScope === undefined ? [] : Array.from({ length: Number(url.searchParams.get('n') ?? '0') }, () => fields(atGlobalScope!.limitSync(key))) });
      case '/compile':
        try {
          new WebAssembly.Module(EMPTY_MODULE);
          return json({ compiled: true });
        } catch (error) {
          return json({ compiled: false, error: String(error) });
        }
      case '/ip':
        // The default key, 'ip': workerd passes (request, env, ctx), no peer
        // address, so every client is 'ip:unknown' (the README says so).
        byDefaultKey ??= rateLimit(hello, { limiter: new Limiter({ policy: policy() }) });
        return byDefaultKey(request, env, ctx);
      default:
        // Every other path goes through the Fetch adapter, keyed by a header.
        byHeader ??= rateLimit(hello, { limiter: new Limiter({ policy: policy() }), key: { header: 'x-api-key' } });
        return byHeader(request, env, ctx);
    }
  },
};
