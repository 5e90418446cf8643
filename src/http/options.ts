import type { Decision } from '../decision.js';
import { ConfigError } from '../errors.js';
import type { Limiter } from '../limiter.js';
import { optionsObject } from '../policies/policy.js';
import { clientAddress, type TrustProxy } from './client-address.js';
import { rateLimitHeaders, type HeaderStyle } from './headers.js';

/**
 * What both HTTP adapters share: the limiter, how to key a request (`Req` is
 * a `Request` or a Node `IncomingMessage`), its cost, what to skip, the
 * headers. The adapters add their own denial response.
 */
export interface CommonOptions<Req> {
  /** Decides every request (embedded, or Redis in either mode). */
  limiter: Limiter;
  /**
   * The request's key (default `'ip'`): `'ip'`, the client's address (see
   * `trustProxy`), keyed `ip:<address>` (`ip:unknown` when the server does
   * not tell it); `{ header: 'x-api-key' }`, a header's value, keyed
   * `header:<name>:<value>` (requests without it share `header:<name>:`); or
   * a function of the request returning the key itself.
   */
  key?: 'ip' | { readonly header: string } | ((request: Req) => string | Promise<string>);
  /** Proxies to believe about the client's address (default `false`): see {@link TrustProxy}. */
  trustProxy?: TrustProxy;
  /** Cost units of a request (default 1), or a function of it. */
  cost?: number | ((request: Req) => number);
  /** Requests for which this returns true pass without being counted. */
  skip?: (request: Req) => boolean | Promise<boolean>;
  /** Which rate-limit header fields to send (default `'draft'`). */
  headers?: HeaderStyle;
}

/** @internal The validated form of {@link CommonOptions}. */
export interface Common<Req> {
  readonly limiter: Limiter;
  readonly key: 'ip' | { readonly header: string } | ((request: Req) => string | Promise<string>);
  readonly trustProxy: TrustProxy;
  readonly cost: (request: Req) => number;
  readonly skip: ((request: Req) => boolean | Promise<boolean>) | undefined;
  readonly headers: (d: Decision) => [string, string][];
}

/** Validates the shared options up front, naming the bad one. @internal */
export function commonOptions<Req>(options: CommonOptions<Req>): Common<Req> {
  const o = optionsObject(options, 'rate limit options');
  const limiter = o.limiter as Limiter | undefined;
  if (typeof limiter !== 'object' || limiter === null || typeof limiter.limit !== 'function') {
    throw new ConfigError('limiter', limiter, 'a Limiter');
  }
  const key = o.key === undefined ? 'ip' : o.key;
  const headerKey = typeof key === 'object' && key !== null && typeof (key as { header?: unknown }).header === 'string' && (key as { header: string }).header.length > 0;
  if (key !== 'ip' && typeof key !== 'function' && !headerKey) {
    throw new ConfigError('key', key, "'ip', { header: name } or a function of the request");
  }
  const trustProxy = o.trustProxy === undefined ? false : o.trustProxy;
  const trustOk =
    typeof trustProxy === 'boolean' ||
    (typeof trustProxy === 'number' && Number.isInteger(trustProxy) && trustProxy >= 0 && trustProxy <= 32) ||
    (Array.isArray(trustProxy) && trustProxy.every((a) => typeof a === 'string'));
  if (!trustOk) throw new ConfigError('trustProxy', trustProxy, 'a boolean, a hop count from 0 to 32, or a list of proxy addresses');
  const cost = o.cost === undefined ? 1 : o.cost;
  if (typeof cost !== 'function' && !(typeof cost === 'number' && Number.isInteger(cost) && cost >= 1)) {
    throw new ConfigError('cost', cost, 'a positive integer or a function of the request');
  }
  if (o.skip !== undefined && typeof o.skip !== 'function') throw new ConfigError('skip', o.skip, 'a function of the request');
  const style = o.headers === undefined ? 'draft' : o.headers;
  if (style !== 'draft' && style !== 'legacy' && style !== 'both' && style !== false) {
    throw new ConfigError('headers', style, "'draft', 'legacy', 'both' or false");
  }
  return {
    limiter,
    key: key as Common<Req>['key'],
    trustProxy: trustProxy as TrustProxy,
    cost: typeof cost === 'function' ? (cost as (r: Req) => number) : () => cost as number,
    skip: o.skip as Common<Req>['skip'],
    headers: rateLimitHeaders(limiter.policies, style as HeaderStyle),
  };
}

/**
 * How an adapter reads its own request type: the peer address (`context` is
 * whatever else the server passed, e.g. Bun's server or Deno's info) and a
 * header. @internal
 */
export interface RequestReader<Req> {
  peer(request: Req, context: unknown): string | undefined;
  header(request: Req, name: string): string | null | undefined;
}

/** The request's key per the `key` option. @internal */
export function requestKey<Req>(c: Common<Req>, read: RequestReader<Req>, request: Req, context?: unknown): string | Promise<string> {
  const key = c.key;
  if (key === 'ip') return `ip:${clientAddress(read.peer(request, context), read.header(request, 'x-forwarded-for'), c.trustProxy) ?? 'unknown'}`;
  if (typeof key === 'function') return key(request);
  return `header:${key.header.toLowerCase()}:${read.header(request, key.header) ?? ''}`;
}

/**
 * Decides a key: without a promise when the limiter decides in process and
 * the key is known at once (a few microtasks per request cost a gateway
 * measurable throughput). @internal
 */
export function decideKey<Req>(c: Common<Req>, key: string | Promise<string>, cost: number): Decision | Promise<Decision> {
  if (typeof key === 'string' && c.limiter.inProcess) return c.limiter.limitSync(key, { cost });
  return Promise.resolve(key).then((k) => c.limiter.limit(k, { cost }));
}
