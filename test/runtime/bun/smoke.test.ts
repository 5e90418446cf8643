// Smoke test of the built package under Bun: bun test test/runtime/bun
import { describe, expect, test } from 'bun:test';
import { ConfigError, Limiter, concurrency, gcra } from 'cellgate';

describe('cellgate on Bun', () => {
  test('loads the package', () => {
    expect(typeof Limiter).toBe('function');
    expect(typeof gcra).toBe('function');
  });

  test('limitSync paces gcra with an injected clock', () => {
    let t = 0;
    const limiter = new Limiter({ policy: gcra({ limit: 5, period: '1s' }), clock: () => t });
    expect(limiter.limitSync('k').allowed).toBe(true);
    const denied = limiter.limitSync('k');
    expect(denied.allowed).toBe(false);
    expect(denied.retryAfterMs).toBe(200);
    t = 200;
    expect(limiter.limitSync('k').allowed).toBe(true);
  });

  test('limit resolves a local Decision', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 5, period: '1s' }), clock: () => 0 });
    const d = await limiter.limit('k');
    expect(d.allowed).toBe(true);
    expect(d.source).toBe('local');
  });

  test('acquire really waits', async () => {
    const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }) });
    await limiter.acquire('fresh');
    const start = performance.now();
    const d = await limiter.acquire('fresh');
    const waited = performance.now() - start;
    expect(d.allowed).toBe(true);
    expect(waited).toBeGreaterThanOrEqual(90);
  });

  test('a concurrency gate holds slots until released, await using included', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 1 }) });
    {
      await using permit = await limiter.acquire('k');
      expect(permit.held).toBe(true);
      expect(limiter.limitSync('k').allowed).toBe(false);
    }
    const next = limiter.limitSync('k');
    expect(next.allowed).toBe(true);
    await next.release?.();
  });

  test('ConfigError names the parameter', () => {
    let caught: unknown;
    try {
      gcra({ limit: 0, period: '1s' });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).parameter).toBe('limit');
  });
});
