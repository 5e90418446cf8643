import { checkDuration, DELAY_BOUNDS, type Duration } from '../core/duration.js';
import { ConfigError } from '../errors.js';
import { checkKey, MAX_KEY_LENGTH } from '../core/key-hash.js';
import type { Limiter } from '../limiter/limiter.js';
import { strictOptions } from '../core/options.js';
import { AdaptivePacer } from './adaptive.js';
import { fleetPace, localPace, type Turn } from './call-pace.js';
import { holdsSlots } from '../policies/concurrency.js';
import { releasingBody } from './releasing-body.js';
import { parseQuotaHeaders, parseRetryAfter, serverNow } from './upstream-headers.js';

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
   * admission but before it was sent. When its `policies` include a
   * {@link concurrency} gate, each call holds the permit `acquire` answers
   * while it is in flight, its response's body included (see
   * {@link limitedFetch}).
   */
  limiter: Pick<Limiter, 'acquire'> & Partial<Pick<Limiter, 'refund' | 'policies' | 'store'>>;
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
   * share one between wrappers that call the same upstream. With a shared
   * pace (see `shared`) its constants set the fleet's pace, and it paces the
   * process alone while the store does not answer.
   */
  pacer?: AdaptivePacer;
  /**
   * Whether the processes sharing the limiter's store share what the
   * upstream says (default `true`; only a store that can, a `RedisStore`,
   * shares anything): a `Retry-After` or a spent quota one process is told
   * holds every process's calls of the key until that moment, and the pace
   * the pushbacks set spaces the fleet's calls, not each process's. It costs
   * one more round trip to the store before each send. `false`: each process
   * holds and paces on its own.
   */
  shared?: boolean;
}

/** One hour: see {@link LimitedFetchOptions.maxRetryAfterMs}. */
const DEFAULT_MAX_RETRY_AFTER_MS = 3_600_000;
/**
 * Wraps `fetchFn` so that calls are admitted by a {@link Limiter} and pace
 * themselves by what the upstream answers. It returns a function with the
 * `fetch` signature; each call
 *
 * 1. waits for `limiter.acquire(key, { signal })` (never dropped; the call's
 *    `signal`, from `init` or the `Request`, aborts the wait with its reason);
 * 2. waits for the key's pace: the upstream's retry moment and the extra
 *    spacing its pushbacks set (see {@link AdaptivePacer} for the exact
 *    rule). When the limiter's store is a `RedisStore` (and `shared` is not
 *    `false`), the pace is the fleet's, kept in Redis: a hold one process
 *    learned holds every process's calls of the key until the moment the
 *    upstream named, and the spacing is between the fleet's calls. A call
 *    books its start there and, if it had to wait, books again before it is
 *    sent, so a hold written while it waited still holds it; only calls
 *    already past that check when a hold is written (in flight) reach the
 *    upstream before the moment. While Redis does not answer, each process
 *    paces alone, keeping the holds it learned itself;
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
 * With a {@link concurrency} gate in the limiter (`[gcra(...),
 * concurrency({ limit: 4 })]`: at most 4 calls of a key in flight at once,
 * across every process sharing the store), a call holds its permit from
 * admission until its response's body is over: read to its end, cancelled,
 * or errored (an abort mid-body included); a response without a body, a
 * rejected fetch, an abort before the send and a 429 about to be retried
 * give it back at once. The response returned is then a new `Response`
 * (same status, headers, `url`) whose body is passed through as it is read.
 * A body never read holds the slot: read or cancel every body (`await
 * res.body?.cancel()`); one dropped unread gives it back only when it is
 * garbage-collected. A call aborted before the send releases its permit but
 * does not refund the stacked rate gates (a refund would take holders from
 * the concurrency gate too).
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
  const o = strictOptions(options, 'limitedFetch', ['limiter', 'key', 'retry429', 'maxRetryAfterMs', 'pacer', 'shared']);
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
  const share = o.shared === undefined ? true : o.shared;
  if (typeof share !== 'boolean') throw new ConfigError('shared', share, 'a boolean');
  const sharedPace = share ? (limiter.store as { sharedPace?: Parameters<typeof fleetPace>[0] } | undefined)?.sharedPace : undefined;
  const pace = sharedPace === undefined ? localPace(pacer) : fleetPace(sharedPace, pacer);

  if (limiter.policies !== undefined && !Array.isArray(limiter.policies)) throw new ConfigError('limiter', limiter, 'a Limiter (its policies an array)');
  const slots = holdsSlots(limiter.policies);
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
      const permit = await acquire(k, { signal });
      // A concurrency gate's slot is held while the call is in flight.
      const release = slots ? () => void permit.release() : undefined;
      let turn: Turn;
      try {
        turn = await pace.admit(k, signal);
      } catch (error) {
        // Admitted by the limiter but never sent: give the slot, or the unit, back
        // (not both: a refund takes holders from the concurrency gate too).
        if (release !== undefined) release();
        else if (refund !== undefined) await refund(k, 1).catch(() => {});
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
      let response: Response;
      try {
        response = await fetchFn(attemptInput, attemptInit);
      } catch (error) {
        release?.();
        throw error;
      }
      const status = response.status;
      const headers = response.headers;
      const wallNow = serverNow(headers);
      const retryAfter = parseRetryAfter(headers.get('retry-after'), wallNow);
      const quota = parseQuotaHeaders(headers, wallNow);
      const resetMs = quota?.remaining === 0 ? quota.resetMs : undefined;
      if (status === 429 || (status === 503 && retryAfter !== undefined)) {
        const until = retryAfter === undefined ? resetMs : resetMs === undefined ? retryAfter : Math.max(retryAfter, resetMs);
        await pace.pushback(k, turn, until === undefined ? undefined : hold(until));
        if (status === 429 && !last) {
          // Free the connection before waiting for the retry.
          await response.body?.cancel().catch(() => {});
          release?.();
          continue;
        }
      } else {
        const until = resetMs ?? (quota?.remaining === 0 ? retryAfter : undefined);
        if (until !== undefined) await pace.pause(k, hold(until));
        if (status < 500) pace.success(k, turn);
      }
      return release === undefined ? response : releasingBody(response, release);
    }
  };
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
