import type { Decision } from '../limiter/decision.js';
import { ConfigError } from '../errors.js';
import type { Limiter } from '../limiter/limiter.js';
import { MAX_KEY_LENGTH } from '../core/key-hash.js';
import { strictOptions } from '../core/options.js';
import { clientBytes, compileTrust, type ForwardedHeader, type Trust, type TrustProxy } from './client-address.js';
import { addressKey } from './ip.js';
import { keyDigest } from './sha256.js';
import { rateLimitHeaders, type HeaderStyle } from './headers.js';
import { holdsSlots } from '../policies/concurrency.js';

/**
 * What both HTTP adapters share: the limiter, how to key a request (`Req` is
 * a `Request` or a Node `IncomingMessage`), its cost, what to skip, the
 * headers. The adapters add their own denial response.
 *
 * A request whose key cannot be used is never served unlimited: a key longer
 * than `MAX_KEY_LENGTH` (512) is limited under its digest, `sha256:` and the
 * base64url SHA-256 of its WTF-8 bytes (the same in every process, so a fleet
 * agrees on it); a key function that throws or rejects gets the request a 500
 * (a fault of the server's code), one that returns anything but a non-empty
 * string a 400 (typically the request lacks what the function keys by). The
 * adapter writes these answers itself and never hands them to the next handler.
 */
export interface CommonOptions<Req> {
  /**
   * Decides every request (embedded, or Redis in either mode). With a
   * {@link concurrency} gate among its policies, an admitted request holds
   * its permit until its response is over (see the adapters).
   */
  limiter: Limiter;
  /**
   * The request's key (default `'ip'`): `'ip'`, the client's address (see
   * `trustProxy`), keyed `ip:<address>` in canonical form (`ip:unknown` when
   * the server does not tell it), an IPv6 client by its network (see
   * `ipv6Subnet`); `{ header: 'x-api-key' }`, a header's value, keyed
   * `header:<name>:<value>` (requests without it share `header:<name>:`); or
   * a function of the request returning the key itself (see above for what
   * happens to an over-long or unusable one).
   */
  key?: 'ip' | { readonly header: string } | ((request: Req) => string | Promise<string>);
  /** Proxies to believe about the client's address (default `false`): see {@link TrustProxy}. */
  trustProxy?: TrustProxy;
  /**
   * The header trusted proxies write the chain in (default
   * `'x-forwarded-for'`): see {@link ForwardedHeader}. Only read when
   * `trustProxy` is not `false`.
   */
  forwardedHeader?: ForwardedHeader;
  /**
   * Bits of an IPv6 client's address that make its key (default 64, from 1
   * to 128): one host commonly owns a whole /64, and would otherwise get a
   * fresh budget per address. 128 keys each address.
   */
  ipv6Subnet?: number;
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
  readonly key: 'ip' | { readonly header: string } | ((request: Req) => unknown);
  readonly trust: Trust;
  readonly forwardedHeader: ForwardedHeader;
  readonly ipv6Subnet: number;
  readonly cost: (request: Req) => number;
  readonly skip: ((request: Req) => boolean | Promise<boolean>) | undefined;
  readonly headers: (d: Decision) => [string, string][];
  /** Whether the limiter has a concurrency gate: an admission is a permit, held until the response is over. */
  readonly slots: boolean;
}

const COMMON_OPTIONS = ['limiter', 'key', 'trustProxy', 'forwardedHeader', 'ipv6Subnet', 'cost', 'skip', 'headers'];

/**
 * Validates the shared options up front, naming the bad one; `where` names
 * the adapter, `own` its own option names. @internal
 */
export function commonOptions<Req>(options: CommonOptions<Req>, where: string, own: readonly string[]): Common<Req> {
  const o = strictOptions(options, where, [...COMMON_OPTIONS, ...own]);
  const limiter = o.limiter as Limiter | undefined;
  if (typeof limiter !== 'object' || limiter === null || typeof limiter.limit !== 'function') {
    throw new ConfigError('limiter', limiter, 'a Limiter');
  }
  const key = o.key === undefined ? 'ip' : o.key;
  if (typeof key === 'object' && key !== null) strictOptions(key, `${where} key`, ['header']);
  const header = typeof key === 'object' && key !== null ? (key as { header?: unknown }).header : undefined;
  const headerKey = typeof header === 'string' && /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/.test(header);
  if (key !== 'ip' && typeof key !== 'function' && !headerKey) {
    throw new ConfigError('key', key, "'ip', { header: name } or a function of the request");
  }
  const trust = compileTrust(o.trustProxy === undefined ? false : o.trustProxy);
  const forwardedHeader = o.forwardedHeader === undefined ? 'x-forwarded-for' : o.forwardedHeader;
  if (forwardedHeader !== 'x-forwarded-for' && forwardedHeader !== 'forwarded') {
    throw new ConfigError('forwardedHeader', forwardedHeader, "'x-forwarded-for' or 'forwarded'");
  }
  const ipv6Subnet = o.ipv6Subnet === undefined ? 64 : o.ipv6Subnet;
  if (typeof ipv6Subnet !== 'number' || !Number.isInteger(ipv6Subnet) || ipv6Subnet < 1 || ipv6Subnet > 128) {
    throw new ConfigError('ipv6Subnet', ipv6Subnet, 'an integer prefix length from 1 to 128');
  }
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
    key: (headerKey ? { header: (header as string).toLowerCase() } : key) as Common<Req>['key'],
    trust,
    forwardedHeader,
    ipv6Subnet,
    cost: typeof cost === 'function' ? (cost as (r: Req) => number) : () => cost as number,
    skip: o.skip as Common<Req>['skip'],
    headers: currentHeaders(limiter, style as HeaderStyle),
    slots: holdsSlots(limiter.policies),
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

/**
 * A request refused for its key, with the status the adapter answers
 * (500: the key function threw or rejected; 400: it returned no usable key).
 * @internal
 */
export class KeyRefusal extends Error {
  constructor(
    readonly status: 400 | 500,
    message: string,
    options?: { cause: unknown },
  ) {
    super(message, options);
  }
}

/** What an adapter answers a refused request: status, text. @internal */
export function refusal(error: KeyRefusal): [number, string] {
  return [error.status, error.status === 400 ? 'Bad Request: no rate-limit key\n' : 'Internal Server Error\n'];
}

/** A key as the limiter takes it: an over-long one as its digest; anything but a non-empty string refused. */
function usableKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0) throw new KeyRefusal(400, 'the key function returned no usable key');
  return key.length > MAX_KEY_LENGTH ? keyDigest(key) : key;
}

function threw(error: unknown): never {
  throw new KeyRefusal(500, 'the key function failed', { cause: error });
}

/** The request's key per the `key` option; throws (or rejects with) a {@link KeyRefusal}. @internal */
export function requestKey<Req>(c: Common<Req>, read: RequestReader<Req>, request: Req, context?: unknown): string | Promise<string> {
  const key = c.key;
  if (key === 'ip') {
    const client = clientBytes(read.peer(request, context), read.header(request, c.forwardedHeader), c.trust, c.forwardedHeader);
    if (client === undefined) return 'ip:unknown';
    return typeof client === 'string' ? usableKey(`ip:${client}`) : addressKey(client, c.ipv6Subnet);
  }
  if (typeof key === 'function') {
    let k: unknown;
    try {
      k = key(request);
    } catch (error) {
      threw(error);
    }
    if (typeof (k as { then?: unknown } | null)?.then === 'function') return Promise.resolve(k).then(usableKey, threw);
    return usableKey(k);
  }
  return usableKey(`header:${key.header}:${read.header(request, key.header) ?? ''}`);
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

/** The headers of the limiter's current policies: a limiter with plans may change them (setPolicy). */
function currentHeaders(limiter: Limiter, style: HeaderStyle): (d: Decision) => [string, string][] {
  let policies = limiter.policies;
  let headers = rateLimitHeaders(policies, style);
  return (d) => {
    if (limiter.policies !== policies) {
      policies = limiter.policies;
      headers = rateLimitHeaders(policies, style);
    }
    return headers(d);
  };
}
