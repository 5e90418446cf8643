import { describe, expect, it } from 'vitest';
import { Limiter, gcra, systemClock, taskClock } from '../build/lib/src/index.js';

describe('clocks', () => {
  it('systemClock is epoch milliseconds with sub-millisecond precision, never stepping back', () => {
    const a = systemClock();
    expect(Math.abs(a - Date.now())).toBeLessThan(1000);
    let prev = a;
    let fractional = false;
    for (let i = 0; i < 1000; i++) {
      const t = systemClock();
      expect(t).toBeGreaterThanOrEqual(prev);
      if (t !== Math.floor(t)) fractional = true;
      prev = t;
    }
    expect(fractional).toBe(true);
  });

  it('taskClock shares one reading within a task and reads afresh after an await', async () => {
    await Promise.resolve();
    const t0 = taskClock();
    expect(taskClock()).toBe(t0);
    const spinUntil = systemClock() + 2;
    while (systemClock() < spinUntil);
    await Promise.resolve();
    expect(taskClock()).toBeGreaterThan(t0);
  });

  it('taskClock still moves inside a synchronous spin loop', () => {
    const t0 = taskClock();
    const deadline = systemClock() + 5;
    let t = t0;
    // Bounded: 10M reads of a clock that refreshes every 64 reads takes far less than a second.
    for (let i = 0; i < 10_000_000 && t === t0; i++) {
      if (systemClock() < deadline) continue;
      t = taskClock();
    }
    expect(t).toBeGreaterThan(t0);
  });

  it('a limiter on the default clock admits again once real time has passed', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 100, period: '1s' }) });
    expect(limiter.limitSync('k').allowed).toBe(true);
    expect(limiter.limitSync('k').allowed).toBe(false);
    await new Promise((r) => setTimeout(r, 15));
    expect(limiter.limitSync('k').allowed).toBe(true);
  });
});
