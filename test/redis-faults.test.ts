// Redis failing under load: killed (-9) and restarted, frozen (SIGSTOP) and
// resumed. Calls must never reject, never wait much past the store's timeout,
// stay within the fallback's budget during the outage, and hand the outage's
// admissions back to Redis afterwards.
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { Limiter, gcra } from '../src/index.js';
import { RedisStore } from '../src/redis/index.js';
import { startRedis, type RedisServer } from './helpers/redis-process.js';

const TIMEOUT_MS = 100;
const MARGIN_MS = 60;
// 100 per second fleet-wide, 2 nodes: during an outage this node may admit one per 20 ms.
const policy = gcra({ limit: 100, period: '1s' });
const NODES = 2;
const FALLBACK_INTERVAL_MS = 20;

interface Call {
  at: number;
  ms: number;
  allowed: boolean;
  source: string;
}

let server: RedisServer | undefined;
let client: Redis | undefined;
let store: RedisStore | undefined;

afterEach(async () => {
  store?.close();
  client?.disconnect();
  await server?.stop();
  server = undefined;
});

/** Calls limit('k') every ~2 ms for `durationMs`, running `events` at their times. */
async function load(limiter: Limiter, durationMs: number, events: [number, () => void | Promise<void>][]): Promise<{ calls: Call[]; rejected: unknown[] }> {
  const calls: Call[] = [];
  const rejected: unknown[] = [];
  const start = performance.now();
  const pending: Promise<void>[] = [];
  const todo = [...events];
  while (performance.now() - start < durationMs) {
    const at = performance.now() - start;
    while (todo.length > 0 && todo[0]![0] <= at) await todo.shift()![1]();
    pending.push(
      limiter.limit('k').then(
        (d) => void calls.push({ at, ms: performance.now() - start - at, allowed: d.allowed, source: d.source }),
        (e: unknown) => void rejected.push(e),
      ),
    );
    await new Promise((r) => setTimeout(r, 2));
  }
  await Promise.all(pending);
  return { calls, rejected };
}

async function setup(): Promise<Limiter> {
  server = await startRedis();
  client = new Redis({ host: server.host, port: server.port, retryStrategy: () => 50 });
  client.on('error', () => {}); // connection errors are expected here; the store handles them
  store = new RedisStore({ client, prefix: 'fault:', timeoutMs: TIMEOUT_MS, probeIntervalMs: 100, fallback: { nodes: NODES } });
  await client.ping();
  return new Limiter({ policy, store });
}

function check(calls: Call[], rejected: unknown[]) {
  expect(rejected).toEqual([]);
  const slowest = Math.max(...calls.map((c) => c.ms));
  expect(slowest).toBeLessThanOrEqual(TIMEOUT_MS + MARGIN_MS);
  const fallback = calls.filter((c) => c.source === 'fallback');
  expect(fallback.length).toBeGreaterThan(0);
  const admitted = fallback.filter((c) => c.allowed);
  // Budget: this node's share of the rate over the time the fallback decided, plus its burst of 1.
  const span = fallback[fallback.length - 1]!.at - fallback[0]!.at;
  const budget = Math.floor(span / FALLBACK_INTERVAL_MS) + 1;
  expect(admitted.length).toBeLessThanOrEqual(budget);
  // Strict decisions before and after.
  expect(calls[0]!.source).not.toBe('fallback');
  expect(calls[calls.length - 1]!.source).not.toBe('fallback');
  console.log(`fallback decided for ${span.toFixed(0)} ms: ${admitted.length} admitted (budget ${budget}), slowest call ${slowest.toFixed(1)} ms`);
  return { admitted: admitted.length, slowest };
}

async function untilClosed(s: RedisStore, ms: number) {
  const deadline = performance.now() + ms;
  while (s.stats().state !== 'closed' && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

describe('Redis faults under load', () => {
  it('kill -9 and restart: no rejection, bounded waits, outage within budget, reconciled after', async () => {
    const limiter = await setup();
    const opened: number[] = [];
    store!.breaker.addEventListener('open', () => opened.push(performance.now()));
    const { calls, rejected } = await load(limiter, 2600, [
      [600, () => server!.kill('SIGKILL')],
      [1600, () => server!.restart()],
    ]);
    const { admitted } = check(calls, rejected);
    expect(opened.length).toBeGreaterThanOrEqual(1);
    await untilClosed(store!, 2000);
    const stats = store!.stats();
    expect(stats.state).toBe('closed');
    // Redis lost everything with the process (no persistence): what is in it
    // now for 'k' includes what the fallback admitted, charged back.
    await new Promise((r) => setTimeout(r, 50));
    expect(stats.decisions.reconciled).toBe(admitted);
  }, 20_000);

  it('SIGSTOP for 2 s, then SIGCONT: the same guarantees', async () => {
    const limiter = await setup();
    let detectedAfter = -1;
    let stoppedAt = 0;
    store!.breaker.addEventListener('open', () => {
      if (detectedAfter < 0) detectedAfter = performance.now() - stoppedAt;
    });
    const { calls, rejected } = await load(limiter, 3200, [
      [
        500,
        () => {
          stoppedAt = performance.now();
          server!.kill('SIGSTOP');
        },
      ],
      [2500, () => server!.kill('SIGCONT')],
    ]);
    const { admitted } = check(calls, rejected);
    // Detected within the timeout (plus the load loop's own step).
    expect(detectedAfter).toBeGreaterThan(0);
    expect(detectedAfter).toBeLessThanOrEqual(TIMEOUT_MS + MARGIN_MS);
    console.log(`SIGSTOP detected after ${detectedAfter.toFixed(1)} ms`);
    await untilClosed(store!, 2000);
    await new Promise((r) => setTimeout(r, 50));
    expect(store!.stats().decisions.reconciled).toBe(admitted);
    // The charge reached Redis: its state for 'k' books at least the outage's admissions.
    const keys = await client!.keys('fault:*');
    expect(keys.length).toBe(1);
  }, 20_000);
});
