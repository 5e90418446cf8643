// The upstream header readers against what providers send, by unit: the
// OpenAI and Anthropic forms beside the IETF ones, the limit and window they
// state, then what a hostile or buggy upstream may send instead (huge,
// negative, malformed, joined duplicates, odd bytes), and a property: for any
// header strings the readers never throw and give only undefined or finite,
// non-negative numbers. (The IETF forms' basic cases: test/limited-fetch.test.ts.)
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError } from '../build/lib/src/index.js';
import { parseQuotaHeaders, parseRetryAfter, type QuotaUnit, type UpstreamQuota } from '../build/lib/src/http/upstream-headers.js';

const now = Date.UTC(2026, 11, 3, 15, 0, 0);
const MAX = Number.MAX_SAFE_INTEGER;

/** A quota as the parser returns it: all four properties present. */
const quota = (remaining: number, resetMs: number | undefined, limit?: number, windowMs?: number): UpstreamQuota => ({ remaining, resetMs, limit, windowMs });
const read = (headers: Record<string, string>, unit?: QuotaUnit) => parseQuotaHeaders(new Headers(headers), now, unit);
/** Headers that hand back any string, even ones `Headers` refuses (above U+00FF, NUL, CR, LF). */
const rawHeaders = (values: Record<string, string>) => ({ get: (name: string) => values[name.toLowerCase()] ?? null }) as unknown as Headers;

describe('parseQuotaHeaders: the unit', () => {
  it("defaults to 'requests'; anything but 'requests' or 'tokens' is an ArgumentError naming unit", () => {
    const h = new Headers({ 'x-ratelimit-remaining-requests': '3', 'x-ratelimit-remaining-tokens': '7' });
    expect(parseQuotaHeaders(h, now)).toStrictEqual(quota(3, undefined));
    expect(parseQuotaHeaders(h, now, undefined)).toStrictEqual(quota(3, undefined));
    expect(parseQuotaHeaders(h, now, 'requests')).toStrictEqual(quota(3, undefined));
    expect(parseQuotaHeaders(h, now, 'tokens')).toStrictEqual(quota(7, undefined));
    for (const bad of ['Tokens', 'request', 'bytes', '', 'constructor', null, 1, {}]) {
      const thrown = (() => {
        try {
          parseQuotaHeaders(h, now, bad as QuotaUnit);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(thrown, String(bad)).toBeInstanceOf(ArgumentError);
      expect((thrown as ArgumentError).parameter).toBe('unit');
    }
  });

  it('a clock reading that is not a finite number is an ArgumentError naming nowMs (it would spread NaN into every reset)', () => {
    for (const bad of [Number.NaN, Infinity, -Infinity, '0' as unknown as number]) {
      expect(() => parseQuotaHeaders(new Headers(), bad)).toThrow(ArgumentError);
      expect(() => parseRetryAfter('1', bad)).toThrow(/nowMs/);
    }
  });
});

describe('parseQuotaHeaders: requests', () => {
  it('IETF RateLimit with RateLimit-Policy: the limit (q) and window (w) of the policy of the same name', () => {
    expect(read({ RateLimit: '"default";r=50;t=30', 'RateLimit-Policy': '"default";q=100;w=60' })).toStrictEqual(quota(50, 30_000, 100, 60_000));
    // Each policy carries its own size: the tightest wins with it.
    expect(read({ RateLimit: '"burst";r=3;t=1, "day";r=0;t=3600', 'RateLimit-Policy': '"burst";q=10;w=1, "day";q=1000;w=86400' })).toStrictEqual(
      quota(0, 3_600_000, 1000, 86_400_000),
    );
    // No policy of that name, or a name given twice (which size?), or an unreadable q: no limit, the rest stands.
    expect(read({ RateLimit: '"a";r=5;t=2', 'RateLimit-Policy': '"b";q=10;w=1' })).toStrictEqual(quota(5, 2000));
    expect(read({ RateLimit: '"a";r=5;t=2', 'RateLimit-Policy': '"a";q=10;w=1, "a";q=20;w=2' })).toStrictEqual(quota(5, 2000));
    expect(read({ RateLimit: '"a";r=5;t=2', 'RateLimit-Policy': '"a";q=-1;w=x' })).toStrictEqual(quota(5, 2000));
    // The older dictionary: limit=, and no window.
    expect(read({ RateLimit: 'limit=10, remaining=0, reset=7' })).toStrictEqual(quota(0, 7000, 10));
  });

  it('RateLimit-Limit and X-RateLimit-Limit', () => {
    expect(read({ 'RateLimit-Remaining': '2', 'RateLimit-Reset': '5', 'RateLimit-Limit': '60' })).toStrictEqual(quota(2, 5000, 60));
    expect(read({ 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': '1', 'X-RateLimit-Limit': '5000' })).toStrictEqual(quota(0, 1000, 5000));
  });

  it("OpenAI's x-ratelimit-*-requests: the reset a Go duration or plain seconds", () => {
    expect(read({ 'x-ratelimit-remaining-requests': '59', 'x-ratelimit-reset-requests': '1s', 'x-ratelimit-limit-requests': '60' })).toStrictEqual(quota(59, 1000, 60));
    const cases: [string, number][] = [
      ['1s', 1000],
      ['6m0s', 360_000],
      ['59.876s', 59_876],
      ['20ms', 20],
      ['1h2m3s', 3_723_000],
      ['12', 12_000],
      ['1.5', 1500],
      ['0s', 0],
      ['0', 0],
      ['1m30.5s', 90_500],
      ['.5s', 500],
      ['250us', 0.25],
      ['250µs', 0.25],
      ['2000000ns', 2],
      ['1.5h', 5_400_000],
      ['999999999h', 999_999_999 * 3_600_000],
    ];
    for (const [reset, ms] of cases) expect(read({ 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': reset })?.resetMs, reset).toBe(ms);
  });

  it("Anthropic's anthropic-ratelimit-requests-*: the reset an RFC 3339 time, relative to nowMs", () => {
    expect(
      read({ 'anthropic-ratelimit-requests-remaining': '0', 'anthropic-ratelimit-requests-reset': '2026-12-03T15:04:05Z', 'anthropic-ratelimit-requests-limit': '50' }),
    ).toStrictEqual(quota(0, 245_000, 50));
    const cases: [string, number][] = [
      ['2026-12-03T15:00:01.5Z', 1500],
      ['2026-12-03T15:00:00.123456789Z', 123.456789],
      ['2026-12-03T16:00:30+01:00', 30_000],
      ['2026-12-03T14:00:30-01:00', 30_000],
      ['2026-12-03t15:00:02z', 2000],
      ['2026-12-03T15:00:00Z', 0],
      ['2026-12-03T14:59:59Z', 0], // past: 0
      ['0001-01-01T00:00:00Z', 0], // long past, not a NaN from Date.UTC's two-digit years
      ['2028-02-29T00:00:00Z', Date.UTC(2028, 1, 29) - now],
      ['9999-12-31T23:59:59Z', Date.UTC(9999, 11, 31, 23, 59, 59) - now],
    ];
    for (const [reset, ms] of cases) expect(read({ 'anthropic-ratelimit-requests-remaining': '0', 'anthropic-ratelimit-requests-reset': reset })?.resetMs, reset).toBeCloseTo(ms, 2);
  });

  it('requests ignore the token headers', () => {
    expect(read({ 'x-ratelimit-remaining-tokens': '0', 'anthropic-ratelimit-tokens-remaining': '0', 'anthropic-ratelimit-output-tokens-remaining': '0' })).toBeUndefined();
  });

  it('the tightest across forms: fewest remaining, then the latest reset, with its own limit', () => {
    expect(
      read({
        'X-RateLimit-Remaining': '9',
        'x-ratelimit-remaining-requests': '4',
        'x-ratelimit-reset-requests': '2s',
        'x-ratelimit-limit-requests': '100',
        'anthropic-ratelimit-requests-remaining': '4',
        'anthropic-ratelimit-requests-reset': '2026-12-03T15:00:10Z',
        'anthropic-ratelimit-requests-limit': '50',
      }),
    ).toStrictEqual(quota(4, 10_000, 50));
  });
});

describe('parseQuotaHeaders: tokens', () => {
  it("OpenAI's x-ratelimit-*-tokens", () => {
    expect(read({ 'x-ratelimit-remaining-tokens': '149984', 'x-ratelimit-reset-tokens': '6m0s', 'x-ratelimit-limit-tokens': '150000' }, 'tokens')).toStrictEqual(
      quota(149_984, 360_000, 150_000),
    );
  });

  it("Anthropic's tokens, input-tokens and output-tokens: each a quota, the tightest wins", () => {
    const a = (name: string, remaining: string, reset: string, limit: string) => ({
      [`anthropic-ratelimit-${name}-remaining`]: remaining,
      [`anthropic-ratelimit-${name}-reset`]: reset,
      [`anthropic-ratelimit-${name}-limit`]: limit,
    });
    expect(read(a('tokens', '9000', '2026-12-03T15:00:05Z', '10000'), 'tokens')).toStrictEqual(quota(9000, 5000, 10_000));
    const all = { ...a('tokens', '9000', '2026-12-03T15:00:05Z', '10000'), ...a('input-tokens', '700', '2026-12-03T15:00:30Z', '8000'), ...a('output-tokens', '700', '2026-12-03T15:00:20Z', '2000') };
    expect(read(all, 'tokens')).toStrictEqual(quota(700, 30_000, 8000));
    expect(read({ ...all, 'x-ratelimit-remaining-tokens': '10', 'x-ratelimit-reset-tokens': '1s' }, 'tokens')).toStrictEqual(quota(10, 1000));
  });

  it('tokens ignore every request header', () => {
    expect(
      read(
        {
          RateLimit: '"p";r=0;t=1',
          'RateLimit-Remaining': '0',
          'X-RateLimit-Remaining': '0',
          'x-ratelimit-remaining-requests': '0',
          'anthropic-ratelimit-requests-remaining': '0',
        },
        'tokens',
      ),
    ).toBeUndefined();
  });
});

describe('parseQuotaHeaders: what a hostile or buggy upstream sends', () => {
  const remaining = (value: string) => read({ 'x-ratelimit-remaining-requests': value })?.remaining;

  it('a remaining count is ASCII digits up to Number.MAX_SAFE_INTEGER, else ignored', () => {
    expect(remaining(String(MAX))).toBe(MAX);
    expect(remaining('007')).toBe(7);
    for (const bad of [String(MAX + 1), '9'.repeat(400), '-1', '1.5', '1e3', '0x10', 'Infinity', 'NaN', '', '+5', '5 apples', '\u00a05', '5\u00a0', '\u00b2']) {
      expect(remaining(bad), bad).toBeUndefined();
    }
    // Unicode digits Headers cannot carry, and bytes it refuses, reach a reader that is handed any string.
    for (const bad of ['５', '٥', '5\u0000', '5\r\n', '\u20005']) {
      expect(parseQuotaHeaders(rawHeaders({ 'x-ratelimit-remaining': bad }), now), JSON.stringify(bad)).toBeUndefined();
    }
  });

  it('a count a proxy joined from duplicate headers ("5, 7") is ambiguous: ignored, not the first nor the smaller', () => {
    for (const name of ['x-ratelimit-remaining-requests', 'X-RateLimit-Remaining', 'RateLimit-Remaining', 'anthropic-ratelimit-requests-remaining']) {
      const h = new Headers();
      h.append(name, '5');
      h.append(name, '7');
      expect(h.get(name)).toBe('5, 7');
      expect(parseQuotaHeaders(h, now), name).toBeUndefined();
    }
    // A joined reset or limit only loses that part.
    expect(read({ 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': '1, 2', 'X-RateLimit-Limit': '10, 20' })).toStrictEqual(quota(0, undefined));
  });

  it('an unreadable or absurd limit is dropped, the remaining count stays', () => {
    for (const bad of ['9'.repeat(400), String(MAX + 1), '-5', '1e3', 'many']) {
      expect(read({ 'x-ratelimit-remaining-requests': '3', 'x-ratelimit-limit-requests': bad }), bad).toStrictEqual(quota(3, undefined));
    }
  });

  it('Go-duration resets: negative, malformed, NaN, 1e9, Infinity, empty are ignored; huge is finite or ignored, never Infinity', () => {
    const reset = (value: string) => read({ 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': value })?.resetMs;
    for (const bad of ['-1s', '-1', '1e9', '1e9s', 'Infinity', 'Infinitys', 'NaN', 'NaNs', '', ' ', 's', '1x', '1d', '1 s', '1s2', '1.2.3s', '+1s', '0x10s', '1ss', '1S', '9'.repeat(400), `${'9'.repeat(400)}s`, `${'9'.repeat(400)}h1s`]) {
      expect(reset(bad), JSON.stringify(bad)).toBeUndefined();
    }
    // The largest that is still a delay, and just past it.
    expect(reset('2501999792h59m0.991s')).toBe(MAX);
    expect(reset('2501999793h')).toBeUndefined();
  });

  it('RFC 3339 resets: malformed, zone-less, impossible dates and other date forms are ignored; the past is 0', () => {
    const reset = (value: string) => read({ 'anthropic-ratelimit-requests-remaining': '0', 'anthropic-ratelimit-requests-reset': value })?.resetMs;
    for (const bad of [
      '',
      'Infinity',
      'NaN',
      '1e9',
      '-1',
      '30',
      '1764774245',
      '2026-12-03T15:04:05', // no zone: local time to Date.parse
      '2026-12-03 15:04:05Z',
      '2026-12-03',
      '2026-02-29T00:00:00Z',
      '2026-02-30T00:00:00Z',
      '2026-13-01T00:00:00Z',
      '2026-00-01T00:00:00Z',
      '2026-12-00T00:00:00Z',
      '2026-12-03T24:00:00Z',
      '2026-12-03T15:60:00Z',
      '2026-12-03T15:04:61Z',
      '2026-12-03T15:04:05+24:00',
      '2026-12-03T15:04:05+01:60',
      '2026-12-03T15:04:05+0100',
      '2026-12-03T15:04:05.Z',
      '+2026-12-03T15:04:05Z',
      '12026-12-03T15:04:05Z',
      'Thu, 03 Dec 2026 15:04:05 GMT',
      '2026-12-03T15:04:05Z, 2026-12-03T15:05:05Z',
    ]) {
      expect(reset(bad), bad).toBeUndefined();
    }
    expect(reset('2026-12-03T23:59:60Z')).toBe(Date.UTC(2026, 11, 4) - now); // a leap second, as the next one
    expect(reset('1970-01-01T00:00:00Z')).toBe(0);
  });

  it('delta-second and epoch resets: too large for a delay is ignored, never Infinity', () => {
    for (const name of ['RateLimit-Reset', 'X-RateLimit-Reset']) {
      const remainingName = name.replace('Reset', 'Remaining');
      for (const bad of ['9'.repeat(400), `${'9'.repeat(400)}.5`, '-5', '1e9', 'Infinity', '']) {
        expect(read({ [remainingName]: '0', [name]: bad }), `${name}: ${bad}`).toStrictEqual(quota(0, undefined));
      }
    }
    expect(read({ RateLimit: `"p";r=0;t=${'9'.repeat(400)}` })).toStrictEqual(quota(0, undefined));
  });
});

describe('parseRetryAfter: huge and odd values', () => {
  it('delay-seconds past Number.MAX_SAFE_INTEGER ms (400 digits, say) are ignored, never Infinity', () => {
    expect(parseRetryAfter('9'.repeat(400), now)).toBeUndefined();
    expect(parseRetryAfter('9007199254740', now)).toBe(9_007_199_254_740_000);
    expect(parseRetryAfter('9007199254741', now)).toBeUndefined();
    expect(parseRetryAfter(`0${'0'.repeat(400)}7`, now)).toBe(7000);
  });

  it('only spaces and tabs are skipped around the value', () => {
    expect(parseRetryAfter('\t3 ', now)).toBe(3000);
    for (const bad of ['\u00a03', '3\u00a0', '\u20003', '\ufeff3', '3\n', '３', '3, 4']) expect(parseRetryAfter(bad, now), JSON.stringify(bad)).toBeUndefined();
  });
});

describe('property: any header strings give undefined or finite, non-negative numbers', () => {
  const quotaNames = [
    'ratelimit',
    'ratelimit-policy',
    ...['ratelimit', 'x-ratelimit'].flatMap((p) => ['remaining', 'reset', 'limit'].map((f) => `${p}-${f}`)),
    ...['requests', 'tokens'].flatMap((u) => ['remaining', 'reset', 'limit'].map((f) => `x-ratelimit-${f}-${u}`)),
    ...['requests', 'tokens', 'input-tokens', 'output-tokens'].flatMap((n) => ['remaining', 'reset', 'limit'].map((f) => `anthropic-ratelimit-${n}-${f}`)),
  ];
  // Pieces of the forms above and of what breaks them, so that values come near to readable.
  const pieces = ['0', '1', '5', '9', '59.876', '.', '-', '+', 'e', 'e9', 'h', 'm', 's', 'ms', 'us', 'µs', 'ns', ',', ', ', ';', '=', '"p"', 'r', 't', 'q', 'w', 'limit', 'remaining', 'reset',
    '2026-12-03T15:04:05', 'Z', '+01:00', '.5', 'T', ':', ' ', '\t', 'Infinity', 'NaN', '9'.repeat(400), String(MAX + 2), '\u00a0', '\u00ff', 'Wed, 21 Oct 2015 07:28:10 GMT'];
  const near = fc.array(fc.constantFrom(...pieces), { maxLength: 8 }).map((p) => p.join(''));
  // What Headers can carry: Latin-1 without NUL, CR and LF.
  const byteString = fc.string({ unit: fc.integer({ min: 1, max: 255 }).filter((c) => c !== 10 && c !== 13).map((c) => String.fromCharCode(c)), maxLength: 40 });
  const anyString = fc.string({ unit: 'binary', maxLength: 40 });
  const units = fc.constantFrom<QuotaUnit>('requests', 'tokens');
  const clock = fc.integer({ min: -1e15, max: 1e15 });

  function sane(q: UpstreamQuota | undefined): boolean {
    if (q === undefined) return true;
    const optional = [q.resetMs, q.limit, q.windowMs].every((v) => v === undefined || (Number.isFinite(v) && v >= 0 && v <= MAX));
    return Number.isSafeInteger(q.remaining) && q.remaining >= 0 && (q.limit === undefined || Number.isSafeInteger(q.limit)) && optional && 'limit' in q && 'windowMs' in q;
  }

  it('through Headers (Latin-1 values)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...quotaNames), fc.oneof(near, byteString)), clock, units, (values, nowMs, unit) => {
        const h = new Headers(values);
        return sane(parseQuotaHeaders(h, nowMs, unit));
      }),
      { numRuns: 2000 },
    );
  });

  it('handed any string (code points Headers refuses, lone surrogates)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...quotaNames), fc.oneof(near, anyString)), clock, units, (values, nowMs, unit) => sane(parseQuotaHeaders(rawHeaders(values), nowMs, unit))),
      { numRuns: 2000 },
    );
  });

  it('parseRetryAfter', () => {
    fc.assert(
      fc.property(fc.oneof(near, anyString), clock, (value, nowMs) => {
        const ms = parseRetryAfter(value, nowMs);
        return ms === undefined || (Number.isFinite(ms) && ms >= 0 && ms <= MAX);
      }),
      { numRuns: 2000 },
    );
  });

  it('a unit other than the two: always an ArgumentError, whatever the headers', () => {
    fc.assert(
      fc.property(
        fc.string().filter((u) => u !== 'requests' && u !== 'tokens'),
        fc.dictionary(fc.constantFrom(...quotaNames), near),
        (unit, values) => {
          expect(() => parseQuotaHeaders(new Headers(values), now, unit as QuotaUnit)).toThrow(ArgumentError);
        },
      ),
      { numRuns: 300 },
    );
  });
});
