// Smoke test of the built package under plain Node, no loader:
// node --test test/runtime/node/
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, Limiter, gcra } from 'cellgate';

test('loads the package', () => {
  assert.equal(typeof Limiter, 'function');
  assert.equal(typeof gcra, 'function');
});

test('limitSync paces gcra with an injected clock', () => {
  let t = 0;
  const limiter = new Limiter({ policy: gcra({ limit: 5, period: '1s' }), clock: () => t });
  assert.equal(limiter.limitSync('k').allowed, true);
  const denied = limiter.limitSync('k');
  assert.equal(denied.allowed, false);
  assert.equal(denied.retryAfterMs, 200);
  t = 200;
  assert.equal(limiter.limitSync('k').allowed, true);
});

test('limit resolves a local Decision', async () => {
  const limiter = new Limiter({ policy: gcra({ limit: 5, period: '1s' }), clock: () => 0 });
  const d = await limiter.limit('k');
  assert.equal(d.allowed, true);
  assert.equal(d.source, 'local');
});

test('acquire really waits', async () => {
  const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }) });
  await limiter.acquire('fresh');
  const start = performance.now();
  const d = await limiter.acquire('fresh');
  const waited = performance.now() - start;
  assert.equal(d.allowed, true);
  assert.ok(waited >= 90, `second acquire resolved after ${waited} ms, expected >= 90`);
});

test('ConfigError names the parameter', () => {
  assert.throws(() => gcra({ limit: 0, period: '1s' }), (e) => e instanceof ConfigError && e.parameter === 'limit');
});
