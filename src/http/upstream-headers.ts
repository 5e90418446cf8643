// What an upstream's response headers say about its limits: when to retry
// (Retry-After), how much quota is left and when it resets (RateLimit,
// RateLimit-*, X-RateLimit-*), and by which clock (Date). Read strictly:
// what cannot be read is ignored, never guessed.

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

/** Above this, an `X-RateLimit-Reset` is an epoch time in seconds (1e9 s of delay would be 31 years). */
const EPOCH_SECONDS_FROM = 1e9;
/** Above this, it is an epoch time in milliseconds. */
const EPOCH_MS_FROM = 1e12;

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

/**
 * The upstream's clock, from its `Date` header, else ours: HTTP-dates and
 * epoch resets are relative to it.
 * @internal
 */
export function serverNow(headers: Headers): number {
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
