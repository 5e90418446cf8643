// The Fetch-standard adapter: wraps a `(request, ...rest) => Response`
// handler, as `Bun.serve`, `Deno.serve`, Hono's `app.fetch` and any Fetch-API
// server call it. The only runtime-specific part is how the client's address
// is found (Bun's server argument, Deno's connection info), isolated below.
import type { Decision } from '../limiter/decision.js';
import type { Permit } from '../limiter/permit.js';
import { ConfigError } from '../errors.js';
import { commonOptions, decideKey, KeyRefusal, refusal, requestKey, type CommonOptions, type RequestReader } from './options.js';
import { releasingBody } from './releasing-body.js';

/** Options of {@link rateLimit}. */
export interface RateLimitOptions extends CommonOptions<Request> {
  /** The response to a denied request (default: 429, `Too Many Requests`); the rate-limit headers are added to it. */
  onLimited?: (decision: Decision, request: Request) => Response | Promise<Response>;
}

/**
 * A Fetch-API request as the key option reads it. The peer address comes
 * from what the runtime passes the handler after the request: Bun's
 * `server.requestIP(request)`, Deno's `info.remoteAddr`. Other servers: key
 * by a function or a header.
 */
const fetchReader: RequestReader<Request> = {
  peer(request, context) {
    const second = context as { requestIP?: (r: Request) => { address?: string } | null; remoteAddr?: { hostname?: string } } | undefined;
    if (typeof second?.requestIP === 'function') return second.requestIP(request)?.address ?? undefined;
    const hostname = second?.remoteAddr?.hostname;
    return typeof hostname === 'string' ? hostname : undefined;
  },
  header: (request, name) => request.headers.get(name),
};

const text = (status: number, body: string) => new Response(body, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } });

/** A response whose headers can be set (a fetched one's are immutable). */
function withHeaders(response: Response, headers: [string, string][]): Response {
  if (headers.length === 0) return response;
  let out = response;
  try {
    for (const [name, value] of headers) out.headers.set(name, value);
  } catch {
    out = new Response(response.body, response);
    for (const [name, value] of headers) out.headers.set(name, value);
  }
  return out;
}

/**
 * Wraps a Fetch-API handler so that each request is admitted by `limiter`
 * first: denied requests get a 429 (or `onLimited`'s response) with
 * `Retry-After`, every response gets the rate-limit header fields. When the
 * store cannot reach Redis, its fallback decides, as for any other call. A
 * request whose key cannot be used gets 500 (the key function threw or
 * rejected) or 400 (it returned no non-empty string), and the handler is not
 * called; an over-long key is limited under its digest (see
 * {@link CommonOptions}). Any other error (a throwing `skip` or `cost`, a
 * store error) rejects, and the server answers it (500 in Bun and Deno).
 *
 * With a {@link concurrency} gate in the limiter, an admitted request holds
 * its permit until its response has been sent: the response returned is a
 * new `Response` whose body gives the permit back once the server has read
 * it to its end or cancelled it (the client went away), or it errored; a
 * response without a body, or a handler that throws or rejects, gives it
 * back at once. A denial answers 429 with `Retry-After: 1`. A server that
 * neither reads nor cancels a body holds the slot until the `Response` is
 * garbage-collected.
 *
 * @example
 * ```ts
 * const limiter = new Limiter({ policy: gcra({ limit: 100, period: '1s', burst: 20 }) });
 * Bun.serve({ fetch: rateLimit((req) => new Response('hello'), { limiter }) });
 * Deno.serve(rateLimit((req) => new Response('hello'), { limiter, key: { header: 'x-api-key' } }));
 * ```
 */
export function rateLimit(
  handler: (request: Request, ...rest: never[]) => Response | Promise<Response>,
  options: RateLimitOptions,
): (request: Request, ...rest: unknown[]) => Promise<Response> {
  if (typeof handler !== 'function') throw new ConfigError('handler', handler, 'a function (request) => Response');
  const c = commonOptions<Request>(options, 'rateLimit', ['onLimited']);
  const onLimited = options.onLimited;
  if (onLimited !== undefined && typeof onLimited !== 'function') throw new ConfigError('onLimited', onLimited, 'a function returning a Response');
  return async (request, ...rest) => {
    // Whatever the server passed after the request goes to the handler as it came.
    const next = handler as (request: Request, ...rest: unknown[]) => Response | Promise<Response>;
    if (c.skip !== undefined && (await c.skip(request))) return next(request, ...rest);
    let decision: Decision;
    try {
      const decided = decideKey(c, requestKey(c, fetchReader, request, rest[0]), c.cost(request));
      decision = decided instanceof Promise ? await decided : decided;
    } catch (error) {
      if (error instanceof KeyRefusal) return text(...refusal(error));
      throw error;
    }
    const headers = c.headers(decision);
    if (!decision.allowed) return withHeaders(onLimited === undefined ? text(429, 'Too Many Requests\n') : await onLimited(decision, request), headers);
    if (!c.slots) return withHeaders(await next(request, ...rest), headers);
    const permit = decision as Permit;
    let response: Response;
    try {
      response = await next(request, ...rest);
    } catch (error) {
      void permit.release();
      throw error;
    }
    return releasingBody(withHeaders(response, headers), () => void permit.release());
  };
}
