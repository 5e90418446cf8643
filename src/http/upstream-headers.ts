// What an upstream's response headers say about its limits: when to retry
// (Retry-After), how much quota is left, how large it is and when it resets,
// and by which clock (Date). Quotas are read by unit: requests (the IETF
// RateLimit and RateLimit-Policy fields, RateLimit-*, X-RateLimit-*, and the
// per-unit forms of OpenAI's x-ratelimit-*-requests and Anthropic's
// anthropic-ratelimit-requests-*) or tokens (x-ratelimit-*-tokens and
// anthropic-ratelimit-{tokens,input-tokens,output-tokens}-*). Read strictly,
// because the upstream chooses these values: what cannot be read, or could
// be read two ways, is ignored, never guessed, and every number returned is
// finite and non-negative.

import { ArgumentError } from '../errors.js';

/**
 * What a quota counts, as {@link parseQuotaHeaders} reads it: calls
 * (`'requests'`) or model tokens (`'tokens'`, the second quota of LLM APIs).
 *
 * @example
 * ```ts
 * const unit: QuotaUnit = 'tokens';
 * parseQuotaHeaders(res.headers, Date.now(), unit);
 * ```
 */
export type QuotaUnit = 'requests' | 'tokens';

/**
 * What an upstream's remaining-quota headers say, as read by
 * {@link parseQuotaHeaders}. Every number is finite and non-negative.
 *
 * @example
 * ```ts
 * const q: UpstreamQuota | undefined = parseQuotaHeaders(res.headers);
 * if (q?.remaining === 0 && q.resetMs !== undefined) console.log(`quota back in ${q.resetMs} ms`);
 * if (q?.limit !== undefined) console.log(`${q.remaining} of ${q.limit} left`);
 * ```
 */
export interface UpstreamQuota {
  /** Units (requests or tokens) the upstream will still accept in its current window. */
  readonly remaining: number;
  /** How long until the quota resets, in ms, when the upstream says. */
  readonly resetMs: number | undefined;
  /**
   * The quota's size, when the upstream says. {@link parseQuotaHeaders}
   * always sets the property, `undefined` when it is not told.
   */
  readonly limit?: number | undefined;
  /**
   * The quota's window in ms, when the upstream states one (only the IETF
   * `RateLimit-Policy` field does, with `w`). {@link parseQuotaHeaders}
   * always sets the property, `undefined` when it is not told.
   */
  readonly windowMs?: number | undefined;
}

/** Above this, an `X-RateLimit-Reset` is an epoch time in seconds (1e9 s of delay would be 31 years). */
const EPOCH_SECONDS_FROM = 1e9;
/** Above this, it is an epoch time in milliseconds. */
const EPOCH_MS_FROM = 1e12;
/** The largest count read: above it, a number no longer counts units one by one (and `Number()` may give Infinity). */
const MAX_COUNT = Number.MAX_SAFE_INTEGER;
/** The longest delay read, in ms (some 285,000 years): no upstream means more, so a longer one is garbage. */
const MAX_DELAY_MS = Number.MAX_SAFE_INTEGER;
/** 400 Gregorian years are a whole number of days (146097): shifting a date by them keeps its calendar. */
const GREGORIAN_CYCLE_MS = 146_097 * 86_400_000;

/**
 * Reads a `Retry-After` value as a delay in ms: delay-seconds (`"120"`) or
 * an HTTP-date (IMF-fixdate, RFC 850 or asctime form), taken relative to
 * `nowMs` (epoch ms: the response's `Date` when it has one, so that the two
 * clocks of the upstream agree). A date in the past is 0; anything else
 * (empty, negative, fractional, unparseable, or a delay over
 * `Number.MAX_SAFE_INTEGER` ms, such as 400 digits of seconds, which no
 * upstream can mean) is `undefined`, i.e. ignored. Only spaces and tabs
 * around the value are skipped. So the result is always `undefined` or a
 * finite number from 0 to `Number.MAX_SAFE_INTEGER`; callers clamp it to
 * the longest hold they accept.
 *
 * @throws {ArgumentError} `nowMs` is not a finite number.
 *
 * @example
 * ```ts
 * parseRetryAfter('2');                                                         // 2000
 * parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.UTC(2015, 9, 21, 7, 28)); // 10000
 * parseRetryAfter('soon');                                                      // undefined
 * parseRetryAfter('9'.repeat(400));                                             // undefined
 * ```
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number = Date.now()): number | undefined {
  checkNow(nowMs);
  if (value === null || value === undefined) return undefined;
  const text = ows(value);
  if (/^\d+$/.test(text)) return secondsMs(text);
  return sinceNow(parseHttpDate(text), nowMs);
}

/**
 * Reads an upstream's remaining-quota headers for one `unit` and returns the
 * tightest quota they tell: the fewest remaining, then the latest reset.
 * `undefined` when no remaining count can be read.
 *
 * For `'requests'` (the default):
 * - the IETF `RateLimit` field, structured (`"name";r=0;t=30`, with the
 *   `q` (limit) and `w` (window, seconds) of the `RateLimit-Policy` member of
 *   the same name) or in its older dictionary form
 *   (`limit=10, remaining=0, reset=30`);
 * - `RateLimit-Remaining`, `-Reset` (delta seconds), `-Limit`;
 * - `X-RateLimit-Remaining`, `-Reset`, `-Limit`: a reset of at least 1e9 is
 *   an epoch time (seconds, or milliseconds from 1e12) relative to `nowMs`;
 * - OpenAI's `x-ratelimit-remaining-requests`, `-reset-requests` (a Go
 *   duration such as `"6m0s"`, `"59.876s"`, `"20ms"`, or plain seconds),
 *   `-limit-requests`;
 * - Anthropic's `anthropic-ratelimit-requests-remaining`, `-reset` (an RFC
 *   3339 time such as `2026-12-03T15:04:05Z`, relative to `nowMs`), `-limit`.
 *
 * For `'tokens'`: OpenAI's `x-ratelimit-{remaining,reset,limit}-tokens` and
 * Anthropic's `anthropic-ratelimit-tokens-*`, `-input-tokens-*` and
 * `-output-tokens-*` (each its own quota).
 *
 * Strict, since the upstream chooses these values: a count is ASCII digits
 * only, up to `Number.MAX_SAFE_INTEGER`; a delay is at most
 * `Number.MAX_SAFE_INTEGER` ms; a time in the past is a reset of 0. A value
 * that could be read two ways is ignored, not guessed: `"5, 7"` (duplicate
 * headers joined by a proxy) is no count at all, rather than the smaller or
 * the first. A reset, limit or window that cannot be read is `undefined`
 * without losing the remaining count beside it. Only spaces and tabs around
 * a value are skipped.
 *
 * @throws {ArgumentError} `unit` is neither `'requests'` nor `'tokens'`, or `nowMs` is not a finite number.
 *
 * @example
 * ```ts
 * parseQuotaHeaders(new Headers({ RateLimit: '"default";r=0;t=30' }));
 * // { remaining: 0, resetMs: 30000, limit: undefined, windowMs: undefined }
 * parseQuotaHeaders(new Headers({ 'X-RateLimit-Remaining': '4', 'X-RateLimit-Reset': '2', 'X-RateLimit-Limit': '10' }));
 * // { remaining: 4, resetMs: 2000, limit: 10, windowMs: undefined }
 * parseQuotaHeaders(new Headers({ 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '6m0s' }), Date.now(), 'tokens');
 * // { remaining: 0, resetMs: 360000, limit: undefined, windowMs: undefined }
 * ```
 */
export function parseQuotaHeaders(headers: Headers, nowMs: number = Date.now(), unit: QuotaUnit = 'requests'): UpstreamQuota | undefined {
  checkNow(nowMs);
  if (unit !== 'requests' && unit !== 'tokens') throw new ArgumentError('unit', unit, "'requests' or 'tokens'");
  let tightest: UpstreamQuota | undefined;
  for (const form of FORMS[unit]) {
    for (const q of form(headers, nowMs)) {
      if (
        q !== undefined &&
        (tightest === undefined ||
          q.remaining < tightest.remaining ||
          (q.remaining === tightest.remaining && (q.resetMs ?? -1) > (tightest.resetMs ?? -1)))
      ) {
        tightest = q;
      }
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

/** One form of quota headers: the quotas it finds (undefined where it finds none). */
type Form = (headers: Headers, nowMs: number) => readonly (UpstreamQuota | undefined)[];

/** The forms read for each unit, in no particular order: the tightest quota wins whatever its form. */
const FORMS: Readonly<Record<QuotaUnit, readonly Form[]>> = {
  requests: [rateLimitField, draftFields, legacyFields, (h) => openAiFields(h, 'requests'), (h, now) => anthropicFields(h, now, ['requests'])],
  tokens: [(h) => openAiFields(h, 'tokens'), (h, now) => anthropicFields(h, now, ['tokens', 'input-tokens', 'output-tokens'])],
};

/** `RateLimit-Remaining` with `RateLimit-Reset` (delta seconds) and `RateLimit-Limit` (earlier IETF drafts). */
function draftFields(headers: Headers): [UpstreamQuota | undefined] {
  return [fieldQuota(headers, 'ratelimit-remaining', 'ratelimit-reset', 'ratelimit-limit', deltaSeconds)];
}

/** `X-RateLimit-Remaining` with `X-RateLimit-Reset` and `X-RateLimit-Limit`. */
function legacyFields(headers: Headers, nowMs: number): [UpstreamQuota | undefined] {
  return [fieldQuota(headers, 'x-ratelimit-remaining', 'x-ratelimit-reset', 'x-ratelimit-limit', (v) => legacyReset(v, nowMs))];
}

/** OpenAI's `x-ratelimit-remaining-<unit>`, `x-ratelimit-reset-<unit>` (a Go duration) and `x-ratelimit-limit-<unit>`. */
function openAiFields(headers: Headers, unit: QuotaUnit): [UpstreamQuota | undefined] {
  return [fieldQuota(headers, `x-ratelimit-remaining-${unit}`, `x-ratelimit-reset-${unit}`, `x-ratelimit-limit-${unit}`, goDuration)];
}

/** Anthropic's `anthropic-ratelimit-<quota>-remaining`, `-reset` (RFC 3339) and `-limit`, one quota per name. */
function anthropicFields(headers: Headers, nowMs: number, quotas: readonly string[]): (UpstreamQuota | undefined)[] {
  return quotas.map((name) => {
    const prefix = `anthropic-ratelimit-${name}-`;
    return fieldQuota(headers, `${prefix}remaining`, `${prefix}reset`, `${prefix}limit`, (v) => sinceNow(rfc3339(v), nowMs));
  });
}

/** A quota told by three headers, its reset read by `reset`; undefined without a remaining count. */
function fieldQuota(
  headers: Headers,
  remaining: string,
  reset: string,
  limit: string,
  readReset: (value: string | null) => number | undefined,
): UpstreamQuota | undefined {
  return quota(count(headers.get(remaining)), readReset(headers.get(reset)), count(headers.get(limit)), undefined);
}

/** A quota with all four properties present (so results compare alike), or undefined without a remaining count. */
function quota(remaining: number | undefined, resetMs: number | undefined, limit: number | undefined, windowMs: number | undefined): UpstreamQuota | undefined {
  return remaining === undefined ? undefined : { remaining, resetMs, limit, windowMs };
}

/** The parameters of one list member, keys lowercased, and its bare item (the text before the first `;`) when it has no `=`. */
interface Member {
  readonly name: string | undefined;
  readonly params: ReadonlyMap<string, string>;
}

/**
 * A `RateLimit` or `RateLimit-Policy` value as a list of members, read
 * loosely as structured fields go (a quoted name holding `,` or `;` is not
 * supported); each value is then read strictly.
 */
function listMembers(field: string): Member[] {
  return field.split(',').map((member) => {
    const parts = member.split(';');
    const params = new Map<string, string>();
    for (const part of parts) {
      const eq = part.indexOf('=');
      if (eq > 0) params.set(ows(part.slice(0, eq)).toLowerCase(), ows(part.slice(eq + 1)));
    }
    const first = ows(parts[0]!);
    return { name: first === '' || first.includes('=') ? undefined : first, params };
  });
}

/**
 * `RateLimit-Policy` members by name. A name given twice is left out: which
 * of the two sizes is meant cannot be told.
 */
function policiesByName(field: string | null): Map<string, ReadonlyMap<string, string>> {
  const byName = new Map<string, ReadonlyMap<string, string>>();
  const twice = new Set<string>();
  for (const { name, params } of field === null ? [] : listMembers(field)) {
    if (name === undefined) continue;
    if (byName.has(name)) twice.add(name);
    byName.set(name, params);
  }
  for (const name of twice) byName.delete(name);
  return byName;
}

/**
 * The `RateLimit` field: a list of policies `"name";r=<remaining>;t=<reset s>`
 * (draft-ietf-httpapi-ratelimit-headers, current), each sized by the
 * `RateLimit-Policy` member of the same name (`"name";q=<limit>;w=<window s>`),
 * or one dictionary `limit=10, remaining=0, reset=30` (its earlier drafts).
 */
function rateLimitField(headers: Headers): UpstreamQuota[] {
  const field = headers.get('ratelimit');
  if (field === null) return [];
  const members = listMembers(field);
  const policies = policiesByName(headers.get('ratelimit-policy'));
  const out: UpstreamQuota[] = [];
  for (const { name, params } of members) {
    const policy = name === undefined ? undefined : policies.get(name);
    const q = quota(count(params.get('r')), deltaSeconds(params.get('t')), count(policy?.get('q')), deltaSeconds(policy?.get('w')));
    if (q !== undefined) out.push(q);
  }
  if (out.length === 0) {
    const dictionary = new Map(members.flatMap(({ params }) => [...params]));
    const q = quota(count(dictionary.get('remaining')), deltaSeconds(dictionary.get('reset')), count(dictionary.get('limit')), undefined);
    if (q !== undefined) out.push(q);
  }
  return out;
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
  return utc(year, month, day, h, m, s);
}

/** RFC 3339 `date-time`: `2026-12-03T15:04:05Z`, `…05.123Z`, `…05+01:00`. */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/**
 * An RFC 3339 date-time as epoch ms, strictly: `Date.parse` also takes
 * zone-less times (as local time) and other shapes. A day the month does not
 * have (`02-30`) is no date.
 */
function rfc3339(value: string | null): number | undefined {
  const m = value === null ? null : RFC3339.exec(ows(value));
  if (m === null) return undefined;
  const [year, month, day, h, min, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i]));
  const [offsetH, offsetMin] = [Number(m[9] ?? 0), Number(m[10] ?? 0)];
  if (month! < 1 || month! > 12 || day! < 1 || day! > daysInMonth(year!, month!) || h! > 23 || min! > 59 || s! > 60) return undefined;
  if (offsetH > 23 || offsetMin > 59) return undefined;
  const fractionMs = m[7] === undefined ? 0 : Number(`0${m[7]}e3`);
  const offsetMs = (m[8] === '-' ? -1 : 1) * (offsetH * 60 + offsetMin) * 60_000;
  return utc(year!, month! - 1, day!, h!, min!, s!) + fractionMs - offsetMs;
}

/** `Date.UTC` for any 4-digit year: it reads years 0-99 as 1900-1999, so compute 400 years on and come back. */
function utc(year: number, month0: number, day: number, h = 0, min = 0, s = 0): number {
  return Date.UTC(year + 400, month0, day, h, min, s) - GREGORIAN_CYCLE_MS;
}

/** Days in `month` (1-12) of `year`: day 0 of the next month is this one's last. */
function daysInMonth(year: number, month: number): number {
  return new Date(utc(year, month, 0)).getUTCDate();
}

/** Go's `time.Duration` text, one term: a decimal (`1`, `1.5`, `.5`, `1.`) and its unit. */
const GO_TERM = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
/**
 * Each unit as a decimal exponent to ms and a factor: appending `e<exp>` to
 * the digits lets `Number` round once (`59.876 * 1000` may not be `59876`).
 */
const GO_UNITS: Record<string, readonly [exponent: string, factor: number]> = {
  ns: ['e-6', 1],
  us: ['e-3', 1],
  µs: ['e-3', 1], // U+00B5 MICRO SIGN
  μs: ['e-3', 1], // U+03BC GREEK SMALL LETTER MU
  ms: ['e0', 1],
  s: ['e3', 1],
  m: ['e3', 60],
  h: ['e3', 3600],
};

/**
 * OpenAI's reset: a Go duration (`"1s"`, `"6m0s"`, `"59.876s"`, `"20ms"`,
 * `"1h2m3s"`) or plain seconds (`"12"`), as ms. No sign: a negative delay
 * means nothing here, and `"+1s"` is not what anyone sends.
 */
function goDuration(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = ows(value);
  if (text === '') return undefined;
  if (/^\d+(?:\.\d+)?$/.test(text)) return secondsMs(text);
  let ms = 0;
  GO_TERM.lastIndex = 0;
  while (GO_TERM.lastIndex < text.length) {
    const term = GO_TERM.exec(text);
    if (term === null) return undefined;
    const [exponent, factor] = GO_UNITS[term[2]!]!;
    ms += Number(`${term[1]}${exponent}`) * factor;
  }
  return delay(ms);
}

/** A non-negative integer count of ASCII digits up to {@link MAX_COUNT}, or undefined. */
function count(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = ows(value);
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n <= MAX_COUNT ? n : undefined;
}

/** Non-negative (possibly fractional) seconds as ms, or undefined. */
function deltaSeconds(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = ows(value);
  return /^\d+(?:\.\d+)?$/.test(text) ? secondsMs(text) : undefined;
}

/** Seconds already checked to be a plain decimal, as ms (rounded once, by `Number`). */
function secondsMs(decimal: string): number | undefined {
  return delay(Number(`${decimal}e3`));
}

/** `X-RateLimit-Reset`: delta seconds, or an epoch time in seconds or ms (GitHub, Discord and others). */
function legacyReset(value: string | null, nowMs: number): number | undefined {
  const ms = deltaSeconds(value);
  if (ms === undefined) return undefined;
  const raw = ms / 1000;
  if (raw >= EPOCH_MS_FROM) return sinceNow(raw, nowMs);
  if (raw >= EPOCH_SECONDS_FROM) return sinceNow(ms, nowMs);
  return ms;
}

/** The delay until an epoch time, 0 if it is past. */
function sinceNow(epochMs: number | undefined, nowMs: number): number | undefined {
  return epochMs === undefined ? undefined : delay(Math.max(0, epochMs - nowMs));
}

/** A delay in ms if it is one: finite, from 0 to {@link MAX_DELAY_MS}. */
function delay(ms: number): number | undefined {
  return ms >= 0 && ms <= MAX_DELAY_MS ? ms : undefined;
}

/**
 * A header value without the spaces and tabs HTTP allows around it. Not
 * `trim()`: a no-break space or other Unicode space is not HTTP whitespace,
 * so a value holding one is unreadable rather than read. A loop, not a
 * regex: `/[ \t]+$/` on a long run of spaces is quadratic.
 */
function ows(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start++;
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end--;
  return value.slice(start, end);
}

/** The clock readings are the caller's, not the upstream's: a NaN there would spread into every reset. */
function checkNow(nowMs: number): void {
  if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) throw new ArgumentError('nowMs', nowMs, 'a finite number of epoch milliseconds');
}
