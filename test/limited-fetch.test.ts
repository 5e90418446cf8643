// limitedFetch: outbound calls admitted by a Limiter that also listen to the
// upstream. The header readers and the adaptive pacer on their own, then the
// wrapper against a scripted fetch on a virtual clock, then for real against
// a loopback upstream that enforces its own, stricter limit.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ArgumentError, ConfigError, Limiter, gcra } from '../build/lib/src/index.js';
import { AdaptivePacer, DEFAULT_PACING } from '../build/lib/src/http/adaptive.js';
import { limitedFetch, type FetchFunction } from '../build/lib/src/http/limited-fetch.js';
import { parseQuotaHeaders, parseRetryAfter } from '../build/lib/src/http/upstream-headers.js';

describe('parseRetryAfter', () => {
  const now = Date.UTC(2015, 9, 21, 7, 28, 0);

  it('reads delay-seconds', () => {
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter('1', now)).toBe(1000);
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000);
  });

  it('reads the three HTTP-date forms relative to the given now, a past date as 0', () => {
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Wednesday, 21-Oct-15 07:28:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed Oct 21 07:29:00 2015', now)).toBe(60_000);
    expect(parseRetryAfter('Wed Oct  1 07:28:00 2015', now)).toBe(0);
    expect(parseRetryAfter('Tue, 20 Oct 2015 07:28:00 GMT', now)).toBe(0);
  });

  it('ignores garbage: undefined, never NaN or a guess', () => {
    // '1.5' is a date to V8's Date.parse (2001-01-05): the reader is strict on purpose.
    for (const bad of [null, undefined, '', ' ', 'soon', '-1', '1.5', '1e3', '0x10', 'Wed, 21 Oct 2015 07:28:10', 'Wed, 21 Foo 2015 07:28:10 GMT', 'Wed, 21 Oct 2015 25:28:10 GMT']) {
      expect(parseRetryAfter(bad, now), String(bad)).toBeUndefined();
    }
  });
});

describe('parseQuotaHeaders', () => {
  const now = 1_700_000_000_000;

  it('reads the IETF RateLimit field, structured (the tightest policy wins) and in its older dictionary form', () => {
    expect(parseQuotaHeaders(new Headers({ RateLimit: '"default";r=0;t=30' }), now)).toEqual({ remaining: 0, resetMs: 30_000 });
    expect(parseQuotaHeaders(new Headers({ RateLimit: '"burst";r=3;t=1, "day";r=0;t=3600, "hour";r=0;t=60' }), now)).toEqual({ remaining: 0, resetMs: 3_600_000 });
    expect(parseQuotaHeaders(new Headers({ RateLimit: 'limit=10, remaining=0, reset=7' }), now)).toEqual({ remaining: 0, resetMs: 7000, limit: 10 });
    expect(parseQuotaHeaders(new Headers({ RateLimit: '"p";r=2' }), now)).toEqual({ remaining: 2, resetMs: undefined });
  });

  it('reads RateLimit-Remaining / RateLimit-Reset and X-RateLimit-Remaining / X-RateLimit-Reset (delta, epoch seconds, epoch ms)', () => {
    expect(parseQuotaHeaders(new Headers({ 'RateLimit-Remaining': '0', 'RateLimit-Reset': '5' }), now)).toEqual({ remaining: 0, resetMs: 5000 });
    expect(parseQuotaHeaders(new Headers({ 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': '2.5' }), now)).toEqual({ remaining: 0, resetMs: 2500 });
    expect(parseQuotaHeaders(new Headers({ 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': String(now / 1000 + 42) }), now)).toEqual({ remaining: 0, resetMs: 42_000 });
    expect(parseQuotaHeaders(new Headers({ 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': String(now + 1500) }), now)).toEqual({ remaining: 0, resetMs: 1500 });
    expect(parseQuotaHeaders(new Headers({ 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': String(now / 1000 - 5) }), now)).toEqual({ remaining: 0, resetMs: 0 });
    // Both styles at once (as cellgate's own middleware sends with 'both'): they agree, the fewest remaining wins.
    expect(parseQuotaHeaders(new Headers({ RateLimit: '"gcra";r=4;t=1', 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': '1' }), now)).toEqual({ remaining: 0, resetMs: 1000 });
  });

  it('ignores what it cannot read', () => {
    expect(parseQuotaHeaders(new Headers(), now)).toBeUndefined();
    expect(parseQuotaHeaders(new Headers({ 'X-RateLimit-Remaining': 'none', RateLimit: 'nonsense' }), now)).toBeUndefined();
    expect(parseQuotaHeaders(new Headers({ 'X-RateLimit-Remaining': '-1' }), now)).toBeUndefined();
    expect(parseQuotaHeaders(new Headers({ 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': 'soon' }), now)).toEqual({ remaining: 0, resetMs: undefined });
  });
});

describe('AdaptivePacer on a virtual clock', () => {
  const clock = () => Date.now();
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('holds a key until the retry moment, halves its pace once per burst, recovers additively, then forgets it', async () => {
    const pacer = new AdaptivePacer({ initialSpacingMs: 100, recoverySuccesses: 4, clock });
    // Untracked: passes at once and holds nothing.
    const [a, b] = [await pacer.admit('k'), await pacer.admit('k')];
    expect(pacer.stats('k')).toBeUndefined();
    // Both calls of the burst are refused: one reduction, not two.
    pacer.pushback('k', a, 1000);
    pacer.pushback('k', b, 1000);
    expect(pacer.stats('k')).toEqual({ spacingMs: 100, waitMs: 1000, waiting: 0 });

    const starts: number[] = [];
    const waiting = [1, 2, 3].map(() => pacer.admit('k').then((t) => (starts.push(Date.now()), t)));
    await vi.advanceTimersByTimeAsync(999);
    expect(starts).toEqual([]);
    expect(pacer.stats('k')).toMatchObject({ waiting: 3, waitMs: 1 });
    await vi.advanceTimersByTimeAsync(301);
    expect(starts).toEqual([1000, 1100, 1200]);
    const tickets = await Promise.all(waiting);

    // A call admitted under the new pace is refused: it halves again, and with
    // no retry moment named the key is held one (new) spacing.
    pacer.pushback('k', tickets[0]!);
    expect(pacer.stats('k')).toMatchObject({ spacingMs: 200, waitMs: 200 });
    // Its siblings were admitted before that reduction: neither their refusal nor their success moves the pace.
    pacer.pushback('k', tickets[1]!);
    pacer.success('k', tickets[2]!);
    expect(pacer.stats('k')).toMatchObject({ spacingMs: 200, waitMs: 200 });

    // Each success of a call admitted since takes 200 / 4 off; the key is forgotten at 0.
    const spacings: (number | undefined)[] = [];
    const later: number[] = [];
    for (let i = 0; i < 4; i++) {
      const p = pacer.admit('k').then((t) => (later.push(Date.now()), t));
      await vi.advanceTimersByTimeAsync(1000);
      pacer.success('k', await p);
      spacings.push(pacer.stats('k')?.spacingMs);
    }
    expect(spacings).toEqual([150, 100, 50, undefined]);
    // The first waits for the hold (1300 + 200); the others come long after one spacing.
    expect(later).toEqual([1500, 2300, 3300, 4300]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('spaces waiting calls by the current spacing, which successes shorten while they wait', async () => {
    const pacer = new AdaptivePacer({ initialSpacingMs: 400, recoverySuccesses: 2, clock });
    const t = await pacer.admit('k');
    pacer.pushback('k', t, 0);
    const starts: number[] = [];
    const waiting = [1, 2, 3].map(() => pacer.admit('k').then((ticket) => (starts.push(Date.now()), ticket)));
    await vi.advanceTimersByTimeAsync(0);
    // Retry-After 0: the first goes now, the next one spacing after it.
    expect(starts).toEqual([0]);
    await vi.advanceTimersByTimeAsync(399);
    expect(starts).toEqual([0]);
    await vi.advanceTimersByTimeAsync(1);
    expect(starts).toEqual([0, 400]);
    pacer.success('k', await waiting[0]!); // 400 -> 200: the last may start 200 after the previous
    await vi.advanceTimersByTimeAsync(200);
    expect(starts).toEqual([0, 400, 600]);
    await Promise.all(waiting);
  });

  it('pause holds a key without slowing it afterwards', async () => {
    const pacer = new AdaptivePacer({ clock });
    pacer.pause('quota', 500);
    expect(pacer.stats('quota')).toEqual({ spacingMs: 0, waitMs: 500, waiting: 0 });
    const starts: number[] = [];
    const waiting = [1, 2, 3].map(() => pacer.admit('quota').then(() => starts.push(Date.now())));
    // Other keys are not held.
    await pacer.admit('other');
    await vi.advanceTimersByTimeAsync(500);
    await Promise.all(waiting);
    expect(starts).toEqual([500, 500, 500]);
    expect(pacer.stats('quota')).toBeUndefined();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an aborted wait rejects with the reason and leaves the others in order', async () => {
    const pacer = new AdaptivePacer({ clock });
    pacer.pause('k', 1000);
    const controller = new AbortController();
    const starts: string[] = [];
    const a = pacer.admit('k').then(() => starts.push('a'));
    const b = pacer.admit('k', controller.signal).then(() => starts.push('b'));
    const c = pacer.admit('k').then(() => starts.push('c'));
    controller.abort(new Error('gave up'));
    await expect(b).rejects.toThrow('gave up');
    expect(pacer.stats('k')?.waiting).toBe(2);
    await vi.advanceTimersByTimeAsync(1000);
    await Promise.all([a, c]);
    expect(starts).toEqual(['a', 'c']);
    await expect(pacer.admit('k', AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects bad options and arguments with typed errors naming them', () => {
    const cases: [() => unknown, typeof ConfigError | typeof ArgumentError, string][] = [
      [() => new AdaptivePacer(5 as never), ConfigError, 'AdaptivePacer options'],
      [() => new AdaptivePacer({ initialSpacingMs: 0 }), ConfigError, 'initialSpacingMs'],
      [() => new AdaptivePacer({ initialSpacingMs: NaN }), ConfigError, 'initialSpacingMs'],
      [() => new AdaptivePacer({ initialSpacingMs: 500, maxSpacingMs: 100 }), ConfigError, 'maxSpacingMs'],
      [() => new AdaptivePacer({ recoverySuccesses: 1.5 }), ConfigError, 'recoverySuccesses'],
      [() => new AdaptivePacer({ recoverySuccesses: 0 }), ConfigError, 'recoverySuccesses'],
      [() => new AdaptivePacer({ clock: 5 as never }), ConfigError, 'clock'],
      [() => new AdaptivePacer({ timers: {} as never }), ConfigError, 'timers'],
      [() => new AdaptivePacer().pushback('k', -1), ArgumentError, 'ticket'],
      [() => new AdaptivePacer().pushback('k', 0, -5), ArgumentError, 'retryAfterMs'],
      [() => new AdaptivePacer().pause('k', NaN), ArgumentError, 'delayMs'],
      [() => new AdaptivePacer().pause('', 5), ArgumentError, 'key'],
    ];
    for (const [fn, errorClass, parameter] of cases) {
      expect(fn, parameter).toThrow(errorClass);
      try {
        fn();
      } catch (e) {
        expect((e as ConfigError).parameter).toBe(parameter);
      }
    }
  });

  it('without options, paces as DEFAULT_PACING documents: 100 ms at the first pushback, doubled by each further one up to 60 s, back to 0 in 20 successes', async () => {
    const pacer = new AdaptivePacer({ clock });
    // Each call admitted after the last reduction, then refused.
    const spacings: number[] = [];
    for (let i = 0; i < 12; i++) {
      const ticket = pacer.admit('k');
      await vi.advanceTimersByTimeAsync(DEFAULT_PACING.maxSpacingMs);
      pacer.pushback('k', await ticket, 0);
      spacings.push(pacer.stats('k')!.spacingMs);
    }
    expect(spacings).toEqual([100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 51_200, 60_000, 60_000]);
    let successes = 0;
    while (pacer.stats('k') !== undefined && successes < 100) {
      const ticket = pacer.admit('k');
      await vi.advanceTimersByTimeAsync(DEFAULT_PACING.maxSpacingMs);
      pacer.success('k', await ticket);
      successes++;
    }
    expect(successes).toBe(20);
  });
});

/** A scripted upstream: answers each call with the next response of the script (the last one repeats). */
function scripted(...script: (() => Response)[]) {
  const calls: { at: number; url: string; body: string | undefined; init: RequestInit | undefined }[] = [];
  const fetchFn: FetchFunction = async (input, init) => {
    const at = Date.now();
    const request = new Request(input, init);
    const body = request.body === null ? undefined : await request.text();
    calls.push({ at, url: request.url, body, init });
    return script[Math.min(calls.length - 1, script.length - 1)]!();
  };
  return { calls, fetchFn };
}
const answer = (status: number, headers: Record<string, string> = {}) => () => new Response(status === 200 ? 'ok' : null, { status, headers });

describe('limitedFetch on a virtual clock', () => {
  const clock = () => Date.now();
  const generous = () => new Limiter({ policy: gcra({ limit: 1000, period: '1s', burst: 1000 }), clock });
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('returns a 429 as is, never throwing, and holds the origin until Retry-After; other origins go on', async () => {
    const { calls, fetchFn } = scripted(answer(429, { 'Retry-After': '2' }), answer(200));
    const pacer = new AdaptivePacer({ clock });
    const api = limitedFetch(fetchFn, { limiter: generous(), pacer });
    const first = await api('https://a.example/x');
    expect(first.status).toBe(429);
    expect(pacer.stats('https://a.example')).toMatchObject({ spacingMs: 100, waitMs: 2000 });
    const held = api('https://a.example/y');
    const other = await api('https://b.example/z');
    expect(other.status).toBe(200);
    await vi.advanceTimersByTimeAsync(2000);
    expect((await held).status).toBe(200);
    expect(calls.map((c) => [c.at, c.url])).toEqual([
      [0, 'https://a.example/x'],
      [0, 'https://b.example/z'],
      [2000, 'https://a.example/y'],
    ]);
  });

  it('a 503 with Retry-After pushes back; a 503 without one, or a 500, changes nothing', async () => {
    const { calls, fetchFn } = scripted(answer(503), answer(500), answer(503, { 'Retry-After': '1' }), answer(200));
    const pacer = new AdaptivePacer({ clock });
    const api = limitedFetch(fetchFn, { limiter: generous(), key: 'upstream', pacer });
    expect((await api('https://a.example/')).status).toBe(503);
    expect((await api('https://a.example/')).status).toBe(500);
    expect(pacer.stats('upstream')).toBeUndefined();
    expect((await api('https://a.example/')).status).toBe(503);
    expect(pacer.stats('upstream')).toMatchObject({ spacingMs: 100, waitMs: 1000 });
    const next = api('https://a.example/');
    await vi.advanceTimersByTimeAsync(1000);
    expect((await next).status).toBe(200);
    expect(calls.map((c) => c.at)).toEqual([0, 0, 0, 1000]);
  });

  it('remaining quota 0 with a reset holds the key until the reset, without slowing it afterwards', async () => {
    const { calls, fetchFn } = scripted(answer(200, { 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': '3' }), answer(200, { RateLimit: '"q";r=9;t=3' }));
    const pacer = new AdaptivePacer({ clock });
    const api = limitedFetch(fetchFn, { limiter: generous(), pacer });
    expect((await api('https://q.example/')).status).toBe(200);
    expect(pacer.stats('https://q.example')).toEqual({ spacingMs: 0, waitMs: 3000, waiting: 0 });
    const later = [api('https://q.example/'), api('https://q.example/')];
    await vi.advanceTimersByTimeAsync(3000);
    await Promise.all(later);
    expect(calls.map((c) => c.at)).toEqual([0, 3000, 3000]);
    expect(pacer.stats('https://q.example')).toBeUndefined();
  });

  it("reads an HTTP-date Retry-After against the response's Date, and caps the hold at maxRetryAfterMs", async () => {
    // The virtual clock says 1970: only the upstream's own Date makes sense of its date.
    const { calls, fetchFn } = scripted(
      answer(429, { Date: 'Wed, 21 Oct 2015 07:28:00 GMT', 'Retry-After': 'Wed, 21 Oct 2015 07:28:05 GMT' }),
      answer(429, { 'Retry-After': '86400' }),
      answer(200),
    );
    const api = limitedFetch(fetchFn, { limiter: generous(), key: 'k', retry429: 2, maxRetryAfterMs: 60_000, pacer: new AdaptivePacer({ clock }) });
    const done = api('https://d.example/');
    await vi.advanceTimersByTimeAsync(70_000);
    expect((await done).status).toBe(200);
    expect(calls.map((c) => c.at)).toEqual([0, 5000, 65_000]);
  });

  it('retry429 waits for Retry-After and resends the whole body: a Request input, and a stream body', async () => {
    const { calls, fetchFn } = scripted(answer(429, { 'Retry-After': '1' }), answer(200), answer(429, { 'Retry-After': '1' }), answer(200));
    const api = limitedFetch(fetchFn, { limiter: generous(), key: 'k', retry429: 1, pacer: new AdaptivePacer({ clock }) });
    const fromRequest = api(new Request('https://r.example/a', { method: 'POST', body: 'payload-1' }));
    await vi.advanceTimersByTimeAsync(1000);
    expect((await fromRequest).status).toBe(200);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('payload-2'));
        c.close();
      },
    });
    const fromStream = api('https://r.example/b', { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
    await vi.advanceTimersByTimeAsync(2000);
    expect((await fromStream).status).toBe(200);
    expect(calls.map((c) => [c.at, c.url, c.body])).toEqual([
      [0, 'https://r.example/a', 'payload-1'],
      [1000, 'https://r.example/a', 'payload-1'],
      // One (recovering) spacing after the last start: 100 - 100/20; refused, held for its Retry-After.
      [1095, 'https://r.example/b', 'payload-2'],
      [2095, 'https://r.example/b', 'payload-2'],
    ]);
  });

  it('returns the last 429 when retry429 attempts run out, and passes the caller init through untouched', async () => {
    const { calls, fetchFn } = scripted(answer(429, { 'Retry-After': '1' }));
    const api = limitedFetch(fetchFn, { limiter: generous(), key: 'k', retry429: 2, pacer: new AdaptivePacer({ clock }) });
    const init = { headers: { 'x-tenant': '7' }, dispatcher: 'kept' } as RequestInit;
    const done = api('https://e.example/', init);
    await vi.advanceTimersByTimeAsync(5000);
    const res = await done;
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(calls.map((c) => c.at)).toEqual([0, 1000, 2000]);
    expect(calls.every((c) => c.init === init)).toBe(true);
  });

  it('aborting while held rejects with the reason and refunds the limiter; nothing is sent', async () => {
    const { calls, fetchFn } = scripted(answer(429, { 'Retry-After': '10' }));
    const limiter = generous();
    const refund = vi.spyOn(limiter, 'refund');
    const api = limitedFetch(fetchFn, { limiter, key: 'k', pacer: new AdaptivePacer({ clock }) });
    await api('https://f.example/');
    const controller = new AbortController();
    const held = api('https://f.example/', { signal: controller.signal });
    // The signal of a Request input counts too.
    const requestController = new AbortController();
    const heldRequest = api(new Request('https://f.example/', { signal: requestController.signal }));
    await vi.advanceTimersByTimeAsync(100);
    controller.abort(new Error('user cancelled'));
    await expect(held).rejects.toThrow('user cancelled');
    await vi.advanceTimersByTimeAsync(400);
    requestController.abort(new DOMException('too late', 'TimeoutError'));
    await expect(heldRequest).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(refund).toHaveBeenCalledTimes(2);
    expect(refund).toHaveBeenCalledWith('k', 1);
    expect(calls).toHaveLength(1);
  });

  it('keys by a function of a body-less Request with the URL, method and headers; a bad key rejects the call', async () => {
    const { calls, fetchFn } = scripted(answer(200));
    const seen: string[] = [];
    const api = limitedFetch(fetchFn, {
      limiter: generous(),
      key: (request) => {
        seen.push(`${request.method} ${request.url} ${request.headers.get('x-tenant')} ${String(request.body)}`);
        return request.headers.get('x-tenant') ?? '';
      },
    });
    await api('https://k.example/p', { method: 'POST', headers: { 'x-tenant': 't1' }, body: 'secret' });
    await api(new Request('https://k.example/q', { headers: { 'x-tenant': 't2' } }));
    expect(seen).toEqual(['POST https://k.example/p t1 null', 'GET https://k.example/q t2 null']);
    expect(calls.map((c) => c.body)).toEqual(['secret', undefined]);
    const bad = api('https://k.example/r');
    await expect(bad).rejects.toBeInstanceOf(ArgumentError);
    await expect(bad).rejects.toMatchObject({ parameter: 'key' });
    expect(calls).toHaveLength(2);
  });

  it('rejects bad options with a ConfigError naming the parameter', () => {
    const limiter = generous();
    const fetchFn: FetchFunction = async () => new Response('ok');
    const cases: [() => unknown, string][] = [
      [() => limitedFetch(undefined as never, { limiter }), 'fetch'],
      [() => limitedFetch('fetch' as never, { limiter }), 'fetch'],
      [() => limitedFetch(fetchFn, undefined as never), 'limitedFetch options'],
      [() => limitedFetch(fetchFn, {} as never), 'limiter'],
      [() => limitedFetch(fetchFn, { limiter: { limit() {} } as never }), 'limiter'],
      [() => limitedFetch(fetchFn, { limiter, key: '' }), 'key'],
      [() => limitedFetch(fetchFn, { limiter, key: 42 as never }), 'key'],
      [() => limitedFetch(fetchFn, { limiter, retry429: -1 }), 'retry429'],
      [() => limitedFetch(fetchFn, { limiter, retry429: 1.5 }), 'retry429'],
      [() => limitedFetch(fetchFn, { limiter, maxRetryAfterMs: 0 }), 'maxRetryAfterMs'],
      [() => limitedFetch(fetchFn, { limiter, maxRetryAfterMs: Infinity }), 'maxRetryAfterMs'],
      [() => limitedFetch(fetchFn, { limiter, pacer: {} as never }), 'pacer'],
    ];
    for (const [fn, parameter] of cases) {
      expect(fn, parameter).toThrow(ConfigError);
      try {
        fn();
      } catch (e) {
        expect((e as ConfigError).parameter).toBe(parameter);
      }
    }
    expect(typeof limitedFetch(fetchFn, { limiter, retry429: Infinity })).toBe('function');
  });
});

/**
 * A real upstream on loopback that enforces its own limit: at most `limit`
 * accepted requests within any `windowMs`, beyond which it answers 429 with
 * `Retry-After: 1`. Times are `performance.now()`, as the test's clocks.
 */
function strictUpstream(limit: number, windowMs: number) {
  const accepted: number[] = [];
  const log: { seq: number; at: number; status: number }[] = [];
  const state = { happy: false };
  const server: Server = createServer((req, res) => {
    const at = performance.now();
    const seq = Number(req.headers['x-seq']);
    const recent = accepted.filter((t) => t > at - windowMs).length;
    const status = state.happy || recent < limit ? 200 : 429;
    if (status === 200) accepted.push(at);
    log.push({ seq, at, status });
    res.writeHead(status, status === 429 ? { 'Retry-After': '1', 'X-At': String(at) } : { 'X-At': String(at) });
    res.end(status === 200 ? 'ok' : 'slow down');
  });
  return { server, log, state };
}

describe('limitedFetch against a real upstream that enforces its own limit', () => {
  let up: ReturnType<typeof strictUpstream>;
  let url: string;
  beforeAll(async () => {
    up = strictUpstream(5, 100);
    await new Promise<void>((resolve) => up.server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(up.server.address() as AddressInfo).port}/`;
  });
  afterAll(async () => {
    up.server.closeAllConnections();
    await new Promise((resolve) => up.server.close(resolve));
  });

  it('a too-generous limiter: the fleet holds for Retry-After after the first 429, slows down, every call succeeds, then the pace recovers', async () => {
    // 100/s with a burst of 20, against an upstream that takes 5 per 100 ms (50/s, no burst).
    const limiter = new Limiter({ policy: gcra({ limit: 100, period: '1s', burst: 20 }) });
    const pacer = new AdaptivePacer({ initialSpacingMs: 30, recoverySuccesses: 30, clock: () => performance.now() });
    let seq = 0;
    const attempts: { seq: number; start: number }[] = [];
    const refusals: { seenAt: number; sentAt: number }[] = [];
    const traced: FetchFunction = async (input, init) => {
      const n = seq++;
      attempts.push({ seq: n, start: performance.now() });
      const res = await fetch(input, { ...init, headers: { 'x-seq': String(n) } });
      if (res.status === 429) refusals.push({ seenAt: performance.now(), sentAt: Number(res.headers.get('x-at')) });
      return res;
    };
    const api = limitedFetch(traced, { limiter, pacer, retry429: 5 });
    const key = new URL(url).origin;

    // Warm up the client (its first use, and 20 sockets) while the upstream
    // takes everything, then let its window empty: phase 1 measures pacing,
    // not connection setup.
    up.state.happy = true;
    await Promise.all(Array.from({ length: 20 }, () => fetch(url, { headers: { 'x-seq': '-1' } }).then((r) => r.arrayBuffer())));
    up.state.happy = false;
    up.log.length = 0;
    await new Promise((resolve) => setTimeout(resolve, 150));

    // Phase 1: 30 calls at once.
    const t0 = performance.now();
    const phase1 = await Promise.all(Array.from({ length: 30 }, () => api(url).then(async (r) => ({ status: r.status, text: await r.text() }))));
    const phase1Ms = performance.now() - t0;
    expect(phase1.every((r) => r.status === 200 && r.text === 'ok')).toBe(true);

    const arrival = new Map(up.log.map((e) => [e.seq, e]));
    expect(refusals.length).toBeGreaterThan(0);
    // After each 429, no request started after the client saw it reaches the upstream before its Retry-After moment.
    for (const r of refusals) {
      for (const a of attempts.filter((x) => x.start > r.seenAt)) {
        expect(arrival.get(a.seq)!.at).toBeGreaterThanOrEqual(r.sentAt + 1000);
      }
    }
    // The 429s are the burst already in flight when the first one came back, plus at most a few probes.
    const firstSeen = refusals[0]!.seenAt;
    const inFlight = attempts.filter((a) => a.start <= firstSeen).length;
    const late429 = up.log.filter((e) => e.status === 429 && attempts[e.seq]!.start > firstSeen).length;
    const total429 = up.log.filter((e) => e.status === 429).length;
    expect(late429).toBeLessThanOrEqual(3);
    // Every other 429 is one of the burst: the upstream took (at least) 5 of it and refused the rest.
    expect(total429).toBeLessThanOrEqual(inFlight - 5 + late429);
    expect(up.log.filter((e) => e.status === 200)).toHaveLength(30);

    // Phase 2: the upstream is happy again. Successes shorten the spacing step
    // by step until calls go at the policy's pace alone.
    up.state.happy = true;
    const before = attempts.length;
    const spacingAtStart = pacer.stats(key)?.spacingMs ?? 0;
    expect(spacingAtStart).toBeGreaterThan(10);
    const phase2 = await Promise.all(Array.from({ length: 45 }, () => api(url).then((r) => r.status)));
    expect(phase2.every((s) => s === 200)).toBe(true);
    const starts = attempts.slice(before).map((a) => a.start);
    const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
    // Early on spaced by the pacer, at the end by the policy alone (10 ms, with a burst of 20 back).
    expect(gaps[0]!).toBeGreaterThanOrEqual(spacingAtStart / 2);
    const lastGaps = gaps.slice(-10);
    expect(lastGaps.reduce((a, b) => a + b, 0) / lastGaps.length).toBeLessThanOrEqual(10 + 5);
    expect(pacer.stats(key)).toBeUndefined();
    console.log(
      `phase 1: ${phase1Ms.toFixed(0)} ms, ${attempts.length - 45} attempts, ${total429} 429s (${inFlight} in flight at the first, ${late429} later); ` +
        `phase 2: spacing ${spacingAtStart.toFixed(1)} ms at start, first gaps ${gaps.slice(0, 3).map((g) => g.toFixed(1)).join(', ')} ms, last ${gaps.slice(-3).map((g) => g.toFixed(1)).join(', ')} ms`,
    );
  });

  it('without retry429, callers get the 429 responses as they are, and nothing throws', async () => {
    up.state.happy = false;
    // Let the upstream's window empty from the previous test.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const limiter = new Limiter({ policy: gcra({ limit: 100, period: '1s', burst: 10 }) });
    const api = limitedFetch((input, init) => fetch(input, { ...init, headers: { 'x-seq': '-1' } }), { limiter, pacer: new AdaptivePacer({ clock: () => performance.now() }) });
    const statuses = await Promise.all(Array.from({ length: 10 }, () => api(url).then(async (r) => (await r.arrayBuffer(), r.status))));
    expect(statuses.filter((s) => s === 200)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(5);
  });
});
