// Scheduler: per-resource scheduling admitted by a Limiter. Work is postponed,
// never dropped: on a virtual clock (vitest fake timers drive both the
// limiter's clock and the scheduler's timers), then for real through Redis
// with two OS processes sharing one limit per resource.
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffMs, DEFAULT_RETRY, retryPolicy } from '../build/lib/src/scheduler/backoff.js';
import { ArgumentError, ConfigError, Limiter, gcra, linearWindow } from '../build/lib/src/index.js';
import { SchedulerClosedError } from '../build/lib/src/errors.js';
import type { SchedulerTask } from '../build/lib/src/scheduler/execution.js';
import { DEFAULT_CONCURRENCY } from '../build/lib/src/scheduler/options.js';
import { Scheduler } from '../build/lib/src/scheduler/scheduler.js';
import { runPods } from '../support/pods.js';
import { useRedis } from './helpers/use-redis.js';

const clock = () => Date.now();
/** 2 reconciliations of a resource within 3 s, as in the operator frameworks. */
const reconcileLimit = () => new Limiter({ policy: linearWindow({ limit: 2, within: '3s' }), clock });
/** A limit that never holds anything back in these tests. */
const generous = () => new Limiter({ policy: gcra({ limit: 1000, period: '1s' }), clock });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Records when each key's executions start (virtual ms). */
function recorder() {
  const runs: Record<string, number[]> = {};
  const task: SchedulerTask = (key) => {
    (runs[key] ??= []).push(Date.now());
    return key;
  };
  return { runs, task };
}

describe('Scheduler on a virtual clock', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs two reconciliations of a resource at once, the third at the moment the limit allows, other resources unaffected', async () => {
    const scheduler = new Scheduler({ limiter: reconcileLimit(), clock });
    const { runs, task } = recorder();
    expect(await scheduler.schedule('deployment/a', task)).toMatchObject({ key: 'deployment/a', startedAt: 0, attempts: 1, value: 'deployment/a' });
    await vi.advanceTimersByTimeAsync(1000);
    expect((await scheduler.schedule('deployment/a', task)).startedAt).toBe(1000);
    await vi.advanceTimersByTimeAsync(500);
    const third = scheduler.schedule('deployment/a', task);
    const other = scheduler.schedule('deployment/b', task);
    expect((await other).startedAt).toBe(1500);
    await vi.advanceTimersByTimeAsync(1499);
    expect(runs).toEqual({ 'deployment/a': [0, 1000], 'deployment/b': [1500] });
    await vi.advanceTimersByTimeAsync(1);
    expect((await third).startedAt).toBe(3000);
    expect(runs).toEqual({ 'deployment/a': [0, 1000, 3000], 'deployment/b': [1500] });
    // Idle: no timer is left to keep a process alive.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('waits for delayMs, then for the limit: max(requested time, allowed time)', async () => {
    const scheduler = new Scheduler({ limiter: reconcileLimit(), clock });
    const { runs, task } = recorder();
    await scheduler.schedule('r', task);
    await scheduler.schedule('r', task);
    // Asks for 1 s from now; the limit allows 3 s: the later wins.
    const limited = scheduler.schedule('r', task, { delayMs: 1000 });
    // Asks for 4 s from now on a fresh resource: the delay wins.
    const delayed = scheduler.schedule('s', task, { delayMs: 4000 });
    await vi.advanceTimersByTimeAsync(5000);
    expect((await limited).startedAt).toBe(3000);
    expect((await delayed).startedAt).toBe(4000);
    expect(runs).toEqual({ r: [0, 0, 3000], s: [4000] });
  });

  it('pushes a retry whose backoff falls inside the limit to the moment the limit allows, never dropping it', async () => {
    const scheduler = new Scheduler({ limiter: reconcileLimit(), clock, retry: { attempts: 3, baseMs: 500, jitter: 0 } });
    const starts: number[] = [];
    const done = scheduler.schedule('job', () => {
      starts.push(Date.now());
      if (starts.length < 3) throw new Error('conflict');
      return 'ok';
    });
    await vi.advanceTimersByTimeAsync(5000);
    // Fails at 0 (backoff 500), fails at 500 (backoff 1000: wants 1500), but
    // the window holding 0 and 500 is full until 3000.
    expect(starts).toEqual([0, 500, 3000]);
    expect(await done).toMatchObject({ attempts: 3, startedAt: 3000, value: 'ok' });
  });

  it('reports the last failure by rejecting and through onError, with no unhandled rejection when nobody awaits', async () => {
    const reported: [string, unknown][] = [];
    const scheduler = new Scheduler({
      limiter: generous(),
      clock,
      retry: { attempts: 2, baseMs: 100, jitter: 0 },
      onError: (error, key) => reported.push([key, error]),
    });
    const boom = new Error('boom');
    let calls = 0;
    const failing: SchedulerTask = async () => {
      calls++;
      throw boom;
    };
    // Not awaited: it must not surface as an unhandled rejection (vitest fails the run if it does).
    void scheduler.schedule('unwatched', failing);
    const watched = scheduler.schedule('watched', failing, { retry: { attempts: 3 } }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await watched).toBe(boom);
    expect(calls).toBe(2 + 3);
    expect(reported).toEqual([
      ['unwatched', boom],
      ['watched', boom],
    ]);
  });

  it('coalesces requests for a pending execution: one execution, the latest task, at the earliest requested time, every promise settled', async () => {
    const scheduler = new Scheduler({ limiter: reconcileLimit(), clock });
    const ran: string[] = [];
    const task = (label: string): SchedulerTask => () => {
      ran.push(`${label}@${Date.now()}`);
      return label;
    };
    const waiting = [
      scheduler.schedule('k', task('first'), { delayMs: 1000 }),
      scheduler.schedule('k', task('second'), { delayMs: 500 }),
      scheduler.schedule('k', task('third'), { delayMs: 800 }),
    ];
    await vi.advanceTimersByTimeAsync(2000);
    expect(ran).toEqual(['third@500']);
    const [a, b, c] = await Promise.all(waiting);
    expect(a).toMatchObject({ value: 'third', startedAt: 500, attempts: 1 });
    expect(b).toBe(a);
    expect(c).toBe(a);

    // Likewise while it waits for the limiter: 'k' ran at 500; a second run at
    // 2000 fills the window, so the next one is booked for 3500.
    await scheduler.schedule('k', task('fill'));
    const booked = [scheduler.schedule('k', task('late-1')), scheduler.schedule('k', task('late-2'))];
    await vi.advanceTimersByTimeAsync(500);
    booked.push(scheduler.schedule('k', task('late-3')));
    await vi.advanceTimersByTimeAsync(5000);
    expect(ran).toEqual(['third@500', 'fill@2000', 'late-3@3500']);
    const results = await Promise.all(booked);
    expect(results.every((r) => r === results[0] && r.value === 'late-3')).toBe(true);
  });

  it('runs at most one execution per key at a time; a request during a run queues one follow-up', async () => {
    const scheduler = new Scheduler({ limiter: generous(), clock });
    let running = 0;
    let most = 0;
    const starts: string[] = [];
    const task = (label: string): SchedulerTask => async () => {
      running++;
      most = Math.max(most, running);
      starts.push(`${label}@${Date.now()}`);
      await sleep(1000);
      running--;
      return label;
    };
    const a = scheduler.schedule('k', task('a'));
    await vi.advanceTimersByTimeAsync(100);
    const b = scheduler.schedule('k', task('b'));
    await vi.advanceTimersByTimeAsync(100);
    const c = scheduler.schedule('k', task('c'));
    await vi.advanceTimersByTimeAsync(3000);
    expect(starts).toEqual(['a@0', 'c@1000']);
    expect(most).toBe(1);
    expect((await a).value).toBe('a');
    const [rb, rc] = await Promise.all([b, c]);
    expect(rb).toBe(rc);
    expect(rc).toMatchObject({ value: 'c', startedAt: 1000 });
  });

  it('lets a newer request supersede the retry of a failed execution, covering the older request', async () => {
    const scheduler = new Scheduler({ limiter: generous(), clock, retry: { attempts: 5, baseMs: 10_000, jitter: 0 } });
    const starts: string[] = [];
    const failing: SchedulerTask = async () => {
      starts.push(`old@${Date.now()}`);
      await sleep(500);
      throw new Error('stale');
    };
    const old = scheduler.schedule('k', failing);
    await vi.advanceTimersByTimeAsync(100);
    const newer = scheduler.schedule('k', () => {
      starts.push(`new@${Date.now()}`);
      return 'fresh';
    });
    await vi.advanceTimersByTimeAsync(1000);
    // The newer task runs as soon as the failed one ends, not after the 10 s backoff, and only once.
    expect(starts).toEqual(['old@0', 'new@500']);
    expect(await old).toBe(await newer);
    expect(await old).toMatchObject({ value: 'fresh', startedAt: 500 });
  });

  it('runs at most `concurrency` executions at once; a due key waits for a slot, unbooked, and runs when one frees', async () => {
    const limiter = reconcileLimit();
    const scheduler = new Scheduler({ limiter, clock, concurrency: 2 });
    let running = 0;
    let most = 0;
    const starts: Record<string, number> = {};
    const task: SchedulerTask = async (key) => {
      running++;
      most = Math.max(most, running);
      starts[key] = Date.now();
      await sleep(1000);
      running--;
    };
    const all = ['a', 'b', 'c', 'd', 'e'].map((k) => scheduler.schedule(k, task));
    await vi.advanceTimersByTimeAsync(500);
    // 'c' to 'e' are due but wait for a slot without holding a booking: the limiter has not seen them.
    expect(await limiter.peek('e')).toEqual(await limiter.peek('never-seen'));
    await vi.advanceTimersByTimeAsync(5000);
    await Promise.all(all);
    expect(starts).toEqual({ a: 0, b: 0, c: 1000, d: 1000, e: 2000 });
    expect(most).toBe(2);
  });

  it('runs at most DEFAULT_CONCURRENCY executions at once when concurrency is left out', async () => {
    const scheduler = new Scheduler({ limiter: generous(), clock });
    let running = 0;
    let most = 0;
    const task: SchedulerTask = async () => {
      running++;
      most = Math.max(most, running);
      await sleep(1000);
      running--;
    };
    const all = Array.from({ length: 3 * DEFAULT_CONCURRENCY }, (_, i) => scheduler.schedule(`k${i}`, task));
    await vi.advanceTimersByTimeAsync(5000);
    expect((await Promise.all(all)).map((r) => r.startedAt)).toEqual(Array.from({ length: 3 * DEFAULT_CONCURRENCY }, (_, i) => 1000 * Math.floor(i / DEFAULT_CONCURRENCY)));
    expect(most).toBe(DEFAULT_CONCURRENCY);
  });

  it('retries as DEFAULT_RETRY documents when no retry is given: 5 attempts, backoffs of half to all of 1, 2, 4 and 8 s', async () => {
    const scheduler = new Scheduler({ limiter: generous(), clock });
    const starts: number[] = [];
    const failed = scheduler
      .schedule('k', () => {
        starts.push(Date.now());
        throw new Error('down');
      })
      .catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(await failed).toMatchObject({ message: 'down' });
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
    expect(gaps).toHaveLength(4);
    for (const [i, gap] of gaps.entries()) {
      expect(gap, `backoff ${i + 1}`).toBeGreaterThan(500 * 2 ** i);
      expect(gap, `backoff ${i + 1}`).toBeLessThanOrEqual(1000 * 2 ** i);
    }
  });

  it('gives back a booking whose moment comes while every slot is busy, and books again when a slot frees', async () => {
    const limiter = reconcileLimit();
    const scheduler = new Scheduler({ limiter, clock, concurrency: 1 });
    const starts: string[] = [];
    const task = (ms: number): SchedulerTask => async (key) => {
      starts.push(`${key}@${Date.now()}`);
      if (ms > 0) await sleep(ms);
    };
    await scheduler.schedule('x', task(0));
    await scheduler.schedule('x', task(0));
    // 'x' is booked for 3000; 'y' takes the only slot from 1000 to 5000.
    const x = scheduler.schedule('x', task(0));
    await vi.advanceTimersByTimeAsync(1000);
    const y = scheduler.schedule('y', task(4000));
    await vi.advanceTimersByTimeAsync(2100);
    // At 3000 the slot was busy: the booking was refunded (the new window holds nothing).
    expect(await limiter.peek('x')).toMatchObject({ allowed: true, remaining: 1 });
    await vi.advanceTimersByTimeAsync(3000);
    await Promise.all([x, y]);
    expect(starts).toEqual(['x@0', 'x@0', 'y@1000', 'x@5000']);
  });

  it('sleeps delays longer than a timer can hold in pieces', async () => {
    const scheduler = new Scheduler({ limiter: generous(), clock });
    const { runs, task } = recorder();
    const day = 86_400_000;
    const done = scheduler.schedule('monthly', task, { delayMs: 30 * day });
    await vi.advanceTimersByTimeAsync(29 * day);
    expect(runs).toEqual({});
    await vi.advanceTimersByTimeAsync(day);
    expect((await done).startedAt).toBe(30 * day);
  });

  it('close({ drain: true }) runs everything pending, refuses new work, and leaves no timer', async () => {
    const scheduler = new Scheduler({ limiter: reconcileLimit(), clock });
    const { runs, task } = recorder();
    await scheduler.schedule('a', task);
    await scheduler.schedule('a', task);
    const booked = scheduler.schedule('a', task); // the limit allows it at 3000
    const delayed = scheduler.schedule('b', task, { delayMs: 2000 });
    let closedAt = -1;
    const closing = scheduler.close({ drain: true }).then(() => (closedAt = Date.now()));
    const late = await scheduler.schedule('c', task).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(SchedulerClosedError);
    expect(late).toMatchObject({ key: 'c' });
    await vi.advanceTimersByTimeAsync(2999);
    expect(closedAt).toBe(-1);
    await vi.advanceTimersByTimeAsync(1);
    await closing;
    expect(closedAt).toBe(3000);
    expect((await booked).startedAt).toBe(3000);
    expect((await delayed).startedAt).toBe(2000);
    expect(runs).toEqual({ a: [0, 0, 3000], b: [2000] });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('close({ drain: false }) cancels pending work with SchedulerClosedError, refunds its bookings, aborts and awaits running work', async () => {
    const limiter = reconcileLimit();
    const scheduler = new Scheduler({ limiter, clock });
    const { runs, task } = recorder();
    await scheduler.schedule('a', task);
    await scheduler.schedule('a', task);
    const booked = scheduler.schedule('a', task).catch((e: unknown) => e); // booked for 3000
    const delayed = scheduler.schedule('b', task, { delayMs: 5000 }).catch((e: unknown) => e);
    let signalReason: unknown;
    let settledAt = -1;
    const running = scheduler
      .schedule('c', (_key, signal) => {
        return new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            signalReason = signal.reason;
            // Takes 50 ms to stop: close must wait for it.
            setTimeout(() => {
              settledAt = Date.now();
              reject(new Error('stopped'));
            }, 50);
          });
        });
      })
      .catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(100);
    const followUp = scheduler.schedule('c', task).catch((e: unknown) => e); // queued behind the running one
    expect(await limiter.peek('a')).toMatchObject({ allowed: false, retryAfterMs: 2900 });

    let closed = false;
    const closing = scheduler.close({ drain: false }).then(() => (closed = true));
    for (const cancelled of [await booked, await delayed, await followUp]) expect(cancelled).toBeInstanceOf(SchedulerClosedError);
    expect(signalReason).toBeInstanceOf(SchedulerClosedError);
    await vi.advanceTimersByTimeAsync(49);
    expect(closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await closing;
    expect(settledAt).toBe(150);
    const aborted = await running;
    expect(aborted).toBeInstanceOf(SchedulerClosedError);
    expect((aborted as Error).cause).toMatchObject({ message: 'stopped' });
    // The window of the two runs stays full until 3000; the booking for 3000
    // was given back, so that window starts empty (peek takes 1 of 2).
    expect(await limiter.peek('a')).toMatchObject({ allowed: false, retryAfterMs: 2850 });
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(2850);
    expect(await limiter.peek('a')).toMatchObject({ allowed: true, remaining: 1 });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(runs).toEqual({ a: [0, 0] });
    await expect(scheduler.schedule('a', task)).rejects.toBeInstanceOf(SchedulerClosedError);
  });

  it('close({ drain: false }) refunds a booking still being made when it is called', async () => {
    const limiter = reconcileLimit();
    const scheduler = new Scheduler({ limiter, clock });
    const { runs, task } = recorder();
    await scheduler.schedule('a', task);
    await scheduler.schedule('a', task);
    // Due now: the limiter is asked at once and answers after close was called.
    const booking = scheduler.schedule('a', task).catch((e: unknown) => e);
    await scheduler.close({ drain: false });
    expect(await booking).toBeInstanceOf(SchedulerClosedError);
    // Two runs fill the window until 3000; the refunded booking leaves the next one empty.
    expect(await limiter.peek('a')).toMatchObject({ allowed: false });
    await vi.advanceTimersByTimeAsync(3000);
    expect(await limiter.peek('a')).toMatchObject({ allowed: true, remaining: 1 });
    await vi.advanceTimersByTimeAsync(2000);
    expect(runs).toEqual({ a: [0, 0] });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a close without drain during a draining close cancels what the drain waits for', async () => {
    const scheduler = new Scheduler({ limiter: generous(), clock });
    const { runs, task } = recorder();
    const later = scheduler.schedule('k', task, { delayMs: 60_000 }).catch((e: unknown) => e);
    const draining = scheduler.close();
    await vi.advanceTimersByTimeAsync(1000);
    await Promise.all([draining, scheduler.close({ drain: false })]);
    expect(await later).toBeInstanceOf(SchedulerClosedError);
    expect(runs).toEqual({});
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects bad options and arguments with typed errors naming the parameter, changing nothing', async () => {
    let reserves = 0;
    const limiter = generous();
    const counting = { reserve: (...a: Parameters<Limiter['reserve']>) => (reserves++, limiter.reserve(...a)), refund: limiter.refund.bind(limiter) };
    const task: SchedulerTask = () => {};
    const configCases: [unknown, string][] = [
      [undefined, 'new Scheduler() options'],
      [null, 'new Scheduler() options'],
      [{}, 'limiter'],
      [{ limiter: {} }, 'limiter'],
      [{ limiter, concurrency: 0 }, 'concurrency'],
      [{ limiter, concurrency: 1.5 }, 'concurrency'],
      [{ limiter, concurrency: NaN }, 'concurrency'],
      [{ limiter, concurrency: '4' }, 'concurrency'],
      [{ limiter, retry: 3 }, 'retry'],
      [{ limiter, retry: { attempts: 0 } }, 'retry.attempts'],
      [{ limiter, retry: { attempts: 2.5 } }, 'retry.attempts'],
      [{ limiter, retry: { baseMs: -1 } }, 'retry.baseMs'],
      [{ limiter, retry: { baseMs: Infinity } }, 'retry.baseMs'],
      [{ limiter, retry: { baseMs: 100, maxMs: 50 } }, 'retry.maxMs'],
      [{ limiter, retry: { jitter: 1.5 } }, 'retry.jitter'],
      [{ limiter, retry: { jitter: NaN } }, 'retry.jitter'],
      [{ limiter, clock: 5 }, 'clock'],
      [{ limiter, timers: { setTimeout } }, 'timers'],
      [{ limiter, onError: 'log' }, 'onError'],
    ];
    for (const [options, parameter] of configCases) {
      const error = (() => {
        try {
          new Scheduler(options as never);
        } catch (e) {
          return e;
        }
      })();
      expect(error, parameter).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).parameter).toBe(parameter);
    }

    const scheduler = new Scheduler({ limiter: counting, clock });
    const argumentCases: [() => unknown, string][] = [
      [() => scheduler.schedule('', task), 'key'],
      [() => scheduler.schedule(42 as never, task), 'key'],
      [() => scheduler.schedule('x'.repeat(513), task), 'key'],
      [() => scheduler.schedule('k', 'task' as never), 'task'],
      [() => scheduler.schedule('k', task, null as never), 'options'],
      [() => scheduler.schedule('k', task, { delayMs: -1 }), 'delayMs'],
      [() => scheduler.schedule('k', task, { delayMs: NaN }), 'delayMs'],
      [() => scheduler.schedule('k', task, { delayMs: Infinity }), 'delayMs'],
      [() => scheduler.schedule('k', task, { delayMs: 'soon' as never }), 'delayMs'],
      [() => scheduler.schedule('k', task, { retry: { attempts: -1 } }), 'retry.attempts'],
      [() => scheduler.close({ drain: 'yes' as never }), 'drain'],
      [() => scheduler.close(false as never), 'options'],
    ];
    for (const [call, parameter] of argumentCases) {
      expect(call, parameter).toThrow(ArgumentError);
      try {
        call();
      } catch (e) {
        expect((e as ArgumentError).parameter).toBe(parameter);
      }
    }
    // Nothing was scheduled, nothing booked, no timer armed, and the bad close calls did not close it.
    expect(reserves).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(await scheduler.schedule('k', task)).toMatchObject({ startedAt: 0 });
    expect(reserves).toBe(1);
  });

  it('accepts injected timers', async () => {
    // A hand-driven timer queue instead of the (faked) globals.
    const queue: { at: number; fn: () => void }[] = [];
    const timers = {
      setTimeout: (fn: () => void, ms: number) => {
        const t = { at: Date.now() + ms, fn };
        queue.push(t);
        return t;
      },
      clearTimeout: (t: unknown) => void queue.splice(queue.indexOf(t as never), 1),
    };
    const scheduler = new Scheduler({ limiter: reconcileLimit(), clock, timers });
    const { runs, task } = recorder();
    await scheduler.schedule('a', task);
    await scheduler.schedule('a', task);
    const third = scheduler.schedule('a', task);
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(0); // the globals were not used
    expect(queue.map((t) => t.at)).toEqual([3000]);
    vi.setSystemTime(3000);
    queue.shift()!.fn();
    expect((await third).startedAt).toBe(3000);
    expect(runs).toEqual({ a: [0, 0, 3000] });
  });
});

describe('backoff', () => {
  it('doubles from baseMs up to maxMs, with the jitter fraction drawn at random', () => {
    const policy = retryPolicy({ attempts: 10, baseMs: 100, maxMs: 1000, jitter: 0 });
    expect([1, 2, 3, 4, 5, 100].map((n) => backoffMs(policy, n))).toEqual([100, 200, 400, 800, 1000, 1000]);
    const jittered = retryPolicy({ jitter: 0.5 }, policy);
    expect(backoffMs(jittered, 3, () => 0)).toBe(400);
    expect(backoffMs(jittered, 3, () => 0.999999)).toBeCloseTo(200, 3);
    for (let i = 0; i < 100; i++) {
      const d = backoffMs(jittered, 2);
      expect(d).toBeGreaterThan(100);
      expect(d).toBeLessThanOrEqual(200);
    }
  });

  it('inherits what is left out', () => {
    expect(retryPolicy(undefined)).toBe(DEFAULT_RETRY);
    expect(retryPolicy({ attempts: Infinity })).toEqual({ ...DEFAULT_RETRY, attempts: Infinity });
    // A base above the inherited cap raises the cap instead of failing on a value not written.
    expect(retryPolicy({ baseMs: 120_000 })).toMatchObject({ baseMs: 120_000, maxMs: 120_000 });
  });
});

describe('Scheduler through Redis, two processes sharing one limit per resource', () => {
  const db = useRedis();
  const worker = fileURLToPath(new URL('./fixtures/scheduler-worker.mjs', import.meta.url));

  it('never runs a resource more than twice within a second across both, and runs every execution', async () => {
    const keys = ['deployment/a', 'deployment/b', 'deployment/c'];
    const rounds = 3;
    const pods = await runPods(worker, [0, 1].map(() => [String(db.server.port), keys.join(','), String(rounds)]), 15_000);
    const results = (await Promise.all(pods.map((p) => p.result))) as { runs: Record<string, number[]>; resolved: number; rejected: number }[];
    for (const r of results) {
      expect(r).toMatchObject({ resolved: keys.length * rounds, rejected: 0 });
      for (const key of keys) expect(r.runs[key]).toHaveLength(rounds);
    }
    for (const key of keys) {
      const times = results.flatMap((r) => r.runs[key]!).sort((a, b) => a - b);
      // None dropped: 2 processes x 3 rounds.
      expect(times).toHaveLength(2 * rounds);
      // At most 2 in any 1 s window <=> every third execution is >= 1 s after the
      // first of them. Start times are taken a little after the booked moments
      // (timer and event-loop latency), so allow some of that; a scheduler that
      // ignored the limit would run all six within a few ms.
      for (let i = 2; i < times.length; i++) expect(times[i]! - times[i - 2]!, `${key}: ${times.join(', ')}`).toBeGreaterThan(1000 - 100);
    }
  }, 20_000);
});
