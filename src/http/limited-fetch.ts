import { checkDuration, DELAY_BOUNDS, type Duration } from '../core/duration.js';
import { ConfigError } from '../errors.js';
import { checkKey, MAX_KEY_LENGTH } from '../core/key-hash.js';
import type { Limiter } from '../limiter/limiter.js';
import { strictOptions } from '../core/options.js';
import { AdaptivePacer } from './adaptive.js';

/**
 * The signature of `fetch`: what {@link limitedFetch} takes and returns.
 *
 * @example
 * ```ts
 * const plain: FetchFunction = fetch;
 * ```
 */
export type FetchFunction = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

/**
 * Options of {@link limitedFetch}.
 *
 * @example
 * ```ts
 * const options: LimitedFetchOptions = {
 *   limiter: new Limiter({ policy: gcra({ limit: 10, period: '1s' }) }),
 *   key: (request) => new URL(request.url).host,
 *   retry429: 3,
 * };
 * ```
 */
export interface LimitedFetchOptions {
  /**
   * Admits every call: `acquire(key, { signal })` waits for room. Its
   * `refund`, when it has one, gives the unit back for a call aborted after
   * admission but before it was sent.
   */
  limiter: Pick<Limiter, 'acquire'> & Partial<Pick<Limiter, 'refund'>>;
  /**
   * The budget a call counts against: a fixed string, or a function of a
   * `Request` with the call's URL, method and headers (no body, so the key
   * cannot consume it). Default: the URL's origin, e.g.
   * `"https://api.example"`. A function returning anything but a non-empty
   * string of at most 512 characters rejects the call with `ArgumentError`.
   */
  key?: string | ((request: Request) => string);
  /**
   * How many times a 429 is retried before it is returned (default 0: the
   * 429 is returned as is). Each retry waits for admission again, so for the
   * upstream's `Retry-After` too; a non-negative integer or `Infinity`.
   */
  retry429?: number;
  /**
   * Longest hold a `Retry-After` or quota reset may put on a key, above 0,
   * at most 1000 days (default one hour). An upstream asking for longer is
   * asked again after this, at the cost of one request.
   */
  maxRetryAfterMs?: Duration;
  /**
   * The per-key slow-down state (default: a new {@link AdaptivePacer} with
   * {@link DEFAULT_PACING}). Pass one to tune its constants or clock, or
   * share one between wrappers that call the same upstream.
   */
  pacer?: AdaptivePacer;
}

/**
 * What an upstream's remaining-quota headers say, as read by
 * {@link parseQuotaHeaders}.
 *
 * @example
 * ```ts
 * const q: UpstreamQuota | undefined = parseQuotaHeaders(res.headers);
 * if (q?.remaining === 0 && q.resetMs !== undefined) console.log(`quota back in ${q.resetMs} ms`);
 * ```
 */
export interface UpstreamQuota {
  /** Requests the upstream will still accept in its current window. */
  readonly remaining: number;
  /** How long until the quota resets, in ms, when the upstream says. */
  readonly resetMs: number | undefined;
}

/** One hour: see {@link LimitedFetchOptions.maxRetryAfterMs}. */
const DEFAULT_MAX_RETRY_AFTER_MS = 3_600_000;
/** Above this, an `X-RateLimit-Reset` is an epoch time in seconds (1e9 s of delay would be 31 years). */
const EPOCH_SECONDS_FROM = 1e9;
/** Above this, it is an epoch time in milliseconds. */
const EPOCH_MS_FROM = 1e12;

/**
 * Wraps `fetchFn` so that calls are admitted by a {@link Limiter} and pace
 * themselves by what the upstream answers. It returns a function with the
 * `fetch` signature; each call
 *
 * 1. waits for `limiter.acquire(key, { signal })` (never dropped; the call's
 *    `signal`, from `init` or the `Request`, aborts the wait with its reason);
 * 2. waits for the key's {@link AdaptivePacer}: the upstream's retry moment
 *    and the extra spacing its pushbacks set (see {@link AdaptivePacer} for
 *    the exact rule);
 * 3. calls `fetchFn(input, init)` with the caller's own arguments (fields
 *    such as Node's `dispatcher` pass through);
 * 4. reads the answer: a 429, or a 503 with `Retry-After`, is a pushback (the
 *    key is held until `Retry-After`, or the quota reset when remaining is 0,
 *    and its pace halves); remaining-quota headers at 0 with a reset hold the
 *    key until the reset without slowing it; any other answer below 500 is a
 *    success, and the pace recovers. Other 5xx answers and network errors
 *    change nothing.
 *
 * A limited answer is never an exception: the 429 `Response` is returned as
 * is, or retried `retry429` times first, each retry waiting for admission
 * again (so for the `Retry-After`). A 429 means the request was not
 * processed, so retries are made for every method. A retried `Request` input
 * is cloned, and a `ReadableStream` body is teed, so each attempt sends the
 * whole body (held in memory until the call ends).
 *
 * Only Web-standard APIs are used (`fetch`, `Request`, `Response`,
 * `Headers`, `AbortSignal`): it runs unchanged in Node, Bun and Deno.
 * Options are validated at once ({@link ConfigError} naming the option).
 *
 * @example
 * ```ts
 * const limiter = new Limiter({ policy: gcra({ limit: 20, period: '1s' }) });
 * const api = limitedFetch(fetch, { limiter, retry429: 3 });
 * const res = await api('https://partner.example/v1/items', { signal: AbortSignal.timeout(30_000) });
 * ```
 */
export function limitedFetch(fetchFn: FetchFunction, options: LimitedFetchOptions): FetchFunction {
  if (typeof fetchFn !== 'function') throw new ConfigError('fetch', fetchFn, 'a function with the signature of fetch');
  const o = strictOptions(options, 'limitedFetch', ['limiter', 'key', 'retry429', 'maxRetryAfterMs', 'pacer']);
  const limiter = o.limiter as Partial<Limiter> | undefined;
  if (typeof limiter !== 'object' || limiter === null || typeof limiter.acquire !== 'function') {
    throw new ConfigError('limiter', limiter, 'a Limiter (an object with acquire)');
  }
  const key = o.key;
  if (key !== undefined && typeof key !== 'function' && (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH)) {
    throw new ConfigError('key', key, `a non-empty string of at most ${MAX_KEY_LENGTH} characters, or a function (request) => string`);
  }
  const retries = o.retry429 === undefined ? 0 : o.retry429;
  if (typeof retries !== 'number' || !(retries === Infinity || (Number.isInteger(retries) && retries >= 0))) {
    throw new ConfigError('retry429', retries, 'a non-negative integer or Infinity');
  }
  const maxHold =
    o.maxRetryAfterMs === undefined ? DEFAULT_MAX_RETRY_AFTER_MS : checkDuration(o.maxRetryAfterMs, 'maxRetryAfterMs', { ...DELAY_BOUNDS, above: true });
  const pacer = o.pacer === undefined ? new AdaptivePacer() : o.pacer;
  if (!(pacer instanceof AdaptivePacer)) throw new ConfigError('pacer', pacer, 'an AdaptivePacer');

  const acquire = limiter.acquire.bind(limiter);
  const refund = typeof limiter.refund === 'function' ? limiter.refund.bind(limiter) : undefined;
  const keyOf = keyFunction(key as LimitedFetchOptions['key']);
  const hold = (ms: number) => Math.min(ms, maxHold);

  return async (input, init) => {
    const k = keyOf(input, init);
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
    // What each attempt sends: a Request or a stream body can be sent only once.
    let body = init?.body;
    for (let attempt = 0; ; attempt++) {
      // The limiter first, the pacer last: a hold the upstream sets while a
      // call waits for the limiter still applies to it, since nothing is
      // awaited between the pacer's admission and the send.
      await acquire(k, { signal });
      let ticket: number;
      try {
        ticket = await pacer.admit(k, signal);
      } catch (error) {
        // Admitted by the limiter but never sent: give the unit back.
        if (refund !== undefined) await refund(k, 1).catch(() => {});
        throw error;
      }
      const last = attempt >= retries;
      let attemptInput = input;
      let attemptInit = init;
      if (!last) {
        if (input instanceof Request) attemptInput = input.clone();
        if (body instanceof ReadableStream) {
          const [now, later] = body.tee();
          attemptInit = { ...init, body: now };
          body = later;
        }
      } else if (body !== init?.body) {
        attemptInit = { ...init, body };
      }
      const response = await fetchFn(attemptInput, attemptInit);
      const status = response.status;
      const headers = response.headers;
      const wallNow = serverNow(headers);
      const retryAfter = parseRetryAfter(headers.get('retry-after'), wallNow);
      const quota = parseQuotaHeaders(headers, wallNow);
      const resetMs = quota?.remaining === 0 ? quota.resetMs : undefined;
      if (status === 429 || (status === 503 && retryAfter !== undefined)) {
        const until = retryAfter === undefined ? resetMs : resetMs === undefined ? retryAfter : Math.max(retryAfter, resetMs);
        pacer.pushback(k, ticket, until === undefined ? undefined : hold(until));
        if (status === 429 && !last) {
          // Free the connection before waiting for the retry.
          await response.body?.cancel().catch(() => {});
          continue;
        }
      } else {
        const until = resetMs ?? (quota?.remaining === 0 ? retryAfter : undefined);
        if (until !== undefined) pacer.pause(k, hold(until));
        if (status < 500) pacer.success(k, ticket);
      }
      return response;
    }
  };
}

/**
 * Reads a `Retry-After` value as a delay in ms: delay-seconds (`"120"`) or
 * an HTTP-date (IMF-fixdate, RFC 850 or asctime form), taken relative to
 * `nowMs` (epoch ms: the response's `Date` when it has one, so that the two
 * clocks of the upstream agree). A date in the past is 0; anything else
 * (empty, negative, fractional, unparseable) is `undefined`, i.e. ignored.
 *
 * @example
 * ```ts
 * parseRetryAfter('2');                                                         // 2000
 * parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.UTC(2015, 9, 21, 7, 28)); // 10000
 * parseRetryAfter('soon');                                                      // undefined
 * ```
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = parseHttpDate(text);
  return date === undefined ? undefined : Math.max(0, date - nowMs);
}

/**
 * Reads an upstream's remaining-quota headers: the IETF `RateLimit` field
 * (structured form `"name";r=0;t=30`, or the older `remaining=0, reset=30`),
 * `RateLimit-Remaining` with `RateLimit-Reset`, and `X-RateLimit-Remaining`
 * with `X-RateLimit-Reset`. Resets are delta seconds, except an
 * `X-RateLimit-Reset` of at least 1e9, which is an epoch time (seconds, or
 * milliseconds from 1e12) taken relative to `nowMs`. When several policies
 * or fields are present the tightest wins: the fewest remaining, then the
 * latest reset. `undefined` when no remaining count can be read.
 *
 * @example
 * ```ts
 * parseQuotaHeaders(new Headers({ RateLimit: '"default";r=0;t=30' }));                      // { remaining: 0, resetMs: 30000 }
 * parseQuotaHeaders(new Headers({ 'X-RateLimit-Remaining': '4', 'X-RateLimit-Reset': '2' })); // { remaining: 4, resetMs: 2000 }
 * ```
 */
export function parseQuotaHeaders(headers: Headers, nowMs: number = Date.now()): UpstreamQuota | undefined {
  const found: UpstreamQuota[] = [];
  const field = headers.get('ratelimit');
  if (field !== null) found.push(...parseRateLimitField(field));
  const draft = count(headers.get('ratelimit-remaining'));
  if (draft !== undefined) found.push({ remaining: draft, resetMs: deltaSeconds(headers.get('ratelimit-reset')) });
  const legacy = count(headers.get('x-ratelimit-remaining'));
  if (legacy !== undefined) found.push({ remaining: legacy, resetMs: legacyReset(headers.get('x-ratelimit-reset'), nowMs) });
  let tightest: UpstreamQuota | undefined;
  for (const q of found) {
    if (
      tightest === undefined ||
      q.remaining < tightest.remaining ||
      (q.remaining === tightest.remaining && (q.resetMs ?? -1) > (tightest.resetMs ?? -1))
    ) {
      tightest = q;
    }
  }
  return tightest;
}

/** The default key, or the caller's, as a function of the call's arguments. */
function keyFunction(key: LimitedFetchOptions['key']): (input: RequestInfo | URL, init: RequestInit | undefined) => string {
  if (typeof key === 'string') return () => key;
  if (key === undefined) return (input) => new URL(urlOf(input)).origin;
  return (input, init) => {
    const base = input instanceof Request ? input : undefined;
    // No body: the key function must not consume what the call is about to send.
    const request = new Request(urlOf(input), { method: init?.method ?? base?.method, headers: init?.headers ?? base?.headers });
    const k = key(request);
    checkKey(k, 'key');
    return k;
  };
}

function urlOf(input: RequestInfo | URL): string {
  return input instanceof Request ? input.url : input instanceof URL ? input.href : String(input);
}

/** The upstream's clock, from its `Date` header, else ours: HTTP-dates and epoch resets are relative to it. */
function serverNow(headers: Headers): number {
  const date = parseHttpDate(headers.get('date') ?? '');
  return date ?? Date.now();
}

const MONTHS: Record<string, number> = { jan: 0, feb: 1, mar: 2, apr: 3, may: 4, jun: 5, jul: 6, aug: 7, sep: 8, oct: 9, nov: 10, dec: 11 };
/** IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT` and RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`. */
const FIXDATE = /^[a-z]{3,9}, (\d{2})[ -]([a-z]{3})[ -](\d{2}|\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/i;
/** asctime `Sun Nov  6 08:49:37 1994` (always GMT). */
const ASCTIME = /^[a-z]{3} ([a-z]{3}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/i;

/**
 * An HTTP-date (RFC 9110 5.6.7) as epoch ms, strictly: `Date.parse` accepts
 * far more (`"1.5"` is a date to V8) and reads a zone-less asctime as local time.
 */
function parseHttpDate(text: string): number | undefined {
  let year: number, month: number | undefined, day: number, h: number, m: number, s: number;
  const fix = FIXDATE.exec(text);
  if (fix !== null) {
    [day, month, year, h, m, s] = [Number(fix[1]), MONTHS[fix[2]!.toLowerCase()], Number(fix[3]), Number(fix[4]), Number(fix[5]), Number(fix[6])];
    // RFC 850's two-digit years: 70-99 are 19xx, the rest 20xx.
    if (fix[3]!.length === 2) year += year >= 70 ? 1900 : 2000;
  } else {
    const asc = ASCTIME.exec(text);
    if (asc === null) return undefined;
    [month, day, h, m, s, year] = [MONTHS[asc[1]!.toLowerCase()], Number(asc[2]), Number(asc[3]), Number(asc[4]), Number(asc[5]), Number(asc[6])];
  }
  if (month === undefined || day < 1 || day > 31 || h > 23 || m > 59 || s > 60) return undefined;
  return Date.UTC(year, month, day, h, m, s);
}

/** A non-negative integer count, or undefined. */
function count(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  return /^\d+$/.test(text) ? Number(text) : undefined;
}

/** Non-negative (possibly fractional) seconds as ms, or undefined. */
function deltaSeconds(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  return /^\d+(?:\.\d+)?$/.test(text) ? Number(text) * 1000 : undefined;
}

/** `X-RateLimit-Reset`: delta seconds, or an epoch time in seconds or ms (GitHub, Discord and others). */
function legacyReset(value: string | null, nowMs: number): number | undefined {
  const ms = deltaSeconds(value);
  if (ms === undefined) return undefined;
  const raw = ms / 1000;
  if (raw >= EPOCH_MS_FROM) return Math.max(0, raw - nowMs);
  if (raw >= EPOCH_SECONDS_FROM) return Math.max(0, ms - nowMs);
  return ms;
}

/**
 * The `RateLimit` field: a list of policies `"name";r=<remaining>;t=<reset s>`
 * (draft-ietf-httpapi-ratelimit-headers, current), or one dictionary
 * `limit=10, remaining=0, reset=30` (its earlier drafts).
 */
function parseRateLimitField(field: string): UpstreamQuota[] {
  const out: UpstreamQuota[] = [];
  const dictionary = new Map<string, string>();
  for (const member of field.split(',')) {
    const params = new Map<string, string>();
    for (const part of member.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0) params.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
    }
    const r = count(params.get('r'));
    if (r !== undefined) out.push({ remaining: r, resetMs: deltaSeconds(params.get('t')) });
    for (const [name, value] of params) dictionary.set(name, value);
  }
  if (out.length === 0) {
    const remaining = count(dictionary.get('remaining'));
    if (remaining !== undefined) out.push({ remaining, resetMs: deltaSeconds(dictionary.get('reset')) });
  }
  return out;
}
