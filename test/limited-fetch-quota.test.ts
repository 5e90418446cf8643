// limitedFetch in one process: what a call used (cost), what the upstream's
// quota headers say (quota), the shape 'auto' learns, and what stats() and
// the metrics tell. The fleet's side (several processes, Redis) is
// test/fleet-upstream.test.ts.
import { describe, expect, it } from 'vitest';
import { ConfigError, Limiter, gcra, tokenBucket } from '../build/lib/src/index.js';
import { limitedFetch, type FetchFunction } from '../build/lib/src/http/limited-fetch.js';

/** A fetch answering 200 with `headers` (or what `answer` says for the nth call), counting its calls. */
function upstream(answer: (n: number) => { status?: number; headers?: Record<string, string>; body?: string }): FetchFunction & { calls: number } {
  const f = async () => {
    const a = answer(++f.calls);
    return new Response(a.body ?? 'ok', { status: a.status ?? 200, headers: a.headers });
  };
  f.calls = 0;
  return f;
}

/** An hour's bucket of 100: nothing comes back during a test. */
const hourOf100 = () => new Limiter({ policy: tokenBucket({ capacity: 100, period: '1h', mode: 'interval' }) });
const left = async (limiter: Limiter, key = 'k') => {
  const d = await limiter.peek(key);
  return d.allowed ? d.remaining + 1 : 0;
};

describe('limitedFetch cost: units charged after the answer', () => {
  it('by a header: a call that used 10 is charged 9 more (its admission took 1); 1 charges nothing more, 0 gives the unit back', async () => {
    const limiter = hourOf100();
    const used = ['10', '10', '1', '0', 'lots', '-3', '1e3', ''];
    const api = limitedFetch(upstream((n) => ({ headers: { 'x-tokens-used': used[n - 1]! } })), { limiter, key: 'k', cost: 'x-tokens-used' });
    const after: number[] = [];
    for (let i = 0; i < used.length; i++) {
      await (await api('https://llm.example/v1')).text();
      after.push(await left(limiter));
    }
    // 100 - 10 - 10 - 1 - 0 (refunded) - 1 - 1 - 1 - 1: unreadable counts charge nothing beyond admission.
    expect(after).toEqual([90, 80, 79, 79, 78, 77, 76, 75]);
  });

  it('by a function reading the body (a clone: the caller still reads it), charged when it resolves', async () => {
    const limiter = hourOf100();
    const api = limitedFetch(upstream(() => ({ body: JSON.stringify({ usage: { total_tokens: 25 } }) })), {
      limiter,
      key: 'k',
      cost: async (response) => ((await response.json()) as { usage: { total_tokens: number } }).usage.total_tokens,
    });
    const res = await api('https://llm.example/v1');
    expect(await res.json()).toEqual({ usage: { total_tokens: 25 } });
    await new Promise((r) => setTimeout(r, 10));
    expect(await left(limiter)).toBe(75);
    // A function that throws or rejects charges nothing and never fails the call.
    for (const cost of [() => { throw new Error('no'); }, async () => { throw new Error('no'); }, () => Number.NaN]) {
      const l = hourOf100();
      const res2 = await limitedFetch(upstream(() => ({})), { limiter: l, key: 'k', cost })('https://llm.example/v1');
      expect(res2.status).toBe(200);
      await new Promise((r) => setTimeout(r, 5));
      expect(await left(l)).toBe(99);
    }
  });

  it('is not charged for a 429 (the call was not processed)', async () => {
    const limiter = hourOf100();
    const api = limitedFetch(upstream(() => ({ status: 429, headers: { 'x-tokens-used': '50', 'retry-after': '0' } })), { limiter, key: 'k', cost: 'x-tokens-used' });
    expect((await api('https://llm.example/v1')).status).toBe(429);
    expect(await left(limiter)).toBe(99);
  });

  it('refuses a bad cost option, naming it', () => {
    const limiter = hourOf100();
    for (const cost of [5, 'bad header', '', {}, null]) {
      expect(() => limitedFetch(fetch, { limiter, cost: cost as never })).toThrow(ConfigError);
    }
    expect(() => limitedFetch(fetch, { limiter: { acquire: limiter.acquire.bind(limiter) }, cost: 'x' })).toThrow(/cost/);
  });
});

describe("limitedFetch quota: the upstream's counter lowers the key", () => {
  it("requests (the default): 40 said remaining brings 99 down to 40; a higher count never raises it, and a lower one than the limiter has changes nothing", async () => {
    const limiter = hourOf100();
    const remaining = ['40', '60', '39'];
    const api = limitedFetch(upstream((n) => ({ headers: { 'x-ratelimit-remaining': remaining[n - 1]! } })), { limiter, key: 'k' });
    const after: number[] = [];
    for (let i = 0; i < remaining.length; i++) {
      await api('https://api.example/');
      after.push(await left(limiter));
    }
    expect(after).toEqual([40, 39, 38]);
  });

  it("tokens: Anthropic's and OpenAI's token counts lower a limiter counting tokens; false follows none", async () => {
    const tokens = hourOf100();
    const headers = { 'anthropic-ratelimit-tokens-remaining': '30', 'x-ratelimit-remaining-tokens': '50', 'x-ratelimit-remaining-requests': '5' };
    await limitedFetch(upstream(() => ({ headers })), { limiter: tokens, key: 'k', quota: 'tokens' })('https://llm.example/');
    expect(await left(tokens)).toBe(30);
    const none = hourOf100();
    await limitedFetch(upstream(() => ({ headers })), { limiter: none, key: 'k', quota: false })('https://llm.example/');
    expect(await left(none)).toBe(99);
    expect(() => limitedFetch(fetch, { limiter: none, quota: 'calls' as never })).toThrow(ConfigError);
  });
});

describe("limitedFetch shape 'auto', one process", () => {
  const auto = () => new Limiter({ name: 'auto', policy: gcra({ limit: 1000, period: '1s' }) });
  const quota = { 'x-ratelimit-limit': '1000', 'x-ratelimit-remaining': '900', 'x-ratelimit-reset': '30' };

  it('moves to a quota after 5 accepted answers with quota headers, and back to pacing for good at a 429 while quota remains', async () => {
    const counted = new Map<string, number>();
    const metrics = { count: (name: string, v: number, a?: Record<string, string>) => counted.set(`${name}${a ? JSON.stringify(a) : ''}`, (counted.get(`${name}${a ? JSON.stringify(a) : ''}`) ?? 0) + v), record() {} };
    let refuse = false;
    const api = limitedFetch(upstream(() => (refuse ? { status: 429, headers: { ...quota, 'retry-after': '0' } } : { headers: quota })), {
      limiter: auto(),
      key: 'k',
      shape: 'auto',
      metrics,
    });
    const shapes: string[] = [];
    for (let i = 0; i < 6; i++) {
      await api('https://api.example/');
      shapes.push((await api.stats('k')).shape!.shape);
    }
    expect(shapes).toEqual(['pacing', 'pacing', 'pacing', 'pacing', 'quota', 'quota']);
    refuse = true;
    await api('https://api.example/');
    refuse = false;
    for (let i = 0; i < 10; i++) await api('https://api.example/');
    const stats = await api.stats('k');
    expect(stats.shape).toMatchObject({ shape: 'pacing', reason: expect.stringMatching(/^burst-intolerant/) });
    expect(stats.shared).toBe(false);
    expect(counted.get('cellgate.upstream.shape{"shape":"quota"}')).toBe(1);
    expect(counted.get('cellgate.upstream.shape{"shape":"pacing"}')).toBe(1);
    expect(counted.get('cellgate.upstream.answers{"kind":"accepted"}')).toBe(16);
    expect(counted.get('cellgate.upstream.answers{"kind":"refused"}')).toBe(1);
  });

  it('a 429 with the quota said spent is what a quota does: the shape stays', async () => {
    let spent = false;
    const api = limitedFetch(
      upstream(() => (spent ? { status: 429, headers: { ...quota, 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '0' } } : { headers: quota })),
      { limiter: auto(), key: 'k', shape: 'auto' },
    );
    for (let i = 0; i < 5; i++) await api('https://api.example/');
    spent = true;
    await api('https://api.example/');
    expect((await api.stats('k')).shape!.shape).toBe('quota');
  });

  it('needs a limiter with plans whose policy is one gcra or tokenBucket, and a known shape option', () => {
    expect(() => limitedFetch(fetch, { limiter: new Limiter({ policy: gcra({ limit: 1, period: '1s' }) }), shape: 'auto' })).toThrow(ConfigError);
    expect(() =>
      limitedFetch(fetch, { limiter: new Limiter({ name: 'two', policy: [gcra({ limit: 1, period: '1s' }), gcra({ limit: 10, period: '1m' })] }), shape: 'auto' }),
    ).toThrow(/shape/);
    expect(() => limitedFetch(fetch, { limiter: auto(), shape: 'smart' as never })).toThrow(ConfigError);
    // 'fixed' (the default) has no shape in stats.
  });
});
