// The breaker on its own: per-shard state, one event per transition, one
// probe timer for all open shards, and nothing scheduled after stop().
import { afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { CircuitBreaker, TIMEOUTS_TO_OPEN, withTimeout, type BreakerCloseDetail, type BreakerOpenDetail } from '../build/lib/src/stores/redis/circuit-breaker.js';
import { startRedis } from '../build/lib/src/cli/redis-server.js';
import { RedisTimeoutError } from '../build/lib/src/errors.js';

const breakers: CircuitBreaker[] = [];
afterEach(() => {
  for (const b of breakers.splice(0)) b.stop();
});

/** A breaker whose probe answers for the shards in `up`, recording its events. */
function make(shards: number, up: Set<number>) {
  const probed: number[] = [];
  const breaker = new CircuitBreaker(
    shards,
    async (shard) => {
      probed.push(shard);
      if (!up.has(shard)) throw new Error(`shard ${shard} down`);
    },
    10,
    50,
  );
  breakers.push(breaker);
  const opened: BreakerOpenDetail[] = [];
  const closed: BreakerCloseDetail[] = [];
  breaker.addEventListener('open', (e) => opened.push((e as CustomEvent<BreakerOpenDetail>).detail));
  breaker.addEventListener('close', (e) => closed.push((e as CustomEvent<BreakerCloseDetail>).detail));
  return { breaker, probed, opened, closed };
}

const until = async (check: () => boolean) => {
  const deadline = Date.now() + 2000;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
};

describe('CircuitBreaker', () => {
  it('opens one shard at a time, and only that shard', () => {
    const { breaker, opened } = make(8, new Set());
    const error = new Error('timeout');
    breaker.fail(3, error);
    breaker.fail(3, error); // already open: no second event
    expect(breaker.isOpen(3)).toBe(true);
    expect(breaker.isOpen(2)).toBe(false);
    expect(breaker.state).toBe('open');
    expect(breaker.openShards).toBe(1);
    expect(opened).toEqual([{ shards: [3], error }]);
  });

  it('opens every shard still closed on fail(-1), in one event', () => {
    const { breaker, opened } = make(4, new Set());
    breaker.fail(1, 'a');
    breaker.fail(-1, 'b');
    expect(opened).toEqual([
      { shards: [1], error: 'a' },
      { shards: [0, 2, 3], error: 'b' },
    ]);
    expect(breaker.openShards).toBe(4);
    expect(breaker.opens).toBe(4);
  });

  it('closes the shards whose probe answers and keeps probing the others', async () => {
    const up = new Set([0]);
    const { breaker, probed, closed } = make(4, up);
    breaker.fail(0, 'x');
    breaker.fail(2, 'x');
    await until(() => closed.length === 1);
    expect(closed).toEqual([{ shards: [0] }]);
    expect(breaker.isOpen(0)).toBe(false);
    expect(breaker.isOpen(2)).toBe(true);
    up.add(2);
    await until(() => closed.length === 2);
    expect(closed[1]).toEqual({ shards: [2] });
    expect(breaker.state).toBe('closed');
    // Only open shards were probed.
    expect(new Set(probed)).toEqual(new Set([0, 2]));
  });

  it('counts a probe that hangs past the timeout as a failure', async () => {
    // Probes hang (never settle) until `answering`; then they answer.
    let calls = 0;
    let answering = false;
    const breaker = new CircuitBreaker(1, () => (calls++, answering ? Promise.resolve() : new Promise(() => {})), 5, 20);
    breakers.push(breaker);
    const closed: BreakerCloseDetail[] = [];
    breaker.addEventListener('close', (e) => closed.push((e as CustomEvent<BreakerCloseDetail>).detail));
    breaker.fail(0, 'x');
    // A second probe only starts once the first has timed out and been counted:
    // a hung probe that were never given up on would hold every later one back.
    await until(() => calls >= 2);
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(breaker.isOpen(0)).toBe(true);
    expect(closed).toEqual([]);
    expect(breaker.opens).toBe(1); // still the one opening: a failed probe does not reopen
    // The breaker keeps probing after the hung ones, and the first probe that answers closes it.
    answering = true;
    await until(() => closed.length === 1);
    expect(closed).toEqual([{ shards: [0] }]);
    expect(breaker.state).toBe('closed');
  });

  it('opens on timeouts only when they come in a row, once Redis has answered', () => {
    const { breaker, opened } = make(2, new Set());
    const timeout = new RedisTimeoutError(50);
    breaker.succeeded(0);
    for (let round = 0; round < 5; round++) {
      for (let i = 1; i < TIMEOUTS_TO_OPEN; i++) breaker.fail(0, timeout);
      breaker.succeeded(0); // an answer in between: a slow batch, not an outage
    }
    expect(breaker.isOpen(0)).toBe(false);
    expect(opened).toEqual([]);
    for (let i = 0; i < TIMEOUTS_TO_OPEN; i++) breaker.fail(0, timeout);
    expect(breaker.isOpen(0)).toBe(true);
    expect(breaker.isOpen(1)).toBe(false);
    // Anything but a timeout opens at once.
    breaker.fail(1, new Error('ECONNRESET'));
    expect(breaker.isOpen(1)).toBe(true);
  });

  it('waits connectTimeoutMs for a first answer, and then timeoutMs', async () => {
    const breaker = new CircuitBreaker(1, async () => {}, 10, 20, 200);
    breakers.push(breaker);
    const slow = (ms: number) => () => new Promise<string>((r) => setTimeout(() => r('answer'), ms));
    expect(breaker.contacted).toBe(false);
    expect(await breaker.run(0, slow(60))).toBe('answer'); // longer than timeoutMs, within connectTimeoutMs
    expect(breaker.contacted).toBe(true);
    expect(await breaker.run(0, slow(60))).toBeUndefined(); // now it is a timeout
    expect(breaker.isOpen(0)).toBe(false); // one, not three in a row
  });

  it('starts a due probe from the call path, so callers that never yield to timers cannot starve it', async () => {
    const { breaker, probed } = make(1, new Set([0]));
    breaker.fail(0, new Error('down'));
    expect(probed).toEqual([]);
    // Block the event loop past the probe interval (10 ms): the timer cannot fire.
    const end = performance.now() + 30;
    while (performance.now() < end);
    expect(breaker.isOpen(0)).toBe(true); // ...but this call starts the probe that is due
    expect(probed).toEqual([0]);
  });

  it('probes nothing after stop()', async () => {
    const { breaker, probed } = make(2, new Set([0, 1]));
    breaker.fail(-1, 'x');
    breaker.stop();
    await new Promise((r) => setTimeout(r, 50));
    expect(probed).toEqual([]);
    expect(breaker.state).toBe('open');
  });
});

describe('withTimeout', () => {
  it('does not call a timeout on an answer that arrived while the process was busy: it reads its sockets first', async () => {
    // The old verdict came from the timer alone: after an event-loop stall
    // Node runs due timers before it reads sockets, so an answer already in
    // the socket counted as a timeout (three in a row open the breaker).
    const server = await startRedis();
    const client = new Redis({ host: server.host, port: server.port, lazyConnect: true });
    try {
      await client.connect();
      await client.ping();
      const pending = withTimeout(client.ping(), 20);
      // Busy well past the timeout: Redis, another process, answers meanwhile.
      const end = Date.now() + 300;
      while (Date.now() < end);
      await expect(pending).resolves.toBe('PONG');
      // A call that never answers still times out.
      await expect(withTimeout(new Promise(() => {}), 20)).rejects.toBeInstanceOf(RedisTimeoutError);
    } finally {
      client.disconnect();
      await server.stop();
    }
  });
});
