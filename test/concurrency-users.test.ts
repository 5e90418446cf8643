// The users of concurrency gates: the Scheduler, @rateLimited, limitedFetch
// and the HTTP middleware hold a permit while their work is in flight and
// give it back when it ends (success, failure, abort, close), on real timers,
// real servers on loopback (ports chosen at run time) and a real Redis.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { AcquireTimeoutError, ArgumentError, ConfigError, Limiter, concurrency, gcra, rateLimited } from '../build/lib/src/index.js';
import { SchedulerClosedError } from '../build/lib/src/errors.js';
import { Scheduler } from '../build/lib/src/scheduler/scheduler.js';
import { fastifyRateLimit, limitedFetch, nodeRateLimit, rateLimit } from '../build/lib/src/http/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { useRedis } from './helpers/use-redis.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts what is inside at once, and the most ever. */
function gauge() {
  let now = 0;
  let max = 0;
  return {
    enter() {
      now++;
      max = Math.max(max, now);
    },
    leave() {
      now--;
    },
    get now() {
      return now;
    },
    get max() {
      return max;
    },
  };
}

/** Resolves once `check` holds, polling; rejects after `ms` (the condition never came). */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Whether `n` permits of `key` can be taken right now (nothing waited for); they are released again. */
async function free(limiter: Limiter, key: string, n: number): Promise<boolean> {
  const taken = [];
  try {
    for (let i = 0; i < n; i++) taken.push(await limiter.acquire(key, { maxWaitMs: 0 }));
    return true;
  } catch (error) {
    if (error instanceof AcquireTimeoutError) return false;
    throw error;
  } finally {
    for (const p of taken) await p.release();
  }
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Each scheduler runs `rounds` executions of `key` one after another, all schedulers at once; answers the most running at once. */
async function mostInFlight(schedulers: Scheduler[], key: string, rounds: number, ms: number): Promise<number> {
  const g = gauge();
  const task = async () => {
    g.enter();
    await sleep(ms);
    g.leave();
  };
  await Promise.all(
    schedulers.map(async (s) => {
      for (let i = 0; i < rounds; i++) await s.schedule(key, task);
    }),
  );
  return g.max;
}

describe('Scheduler with a concurrency gate', () => {
  it('never runs more than limit executions of a key at once across schedulers sharing the limiter, and reaches the limit', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 2 }) });
    const schedulers = [1, 2, 3].map(() => new Scheduler({ limiter }));
    expect(await mostInFlight(schedulers, 'r', 5, 10)).toBe(2);
    expect(await free(limiter, 'r', 2)).toBe(true);
    await Promise.all(schedulers.map((s) => s.close()));
  });

  it('waits for a permit without holding a scheduler slot: another key runs meanwhile', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 1 }) });
    const scheduler = new Scheduler({ limiter, concurrency: 1 });
    const outside = await limiter.acquire('a');
    const order: string[] = [];
    const a = scheduler.schedule('a', () => void order.push('a'));
    await sleep(20);
    await scheduler.schedule('b', () => void order.push('b'));
    expect(order).toEqual(['b']);
    await outside.release();
    await a;
    expect(order).toEqual(['b', 'a']);
    expect(await free(limiter, 'a', 1)).toBe(true);
  });

  it('releases the permit after a failed attempt, holds none during the backoff, and after the last failure', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 1 }) });
    const scheduler = new Scheduler({ limiter, retry: { attempts: 2, baseMs: 200, jitter: 0 } });
    let attempts = 0;
    let freeDuringBackoff: boolean | undefined;
    let heldWhileRunning: boolean | undefined;
    const done = scheduler.schedule('k', async () => {
      attempts++;
      heldWhileRunning = !(await free(limiter, 'k', 1));
      if (attempts === 1) {
        setTimeout(() => void free(limiter, 'k', 1).then((f) => (freeDuringBackoff = f)), 50);
        throw new Error('conflict');
      }
      return 'ok';
    });
    expect((await done).value).toBe('ok');
    expect(attempts).toBe(2);
    expect(heldWhileRunning).toBe(true);
    expect(freeDuringBackoff).toBe(true);
    expect(await free(limiter, 'k', 1)).toBe(true);

    const errors: unknown[] = [];
    const failing = new Scheduler({ limiter, retry: { attempts: 1 }, onError: (e) => errors.push(e) });
    await expect(failing.schedule('k', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(errors).toHaveLength(1);
    expect(await free(limiter, 'k', 1)).toBe(true);
  });

  it('close({ drain: false }) aborts a running task and a wait for a permit; close resolves with every permit back', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 2 }) });
    const scheduler = new Scheduler({ limiter });
    const other = new Scheduler({ limiter });
    const outside = await limiter.acquire('k');
    let started = 0;
    const running = scheduler.schedule('k', (_key, signal) => {
      started++;
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    });
    await until(() => started === 1, 'the task to start');
    // Both slots are taken (outside, running): this one waits in acquire.
    const waiting = other.schedule('k', () => void started++);
    await sleep(20);
    await Promise.all([scheduler.close({ drain: false }), other.close({ drain: false })]);
    await expect(running).rejects.toBeInstanceOf(SchedulerClosedError);
    await expect(waiting).rejects.toBeInstanceOf(SchedulerClosedError);
    expect(started).toBe(1);
    expect(await free(limiter, 'k', 1)).toBe(true);
    await outside.release();
    expect(await free(limiter, 'k', 2)).toBe(true);
  });

  it('waits for stacked rate gates too (acquire), and a lost lease aborts the task', async () => {
    let t = 1_000_000;
    const limiter = new Limiter({ policy: [gcra({ limit: 100, period: '1s', burst: 100 }), concurrency({ limit: 1, leaseMs: 1000 })], clock: () => t });
    const scheduler = new Scheduler({ limiter, retry: { attempts: 1 } });
    let reason: unknown;
    const done = scheduler.schedule('k', (_key, signal) => {
      // The clock jumps past the lease and another holder takes the slot: the next renewal finds it lost.
      t += 5000;
      void limiter.limit('k');
      return new Promise((_, reject) =>
        signal.addEventListener('abort', () => {
          reason = signal.reason;
          reject(signal.reason);
        }),
      );
    });
    await expect(done).rejects.toMatchObject({ name: 'LeaseLostError' });
    expect((reason as Error).name).toBe('LeaseLostError');
  });

  it('rejects a limiter it cannot take permits through, naming it', () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 2 }) });
    const cases = [
      { reserve: limiter.reserve.bind(limiter), refund: limiter.refund.bind(limiter), policies: limiter.policies },
      { reserve: limiter.reserve.bind(limiter), refund: limiter.refund.bind(limiter), policies: limiter.policies, limit: limiter.limit.bind(limiter) },
      { reserve: limiter.reserve.bind(limiter), refund: limiter.refund.bind(limiter), policies: 'concurrency' },
    ];
    for (const bad of cases) {
      expect(() => new Scheduler({ limiter: bad as never })).toThrow(expect.objectContaining({ name: 'ConfigError', parameter: 'limiter' }));
    }
    expect(() => new Scheduler({ limiter })).not.toThrow();
  });
});

describe('Scheduler with a concurrency gate through Redis', () => {
  const redis = useRedis();

  it('holds at most limit executions of a key in flight across stores (processes) sharing Redis', async () => {
    const stores = [new RedisStore({ client: redis.client }), new RedisStore({ client: redis.client })];
    const limiters = stores.map((store) => new Limiter({ policy: concurrency({ limit: 2 }), store }));
    const schedulers = [0, 1, 0, 1].map((i) => new Scheduler({ limiter: limiters[i]! }));
    expect(await mostInFlight(schedulers, 'job', 4, 15)).toBe(2);
    // Every permit is back: a fresh store can take both slots at once.
    const fresh = new RedisStore({ client: redis.client });
    expect(await free(new Limiter({ policy: concurrency({ limit: 2 }), store: fresh }), 'job', 2)).toBe(true);
    await Promise.all(schedulers.map((s) => s.close()));
    await Promise.all([...stores, fresh].map((s) => s.close()));
  }, 20_000);
});

describe('@rateLimited with a concurrency gate', () => {
  it('holds the permit while the method runs, and gives it back when it throws', async () => {
    const g = gauge();
    // Applied by hand: Node 20 cannot parse decorator syntax (see rate-limited.test.ts).
    const decorate = rateLimited({ policy: concurrency({ limit: 2 }), key: (id: string) => id });
    const work = decorate(
      async function work(_id: string, fail: boolean): Promise<void> {
        g.enter();
        await sleep(10);
        g.leave();
        if (fail) throw new Error('failed');
      },
      { kind: 'method', name: 'work' } as ClassMethodDecoratorContext,
    );
    const w = { work };
    const results = await Promise.allSettled([0, 1, 2, 3, 4, 5].map((i) => w.work('x', i % 2 === 0)));
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(3);
    expect(g.max).toBe(2);
    // All six ran, so every permit came back, the failed ones included; and again now.
    await Promise.all([w.work('x', false), w.work('x', false)]);
  });
});

describe('limitedFetch with a concurrency gate', () => {
  /** A server that counts requests in flight (request to response closed), with slow, stalling and empty routes. */
  async function upstream() {
    const g = gauge();
    let busy = false;
    const url = await listen(
      createServer((req, res) => {
        g.enter();
        res.on('close', () => g.leave());
        if (req.url === '/slow') setTimeout(() => res.end('done'), 20);
        else if (req.url === '/stall') {
          res.writeHead(200);
          res.write('part');
        } else if (req.url === '/busy') {
          // Pushes back once per pair of calls: 429 with Retry-After 0, then 200.
          busy = !busy;
          res.writeHead(busy ? 429 : 200, { 'retry-after': '0' }).end(busy ? 'busy' : 'done');
        } else if (req.url === '/empty') {
          res.statusCode = 204;
          res.end();
        } // '/hang': no answer
      }),
    );
    return { g, url };
  }

  it('holds at most limit calls in flight, as the server sees them', async () => {
    const { g, url } = await upstream();
    const limiter = new Limiter({ policy: concurrency({ limit: 2 }) });
    const api = limitedFetch(fetch, { limiter });
    const bodies = await Promise.all([0, 1, 2, 3, 4, 5].map(() => api(`${url}/slow`).then((r) => r.text())));
    expect(bodies).toEqual(Array(6).fill('done'));
    expect(g.max).toBe(2);
    expect(await free(limiter, new URL(url).origin, 2)).toBe(true);
  });

  it('holds the slot until the body is read or cancelled; a response without a body releases at once', async () => {
    const { url } = await upstream();
    const limiter = new Limiter({ policy: concurrency({ limit: 1 }) });
    const api = limitedFetch(fetch, { limiter, key: 'up' });
    const read = await api(`${url}/slow`);
    expect(read.status).toBe(200);
    expect(read.url).toBe(`${url}/slow`);
    expect(await free(limiter, 'up', 1)).toBe(false);
    expect(await read.text()).toBe('done');
    expect(await free(limiter, 'up', 1)).toBe(true);

    const cancelled = await api(`${url}/slow`);
    expect(await free(limiter, 'up', 1)).toBe(false);
    await cancelled.body!.cancel();
    expect(await free(limiter, 'up', 1)).toBe(true);

    const empty = await api(`${url}/empty`);
    expect(empty.status).toBe(204);
    expect(await free(limiter, 'up', 1)).toBe(true);
  });

  it('gives the slot back when the call is aborted before the answer, or mid-body, and when fetch rejects', async () => {
    const { url } = await upstream();
    const limiter = new Limiter({ policy: concurrency({ limit: 1 }) });
    const api = limitedFetch(fetch, { limiter, key: 'up' });

    const early = new AbortController();
    const hanging = api(`${url}/hang`, { signal: early.signal });
    await sleep(30);
    expect(await free(limiter, 'up', 1)).toBe(false);
    early.abort();
    await expect(hanging).rejects.toThrow();
    expect(await free(limiter, 'up', 1)).toBe(true);

    const mid = new AbortController();
    const stalled = await api(`${url}/stall`, { signal: mid.signal });
    const reader = stalled.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('part');
    expect(await free(limiter, 'up', 1)).toBe(false);
    mid.abort();
    await expect(reader.read()).rejects.toThrow();
    expect(await free(limiter, 'up', 1)).toBe(true);

    const failing = limitedFetch(() => Promise.reject(new TypeError('network')), { limiter, key: 'up' });
    await expect(failing(`${url}/slow`)).rejects.toThrow('network');
    expect(await free(limiter, 'up', 1)).toBe(true);
  });

  it('gives the slot back before retrying a 429, and takes it again for the retry', async () => {
    const { g, url } = await upstream();
    const limiter = new Limiter({ policy: concurrency({ limit: 1 }) });
    const api = limitedFetch(fetch, { limiter, key: 'up', retry429: 1 });
    const res = await api(`${url}/busy`);
    expect(res.status).toBe(200);
    expect(await free(limiter, 'up', 1)).toBe(false);
    expect(await res.text()).toBe('done');
    expect(await free(limiter, 'up', 1)).toBe(true);
    expect(g.max).toBe(1);
  });

  it('rejects a limiter whose policies are not an array', () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 1 }) });
    let error: unknown;
    try {
      limitedFetch(fetch, { limiter: { acquire: limiter.acquire.bind(limiter), policies: 5 } as never });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).parameter).toBe('limiter');
  });
});

/** Sends a GET on a raw socket (closed by the caller) and resolves once it is connected and written. */
function rawGet(url: string, path: string): Promise<Socket> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

/** What a denial by the concurrency gate carries. */
function expectSlotDenial(res: Response): void {
  expect(res.status).toBe(429);
  expect(res.headers.get('retry-after')).toBe('1');
  expect(res.headers.get('ratelimit-policy')).toBe('"concurrency";q=2');
  expect(res.headers.get('ratelimit')).toBe('"concurrency";r=0;t=1');
}

describe('HTTP middleware with a concurrency gate', () => {
  /**
   * Runs the shared scenario against a server whose `/hold` requests stay
   * open until `endOne` (the oldest) or `endAll` ends them, and whose
   * `/quick` answers at once.
   */
  async function scenario(url: string, arrived: () => number, endOne: () => void, endAll: () => void, limiter: Limiter) {
    const held = [fetch(`${url}/hold`), fetch(`${url}/hold`)];
    await until(() => arrived() === 2, 'two held requests');
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200]);
    expectSlotDenial(await fetch(`${url}/quick`));
    // One ends: its slot comes back.
    endOne();
    await until(async () => (await fetch(`${url}/quick`)).status === 200, 'a slot after a finished response');
    // A client that goes away mid-request (its socket destroyed) gives its slot back.
    const socket = await rawGet(url, '/hold');
    await until(() => arrived() === 3, 'the raw request');
    expectSlotDenial(await fetch(`${url}/quick`));
    socket.destroy();
    await until(async () => (await fetch(`${url}/quick`)).status === 200, 'the aborted request’s slot');
    endAll();
    expect(await Promise.all(held.map(async (r) => (await r).text()))).toEqual(['held', 'held']);
    await until(() => free(limiter, 'all', 2), 'every slot back');
  }

  it('node:http: limit slow requests pass, the next gets 429 with Retry-After, an aborted one frees its slot', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 2 }) });
    const mw = nodeRateLimit({ limiter, key: () => 'all' });
    const open: ServerResponse[] = [];
    let arrived = 0;
    const url = await listen(
      createServer((req: IncomingMessage, res: ServerResponse) =>
        mw(req, res, (error) => {
          if (error !== undefined) return void res.writeHead(500).end();
          if (req.url === '/quick') return void res.end('ok');
          arrived++;
          res.writeHead(200);
          res.write('held');
          open.push(res);
        }),
      ),
    );
    await scenario(url, () => arrived, () => open.shift()!.end(), () => open.splice(0).forEach((r) => r.end()), limiter);
  }, 20_000);

  it('Fastify: the same through its onRequest hook', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 2 }) });
    const app = Fastify();
    app.addHook('onRequest', fastifyRateLimit({ limiter, key: () => 'all' }));
    const open: ServerResponse[] = [];
    let arrived = 0;
    app.get('/quick', async () => 'ok');
    app.get('/hold', (_request, reply) => {
      arrived++;
      reply.hijack();
      reply.raw.writeHead(200);
      reply.raw.write('held');
      open.push(reply.raw);
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    servers.push(app.server);
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    await scenario(url, () => arrived, () => open.shift()!.end(), () => open.splice(0).forEach((r) => r.end()), limiter);
  }, 20_000);

  it('a response that cannot tell when it is over is refused with ArgumentError (res), the permit released', () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 1 }) });
    const mw = nodeRateLimit({ limiter, key: () => 'all' });
    const errors: unknown[] = [];
    const res = { statusCode: 200, setHeader() {}, end() {} };
    mw({ headers: {} }, res, (error) => errors.push(error));
    expect(errors[0]).toBeInstanceOf(ArgumentError);
    expect((errors[0] as ArgumentError).parameter).toBe('res');
    expect(limiter.limitSync('all').allowed).toBe(true);
  });

  /**
   * Serves a Fetch-API handler on node:http the way Bun and Deno do: the
   * request's signal aborts and the response body is cancelled when the
   * client goes away; the body is streamed as the handler's Response gives it.
   */
  function serveFetch(handler: (request: Request) => Promise<Response>): Promise<string> {
    return listen(
      createServer(async (req, res) => {
        const gone = new AbortController();
        res.on('close', () => {
          if (!res.writableFinished) gone.abort();
        });
        const response = await handler(new Request(`http://x${req.url}`, { signal: gone.signal })).catch(() => new Response('error', { status: 500 }));
        response.headers.forEach((value, name) => res.setHeader(name, value));
        res.statusCode = response.status;
        if (response.body === null) return void res.end();
        const reader = response.body.getReader();
        gone.signal.addEventListener('abort', () => void reader.cancel().catch(() => {}));
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            res.write(value);
          }
          res.end();
        } catch {
          res.destroy();
        }
      }),
    );
  }

  it('Fetch adapter: a permit is held until the body is sent or cancelled, and given back when the handler throws', async () => {
    const limiter = new Limiter({ policy: concurrency({ limit: 2 }) });
    const streams: ReadableStreamDefaultController<Uint8Array>[] = [];
    let arrived = 0;
    const handler = rateLimit(
      async (request: Request) => {
        const path = new URL(request.url).pathname;
        if (path === '/quick') return new Response('ok');
        if (path === '/throw') throw new Error('handler failed');
        arrived++;
        return new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(new TextEncoder().encode('held'));
              streams.push(controller);
            },
          }),
        );
      },
      { limiter, key: () => 'all' },
    );
    const url = await serveFetch(handler);
    const end = (c: ReadableStreamDefaultController<Uint8Array>) => {
      try {
        c.close();
      } catch {
        // cancelled already: its client went away
      }
    };
    await scenario(url, () => arrived, () => end(streams.shift()!), () => streams.splice(0).forEach(end), limiter);
    // A handler that throws gives its slot back: both are free afterwards.
    expect((await fetch(`${url}/throw`)).status).toBe(500);
    expect(await free(limiter, 'all', 2)).toBe(true);
    const clientAbort = new AbortController();
    const res = await fetch(`${url}/hold`, { signal: clientAbort.signal });
    const reader = res.body!.getReader();
    await reader.read();
    expect(await free(limiter, 'all', 2)).toBe(false);
    clientAbort.abort();
    await until(() => free(limiter, 'all', 2), 'the slot of a client that aborted mid-body');
  }, 20_000);
});
