import { checkDuration, DELAY_BOUNDS, type Duration } from '../core/duration.js';
import { ConfigError } from '../errors.js';
import { checkKey, MAX_KEY_LENGTH } from '../core/key-hash.js';
import type { Limiter } from '../limiter/limiter.js';
import { strictOptions } from '../core/options.js';
import { AdaptivePacer } from './adaptive.js';
import { fleetPace, localPace, type Turn } from './call-pace.js';
import { holdsSlots } from '../policies/concurrency.js';
import { releasingBody } from './releasing-body.js';
import { AutoShape, rateOf, type ShapeStats } from './shape.js';
import { checkMetrics, type MetricsSink } from '../core/metrics.js';
import { parseQuotaHeaders, parseRetryAfter, serverNow, type QuotaUnit, type UpstreamQuota } from './upstream-headers.js';
import { MAX_COUNT } from '../policies/policy.js';

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
  limiter: Pick<Limiter, 'acquire'> & Partial<Pick<Limiter, 'refund' | 'policies' | 'store' | 'lower' | 'penalize' | 'setPolicy' | 'invalidate'>>;
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
  /**
   * Which of the upstream's remaining-quota headers the limiter follows
   * (default `'requests'`; see {@link parseQuotaHeaders} for the forms):
   * an answer saying fewer remain than the key's limiter has left brings
   * the key down to that number with `limiter.lower` (never up beyond the
   * configured policy; atomic in Redis, so the fleet's bucket follows the
   * provider's counter). With a shared pace (see `shared`) the request
   * quota's window is followed too: the fleet's calls are booked into it,
   * at most what the upstream still accepts before its reset, the rest at
   * the reset. `'tokens'` lowers by the token quotas instead (a limiter
   * counting tokens, with `cost`); `false` follows none. Whatever this
   * says, a quota of either unit at 0 with a reset holds the key until the
   * reset.
   */
  quota?: QuotaUnit | false;
  /**
   * The units a call used, read from its response: a header's name (its
   * value a whole number, e.g. `'x-tokens-used'`), or a function of the
   * response (given a clone, so its body can be read; it may return a
   * promise, e.g. an LLM answer's `usage.total_tokens`). Admission took 1
   * unit; a call that used n is charged n − 1 more after its response
   * (`limiter.penalize`: past the limit if need be, a debt the key waits
   * off), and one that used 0 gets its unit back. An answer that is not a
   * whole number from 0 to 10^9, or a function that throws, charges
   * nothing. Not for 429s and 503s with `Retry-After`, which were not
   * processed. Default: every call counts 1.
   */
  cost?: string | ((response: Response) => number | undefined | Promise<number | undefined>);
  /**
   * How the limiter's rate is spent (default `'fixed'`: its policy as
   * configured). `'auto'` learns it per key from the upstream's answers: it
   * starts paced (GCRA at the rate with a burst of 1) and moves a key to an
   * interval token bucket of the same rate (bursts, the fleet's starts
   * booked into the upstream's quota window) once 5
   * accepted answers carried quota headers with a reset and no call was
   * refused while quota remained; a 429 whose headers say quota remains
   * paces it again, for good. Needs a limiter with
   * plans (a `name`) whose policy is one `gcra` or `tokenBucket`: its rate
   * is what is shaped, and the limiter answers each key's shape by a
   * resolver. With a `RedisStore` the verdict is the fleet's. See
   * `stats()` for the current choice and why.
   */
  shape?: 'fixed' | 'auto';
  /** Counts the upstream's answers (`cellgate.upstream.answers` by `kind`: accepted, refused, other) and the shapes applied (`cellgate.upstream.shape` by `shape`). */
  metrics?: MetricsSink;
}

/**
 * A key's standing in a {@link limitedFetch} wrapper, from its `stats()`.
 *
 * @example
 * ```ts
 * const s: LimitedFetchStats = await api.stats('https://api.example');
 * if (s.holdMs > 0) console.log(`held ${s.holdMs} ms by the upstream`);
 * ```
 */
export interface LimitedFetchStats {
  /** Whether the hold and pace are the fleet's (a `RedisStore` that answered) or this process's. */
  readonly shared: boolean;
  /** How long the key is held by what the upstream said, ms. */
  readonly holdMs: number;
  /** The extra spacing between call starts its pushbacks set, ms. */
  readonly spacingMs: number;
  /** `shape: 'auto'`: how the key's rate is spent, and why (undefined with `'fixed'`). */
  readonly shape: ShapeStats | undefined;
}

/**
 * What {@link limitedFetch} returns: a `fetch`, and what it knows of a key.
 *
 * @example
 * ```ts
 * const api: LimitedFetch = limitedFetch(fetch, { limiter });
 * await api('https://api.example/v1/items');
 * console.log(await api.stats('https://api.example'));
 * ```
 */
export interface LimitedFetch extends FetchFunction {
  /** The key's hold, pace and shape now (the default key is the URL's origin). */
  stats(key: string): Promise<LimitedFetchStats>;
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
export function limitedFetch(fetchFn: FetchFunction, options: LimitedFetchOptions): LimitedFetch {
  if (typeof fetchFn !== 'function') throw new ConfigError('fetch', fetchFn, 'a function with the signature of fetch');
  const o = strictOptions(options, 'limitedFetch', ['limiter', 'key', 'retry429', 'maxRetryAfterMs', 'pacer', 'shared', 'quota', 'cost', 'shape', 'metrics']);
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
  const unit = o.quota === undefined ? 'requests' : o.quota;
  if (unit !== 'requests' && unit !== 'tokens' && unit !== false) throw new ConfigError('quota', unit, "'requests', 'tokens' or false");
  const lower = unit !== false && typeof limiter.lower === 'function' ? limiter.lower.bind(limiter) : undefined;
  const charge = costCharge(o.cost, limiter);
  const metrics = checkMetrics(o.metrics);
  const shapeMode = o.shape === undefined ? 'fixed' : o.shape;
  if (shapeMode !== 'fixed' && shapeMode !== 'auto') throw new ConfigError('shape', shapeMode, "'fixed' or 'auto'");
  const shaper =
    shapeMode === 'auto' ? new AutoShape(limiter as ConstructorParameters<typeof AutoShape>[0], sharedPace, metrics && ((shape) => metrics.count('cellgate.upstream.shape', 1, { shape }))) : undefined;
  const pace = sharedPace === undefined ? localPace(pacer) : fleetPace(sharedPace, pacer, shaper?.intervalMs ?? rateInterval(limiter.policies));

  if (limiter.policies !== undefined && !Array.isArray(limiter.policies)) throw new ConfigError('limiter', limiter, 'a Limiter (its policies an array)');
  const slots = holdsSlots(limiter.policies);
  const acquire = limiter.acquire.bind(limiter);
  const refund = typeof limiter.refund === 'function' ? limiter.refund.bind(limiter) : undefined;
  const keyOf = keyFunction(key as LimitedFetchOptions['key']);
  const hold = (ms: number) => Math.min(ms, maxHold);

  /**
   * A call admitted: the fleet's hold first (so that the limiter spaces what
   * it held back), the limiter, then the pace's admission last, with nothing
   * awaited between it and the send, so that a hold the upstream sets while
   * a call waits for the limiter still applies to it. Held since (a hold
   * written, the upstream's window spent), the call gives its admission back
   * and starts over.
   */
  const admitted = async (k: string, signal: AbortSignal | undefined) => {
    for (;;) {
      const start = await pace.before(k, signal);
      let permit: Awaited<ReturnType<typeof acquire>>;
      try {
        permit = await acquire(k, { signal });
      } catch (error) {
        await pace.giveBack(k, start);
        throw error;
      }
      // A concurrency gate's slot is held while the call is in flight.
      const held = permit;
      const release = slots ? () => void held.release() : undefined;
      // Admitted by the limiter but not sent: the slot, or the unit, goes
      // back (not both: a refund takes holders from the concurrency gate too).
      const giveBack = async () => {
        if (release !== undefined) release();
        else if (refund !== undefined) await refund(k, 1).catch(() => {});
        await pace.giveBack(k, start);
      };
      let turn: Turn | undefined;
      try {
        turn = await pace.admit(k, signal);
        // A caller that gave up while its admission was answered is not sent.
        signal?.throwIfAborted();
      } catch (error) {
        await giveBack();
        throw error;
      }
      if (turn !== undefined) return { permit, release, turn };
      await giveBack();
    }
  };
  const call = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const k = keyOf(input, init);
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
    // What each attempt sends: a Request or a stream body can be sent only once.
    let body = init?.body;
    for (let attempt = 0; ; attempt++) {
      const { permit, release, turn } = await admitted(k, signal);
      // The shape the fleet learned, applied for the key's next admission.
      if (shaper !== undefined && turn.slot !== undefined) shaper.observe(k, turn.slot.shape, turn.slot.shapeVersion, turn.slot.burstIntolerant);
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
      const answeredAt = performance.now();
      const status = response.status;
      const headers = response.headers;
      const wallNow = serverNow(headers);
      const retryAfter = parseRetryAfter(headers.get('retry-after'), wallNow);
      const requests = parseQuotaHeaders(headers, wallNow);
      const tokens = parseQuotaHeaders(headers, wallNow, 'tokens');
      const resetMs = spentUntil(requests, tokens);
      const refused = status === 429 || (status === 503 && retryAfter !== undefined);
      metrics?.count('cellgate.upstream.answers', 1, refused ? REFUSED : status < 500 ? ACCEPTED : OTHER);
      // The provider's window, for the fleet's bookings (a shared pace),
      // first: its reset counts from the answer, less the time since.
      if (unit !== false && requests?.resetMs !== undefined) {
        const endsInMs = Math.max(0, hold(requests.resetMs) - (performance.now() - answeredAt));
        const windowMs = requests.windowMs === undefined ? undefined : hold(requests.windowMs);
        await pace.quota(k, { remaining: requests.remaining, resetMs: endsInMs, limit: requests.limit, windowMs });
      }
      // The provider's counter below the limiter's: the key comes down to it.
      // An admission that left no more than the provider says changes nothing,
      // and costs no round trip.
      const synced = unit === 'requests' ? requests : unit === 'tokens' ? tokens : undefined;
      if (lower !== undefined && synced !== undefined && synced.remaining <= MAX_COUNT && !(permit.remaining <= synced.remaining)) {
        await lower(k, synced.remaining).catch(() => {});
      }
      if (refused) {
        const until = retryAfter === undefined ? resetMs : resetMs === undefined ? retryAfter : Math.max(retryAfter, resetMs);
        // Refused with its quota said spent until a reset: the key is held
        // until then without slowing it (information, not a complaint). Any
        // other refusal halves the pace.
        if (resetMs !== undefined) await pace.pause(k, hold(until!));
        else await pace.pushback(k, turn, until === undefined ? undefined : hold(until));
        // Refused while it said quota remained: the upstream does not take bursts.
        if (shaper !== undefined && status === 429 && requests !== undefined && requests.remaining > 0) await shaper.learn(k, 'burst');
        if (status === 429 && !last) {
          // Free the connection before waiting for the retry.
          await response.body?.cancel().catch(() => {});
          release?.();
          continue;
        }
      } else {
        const spent = requests?.remaining === 0 || tokens?.remaining === 0;
        const until = resetMs ?? (spent ? retryAfter : undefined);
        if (until !== undefined) await pace.pause(k, hold(until));
        if (status < 500) pace.success(k, turn);
        if (charge !== undefined) charge(k, response);
        if (shaper !== undefined && status >= 200 && status < 300 && requests?.resetMs !== undefined) await shaper.learn(k, 'quota');
      }
      return release === undefined ? response : releasingBody(response, release);
    }
  };
  const stats = async (key: string): Promise<LimitedFetchStats> => {
    checkKey(key, 'key');
    const shape = shaper?.stats(key);
    const standing = sharedPace === undefined ? undefined : await sharedPace.peek(key);
    if (standing !== undefined) return { shared: true, holdMs: standing.holdMs, spacingMs: standing.spacingMs, shape };
    const local = pacer.stats(key);
    return { shared: false, holdMs: local?.waitMs ?? 0, spacingMs: local?.spacingMs ?? 0, shape };
  };
  return Object.assign(call, { stats });
}

const ACCEPTED = Object.freeze({ kind: 'accepted' });
const REFUSED = Object.freeze({ kind: 'refused' });
const OTHER = Object.freeze({ kind: 'other' });

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

/** The latest reset among the quotas at 0 (a spent quota holds the key until then), or undefined. */
function spentUntil(...quotas: (UpstreamQuota | undefined)[]): number | undefined {
  let until: number | undefined;
  for (const q of quotas) if (q?.remaining === 0 && q.resetMs !== undefined) until = Math.max(until ?? 0, q.resetMs);
  return until;
}

/** A whole number of units from 0 to MAX_COUNT, or undefined. */
function units(value: unknown): number | undefined {
  if (typeof value === 'string') value = /^[0-9]{1,10}$/.test(value.trim()) ? Number(value.trim()) : undefined;
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_COUNT ? value : undefined;
}

/**
 * What charges a call's used units after its response (see
 * {@link LimitedFetchOptions.cost}), or undefined without `cost`.
 */
function costCharge(cost: unknown, limiter: Partial<Limiter>): ((key: string, response: Response) => void) | undefined {
  if (cost === undefined) return undefined;
  if (typeof limiter.penalize !== 'function') throw new ConfigError('cost', cost, 'a limiter with penalize (a Limiter) to charge what calls used');
  let read: (response: Response) => unknown;
  if (typeof cost === 'string') {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/.test(cost)) throw new ConfigError('cost', cost, "a header name (such as 'x-tokens-used') or a function (response) => number");
    read = (response) => response.headers.get(cost);
  } else if (typeof cost === 'function') {
    read = (response) => cost(response.clone());
  } else {
    throw new ConfigError('cost', cost, "a header name (such as 'x-tokens-used') or a function (response) => number");
  }
  const penalize = limiter.penalize.bind(limiter);
  const refund = typeof limiter.refund === 'function' ? limiter.refund.bind(limiter) : undefined;
  const settle = (key: string, used: unknown) => {
    const n = units(used);
    if (n === undefined || n === 1) return;
    if (n === 0) void refund?.(key, 1).catch(() => {});
    else void penalize(key, n - 1).catch(() => {});
  };
  return (key, response) => {
    let used: unknown;
    try {
      used = read(response);
    } catch {
      return;
    }
    // A promise (a body read) settles later: the call is not held for it.
    if (used instanceof Promise) used.then((n) => settle(key, n), () => {});
    else settle(key, used);
  };
}

/** The ms between two units at the rate of the limiter's first gcra or tokenBucket gate, or undefined. */
function rateInterval(policies: readonly unknown[] | undefined): number | undefined {
  for (const policy of policies ?? []) {
    const rate = rateOf(policy);
    if (rate !== undefined) return rate.periodMs / rate.count;
  }
  return undefined;
}
