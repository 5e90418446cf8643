// Priorities (issue #17, part 4): among one process's callers waiting on a
// key, higher goes first, with aging bounding how long a low priority is
// passed over; the Scheduler orders due executions waiting for its slots
// the same way. The store's bookings are never reordered, so the limit holds.
import { describe, expect, it } from 'vitest';
import { ArgumentError, ConfigError, Limiter, Scheduler, concurrency, gcra } from '../build/lib/src/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts acquires in the order given (a few ms apart), and answers the order and times they resolved in. */
async function race(limiter: Limiter, key: string, callers: { name: string; priority?: number; maxWaitMs?: number }[]) {
  const done: { name: string; at: number }[] = [];
  const t0 = performance.now();
  const all: Promise<unknown>[] = [];
  for (const c of callers) {
    const options = { ...(c.priority === undefined ? {} : { priority: c.priority }), ...(c.maxWaitMs === undefined ? {} : { maxWaitMs: c.maxWaitMs }) };
    all.push(
      limiter.acquire(key, options).then(async (p) => {
        done.push({ name: c.name, at: performance.now() - t0 });
        await p.release();
      }),
    );
    await sleep(2);
  }
  await Promise.all(all);
  return done;
}

describe('acquire on rate gates: booked moments handed out by priority', () => {
  it('a later, higher priority takes the earliest moment of the callers it outranks; the moments stay the store’s', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 50, period: '1s' }) }); // one every 20 ms
    const callers = [...Array.from({ length: 6 }, (_, i) => ({ name: `low${i}` })), { name: 'high', priority: 5 }, { name: 'mid', priority: 2 }];
    const done = await race(limiter, 'k', callers);
    // low0 went at once; the others were booked in order, then reassigned.
    expect(done.map((d) => d.name)).toEqual(['low0', 'high', 'mid', 'low1', 'low2', 'low3', 'low4', 'low5']);
    // The order changed, not the pace: the 8th of one every 20 ms goes no
    // sooner than 140 ms after the first (timers never fire early).
    expect(done[7]!.at).toBeGreaterThanOrEqual(135);
  });

  it('never moves a caller past its own maxWaitMs', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 50, period: '1s' }) });
    const done = await race(limiter, 'k', [{ name: 'first' }, { name: 'tight', maxWaitMs: 30 }, { name: 'loose' }, { name: 'high', priority: 9 }]);
    // 'tight' (booked at ~20 ms, bound 30 ms) cannot take the 60 ms moment: it keeps its own.
    expect(done.map((d) => d.name)).toEqual(['first', 'tight', 'high', 'loose']);
  });

  it('aging: a caller that has waited (q - p) x aging is passed over no more', async () => {
    const run = async (aging: '10ms' | '1s') => {
      const limiter = new Limiter({ policy: gcra({ limit: 2, period: '1s' }), aging }); // one every 500 ms
      const order: string[] = [];
      await limiter.acquire('k');
      const low = limiter.acquire('k').then(() => order.push('low'));
      await sleep(100);
      const high = limiter.acquire('k', { priority: 5 }).then(() => order.push('high'));
      await Promise.all([low, high]);
      return order.join(' ');
    };
    // Aged 100 ms at 10 ms a level, the low caller ranks above a fresh priority 5 (worth 50 ms).
    expect(await run('10ms')).toBe('low high');
    expect(await run('1s')).toBe('high low');
  });

  it('an aborted caller refunds its booking and leaves the others’ order', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 50, period: '1s' }) });
    await limiter.acquire('k');
    const ac = new AbortController();
    const order: string[] = [];
    const a = limiter.acquire('k', { signal: ac.signal }).then(() => order.push('a'), (e: unknown) => order.push(`a:${(e as Error).name}`));
    const b = limiter.acquire('k').then(() => order.push('b'));
    const h = limiter.acquire('k', { priority: 3, signal: ac.signal }).then(() => order.push('h'), () => order.push('h:aborted'));
    ac.abort();
    await Promise.all([a, b, h]);
    expect(order).toEqual(['a:AbortError', 'h:aborted', 'b']);
  });
});

describe('acquire on a concurrency gate: the first waiter by priority takes a freed slot', () => {
  it('embedded: woken by the release, highest first', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 1 }) });
    const held = await limiter.acquire('r');
    const order: string[] = [];
    const all = ['low0', 'low1', 'low2'].map((name) => limiter.acquire('r').then(async (p) => (order.push(name), await p.release())));
    await sleep(5);
    all.push(limiter.acquire('r', { priority: 5 }).then(async (p) => (order.push('high'), await p.release())));
    await sleep(5);
    await held.release();
    await Promise.all(all);
    expect(order).toEqual(['high', 'low0', 'low1', 'low2']);
  });
});

describe('the Scheduler: due executions waiting for a slot, by priority', () => {
  it('runs the highest priority next, coalesced requests at their highest, equal priorities in order', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 1000, period: '1s', burst: 1000 }) });
    const scheduler = new Scheduler({ limiter, concurrency: 1 });
    const ran: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const task = async (key: string) => {
      ran.push(key);
      if (key === 'busy') await gate;
    };
    const all = [scheduler.schedule('busy', task)];
    await sleep(5);
    for (const [key, priority] of [['a', 0], ['b', 0], ['c', 5], ['d', 1], ['e', 0]] as const) all.push(scheduler.schedule(key, task, { priority }));
    // Coalesced into e's pending execution: e now runs at priority 3.
    all.push(scheduler.schedule('e', task, { priority: 3 }));
    await sleep(5);
    release();
    await Promise.all(all);
    expect(ran).toEqual(['busy', 'c', 'e', 'd', 'a', 'b']);
    await scheduler.close();
  });
});

describe('bad input', () => {
  it('a bad priority is an ArgumentError naming it, and nothing is booked or scheduled', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 1, period: '1h' }) });
    for (const bad of [Number.NaN, Infinity, -Infinity, 2e6, '1', null, {}]) {
      await expect(limiter.acquire('k', { priority: bad as never })).rejects.toMatchObject({ name: 'ArgumentError', parameter: 'priority' });
    }
    const scheduler = new Scheduler({ limiter });
    for (const bad of [Number.NaN, 1e7, 'high']) {
      expect(() => scheduler.schedule('k', async () => {}, { priority: bad as never })).toThrow(ArgumentError);
    }
    // Nothing was booked by the refused calls: the one unit of the hour is still there.
    expect((await limiter.limit('k')).allowed).toBe(true);
    await scheduler.close();
  });

  it('a bad aging is a ConfigError naming it', () => {
    const policy = gcra({ limit: 1, period: '1s' });
    for (const bad of [0, -5, 'often', Number.NaN]) {
      expect(() => new Limiter({ policy, aging: bad as never })).toThrow(expect.objectContaining({ parameter: 'aging' }));
      expect(() => new Scheduler({ limiter: new Limiter({ policy }), aging: bad as never })).toThrow(ConfigError);
    }
  });
});
