// Smoke test of the built package under Deno, with no permissions at all:
// deno test --no-prompt test/runtime/deno
import { ConfigError, Limiter, concurrency, gcra } from 'cellgate';

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function assertEquals(actual: unknown, expected: unknown, what: string): void {
  if (!Object.is(actual, expected)) throw new Error(`${what}: expected ${String(expected)}, got ${String(actual)}`);
}

Deno.test('loads the package', () => {
  assertEquals(typeof Limiter, 'function', 'typeof Limiter');
  assertEquals(typeof gcra, 'function', 'typeof gcra');
});

Deno.test('limitSync paces gcra with an injected clock', () => {
  let t = 0;
  const limiter = new Limiter({ policy: gcra({ limit: 5, period: '1s' }), clock: () => t });
  assertEquals(limiter.limitSync('k').allowed, true, 'first allowed');
  const denied = limiter.limitSync('k');
  assertEquals(denied.allowed, false, 'second allowed');
  assertEquals(denied.retryAfterMs, 200, 'retryAfterMs');
  t = 200;
  assertEquals(limiter.limitSync('k').allowed, true, 'allowed at t=200');
});

Deno.test('a concurrency gate holds slots until released (and its renewal timer stops)', async () => {
  const limiter = new Limiter({ policy: concurrency({ limit: 1 }) });
  const permit = await limiter.acquire('k');
  assertEquals(permit.held, true, 'held');
  assertEquals(limiter.limitSync('k').allowed, false, 'second allowed');
  await permit[Symbol.asyncDispose]();
  assertEquals(permit.held, false, 'held after dispose');
  const next = limiter.limitSync('k');
  assertEquals(next.allowed, true, 'allowed after release');
  await next.release?.();
});

Deno.test('limit resolves a local Decision', async () => {
  const limiter = new Limiter({ policy: gcra({ limit: 5, period: '1s' }), clock: () => 0 });
  const d = await limiter.limit('k');
  assertEquals(d.allowed, true, 'allowed');
  assertEquals(d.source, 'local', 'source');
});

Deno.test('acquire really waits', async () => {
  const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }) });
  await limiter.acquire('fresh');
  const start = performance.now();
  const d = await limiter.acquire('fresh');
  const waited = performance.now() - start;
  assertEquals(d.allowed, true, 'allowed');
  assert(waited >= 90, `second acquire resolved after ${waited} ms, expected >= 90`);
});

Deno.test('ConfigError names the parameter', () => {
  let caught: unknown;
  try {
    gcra({ limit: 0, period: '1s' });
  } catch (e) {
    caught = e;
  }
  assert(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assertEquals(caught.parameter, 'limit', 'parameter');
});
