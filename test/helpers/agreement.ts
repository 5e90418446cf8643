// Drives a limiter and the reference model with the same sequences of keys,
// costs and times, and requires identical answers: the oracle check shared by
// the embedded and the Redis property tests. runScript does the same with the
// Redis decide script itself, op by op on the wire (charge and lease too,
// which no Limiter call makes), and compares the states as well.
import fc from 'fast-check';
import { expect } from 'vitest';
import { toConnection } from '../../build/lib/src/stores/redis/connection.js';
import { DECIDE_SCRIPT } from '../../build/lib/src/stores/redis/scripts.js';
import { ONE_CLIENT_CLOCK } from '../../build/lib/src/stores/redis/redis-store.js';
import { replyAllowed, replyGate } from '../../build/lib/src/stores/redis/wire.js';
import {
  ArgumentError,
  ConfigError,
  Limiter,
  concurrency,
  fixedWindow,
  gcra,
  linearWindow,
  slidingWindow,
  tokenBucket,
  type Permit,
  type Policy,
  type Store,
} from '../../build/lib/src/index.js';
import { ReferenceLimiter, type ModelState } from '../../support/reference-model.js';
import { configuredLimit } from '../../build/lib/src/policies/configured-limit.js';
import { OP_CHARGE, OP_LEASE, OP_LIMIT, OP_PEEK, OP_REFUND, OP_RELEASE, OP_RENEW, OP_RESERVE, OP_RESET } from '../../build/lib/build/abi.js';

/**
 * RedisStore options for a run on the model's clock: one store, one fake
 * clock (`time: 'client'`, allowed with concurrency gates only so).
 */
export const modelClock = { time: 'client', [ONE_CLIENT_CLOCK]: true } as const;

export const policyArb: fc.Arbitrary<Policy> = fc.oneof(
  fc.record({ limit: fc.integer({ min: 1, max: 20 }), period: fc.integer({ min: 1, max: 5000 }), burst: fc.integer({ min: 1, max: 8 }) }).map((o) => gcra(o)),
  fc
    .record({
      capacity: fc.integer({ min: 1, max: 20 }),
      refill: fc.integer({ min: 1, max: 20 }),
      period: fc.integer({ min: 1, max: 5000 }),
      mode: fc.constantFrom('continuous' as const, 'interval' as const),
    })
    .map((o) => tokenBucket(o)),
  fc.record({ limit: fc.integer({ min: 1, max: 20 }), window: fc.integer({ min: 1, max: 5000 }) }).map((o) => fixedWindow(o)),
  fc.record({ limit: fc.integer({ min: 1, max: 20 }), within: fc.integer({ min: 1, max: 5000 }) }).map((o) => linearWindow(o)),
  fc.record({ limit: fc.integer({ min: 1, max: 20 }), window: fc.integer({ min: 1, max: 5000 }) }).map((o) => slidingWindow(o)),
  // Leases of 1 to 5 s of the runs' clock; renewals come every leaseMs / 2 of
  // real time, longer than a run takes, so that the runs' own `extend` ops decide.
  fc.record({ limit: fc.integer({ min: 1, max: 6 }), leaseMs: fc.integer({ min: 1000, max: 5000 }) }).map((o) => concurrency(o)),
);

export type Op = { op: 'limit' | 'peek' | 'reserve' | 'refund' | 'reset' | 'release' | 'extend'; key: number; cost: number; dt: number };

/** Time between two ops: whole milliseconds, fractions, and long idle gaps. */
const dtArb = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.double({ min: 0, max: 50, noNaN: true }), fc.integer({ min: 0, max: 20_000 }));

export const opArb: fc.Arbitrary<Op> = fc.record({
  op: fc.constantFrom('limit', 'limit', 'limit', 'limit', 'peek', 'reserve', 'refund', 'refund', 'reset', 'release', 'release', 'extend') as fc.Arbitrary<Op['op']>,
  key: fc.integer({ min: 0, max: 2 }),
  cost: fc.integer({ min: 1, max: 8 }),
  dt: dtArb,
});

/**
 * Runs on concurrency gates: a gate of 1 to 3 slots (stacked with another
 * policy from policyArb, or alone), and ops whose times step by fractions of
 * its lease, so that permits are taken, renewed and released within their
 * lease epochs, across one boundary and past their leases.
 */
export const concurrencyRunArb: fc.Arbitrary<{ policies: Policy[]; ops: Op[] }> = fc
  .record({ limit: fc.integer({ min: 1, max: 3 }), leaseMs: fc.integer({ min: 1000, max: 5000 }), other: fc.option(policyArb, { freq: 3 }) })
  .chain(({ limit, leaseMs, other }) => {
    const gate = concurrency({ limit, leaseMs });
    const op = fc.record({
      op: fc.constantFrom('limit', 'limit', 'limit', 'release', 'release', 'extend', 'extend', 'peek', 'refund', 'reset') as fc.Arbitrary<Op['op']>,
      key: fc.integer({ min: 0, max: 1 }),
      cost: fc.integer({ min: 1, max: 3 }),
      dt: fc.oneof(fc.constant(0), fc.double({ min: 0, max: leaseMs / 4, noNaN: true }), fc.integer({ min: 0, max: Math.ceil(leaseMs * 1.5) })),
    });
    return fc.record({ policies: fc.constant(other === null ? [gate] : [other, gate]), ops: fc.array(op, { minLength: 1, maxLength: 80 }) });
  });

/**
 * Runs `ops` through a limiter on `store` (with an injected clock starting at
 * `start`) and through the model, expecting the same answers. `sync` uses
 * limitSync where the store allows it. `source` is not compared: a denial may
 * come from a local mirror. The store is the run's own: one with a `close`
 * (a RedisStore) is closed after it, so that its listeners leave the client.
 */
export async function runBoth(store: Store, policies: Policy[], ops: Op[], start: number, sync: boolean): Promise<void> {
  try {
    await agree(store, policies, ops, start, sync);
  } finally {
    await (store as { close?: () => Promise<void> }).close?.();
  }
}

/** A permit a run holds: what the model needs to release or renew it. */
interface Holding {
  permit: Permit;
  key: string;
  cost: number;
  at: number;
}

async function agree(store: Store, policies: Policy[], ops: Op[], start: number, sync: boolean): Promise<void> {
  let now = start;
  if (policies.filter((p) => p.kind === 'concurrency').length > 1) {
    // A permit names its lease epoch by one time: a limiter takes one concurrency gate at most.
    expect(() => new Limiter({ policy: policies, store }), 'two concurrency gates').toThrow(ConfigError);
    return;
  }
  const limiter = new Limiter({ policy: policies, store, clock: () => now });
  const model = new ReferenceLimiter(policies);
  const capacity = Math.min(...policies.map((p) => p.core.capacity));
  const slots = policies.some((p) => p.kind === 'concurrency');
  const held: Holding[] = [];
  try {
    for (const [i, o] of ops.entries()) {
      now += o.dt;
      await step(o, `op ${i} ${o.op}`);
    }
  } finally {
    for (const h of held) await h.permit.release();
  }

  async function step(o: Op, what: string): Promise<void> {
    const key = `key-${o.key}`;
    const cost = Math.min(o.cost, capacity);
    const where = `${what}(${key}, ${cost}) at ${now}`;
    if (o.op === 'limit' || o.op === 'peek') {
      const d = o.op === 'peek' ? await limiter.peek(key, { cost }) : sync ? limiter.limitSync(key, { cost }) : await limiter.limit(key, { cost });
      const { allowed, limit, capacity: cap, gate, remaining, retryAfterMs, resetAfterMs } = d;
      expect({ allowed, limit, capacity: cap, gate, remaining, retryAfterMs, resetAfterMs }, where).toEqual(model.limit(key, cost, now, o.op === 'peek'));
      // An admission by a limiter with a concurrency gate holds its slots until released.
      expect(typeof d.release === 'function', where).toBe(slots && allowed && o.op === 'limit');
      if (d.release !== undefined) held.push({ permit: d as Permit, key, cost, at: now });
    } else if (o.op === 'release' || o.op === 'extend') {
      // The permit: one of those held, chosen by the op's key and cost.
      const h = held[(o.key * 8 + o.cost) % Math.max(held.length, 1)];
      if (h === undefined) return;
      if (o.op === 'release') {
        held.splice(held.indexOf(h), 1);
        await h.permit.release();
        await h.permit.release(); // idempotent: the second gives back nothing
        model.release(h.key, h.cost, h.at, now);
      } else {
        const renewed = model.renew(h.key, h.cost, h.at, now);
        expect(await h.permit.extend(), `${where}: renewed`).toBe(renewed);
        expect(h.permit.held, where).toBe(renewed);
        if (renewed) h.at = now;
        else held.splice(held.indexOf(h), 1);
      }
    } else if (o.op === 'reserve' && slots) {
      await expect(limiter.reserve(key, { cost }), where).rejects.toThrow(ArgumentError);
    } else if (o.op === 'reserve') {
      const maxWaitMs = o.key === 0 ? 100 : Infinity;
      const { at, source: _source, ...got } = await limiter.reserve(key, { cost, maxWaitMs });
      expect(got, where).toEqual(model.reserve(key, cost, now, maxWaitMs));
      expect(at, where).toBe(now + got.waitMs);
    } else if (o.op === 'refund') {
      await limiter.refund(key, cost);
      model.refund(key, cost, now);
    } else {
      await limiter.reset(key);
      model.reset(key);
    }
  }
}

/** Every operation of the decide script (src/stores/redis/lua/wire.lua), by its op code. */
/** The script's op codes (abi/abi.mjs), by name. */
export const SCRIPT_OPS = { limit: OP_LIMIT, peek: OP_PEEK, reserve: OP_RESERVE, refund: OP_REFUND, reset: OP_RESET, charge: OP_CHARGE, lease: OP_LEASE, release: OP_RELEASE, renew: OP_RENEW } as const;
export type ScriptOpName = keyof typeof SCRIPT_OPS;

/**
 * One hit sent to the script. `arg` is the op's third value: reserve's
 * maxWait, lease's horizon, and for charge how long ago the units were spent
 * (negative: later than now). `together`: in the same script call as the
 * previous hit, at the same time (dt ignored).
 */
export type ScriptOp = { op: ScriptOpName; key: number; cost: number; dt: number; arg: number; together: boolean };

const argArb: Record<ScriptOpName, fc.Arbitrary<number>> = {
  limit: fc.constant(0),
  peek: fc.constant(0),
  refund: fc.constant(0),
  reset: fc.constant(0),
  reserve: fc.oneof(fc.constantFrom(0, 100, Infinity), fc.integer({ min: 0, max: 5000 })),
  // Moments within the charge memory and beyond it, fractions, and the future.
  charge: fc.oneof(fc.integer({ min: 0, max: 90_000 }), fc.double({ min: 0, max: 500, noNaN: true }), fc.integer({ min: -5000, max: -1 })),
  lease: fc.oneof(fc.constantFrom(0, Infinity), fc.integer({ min: 0, max: 2000 }), fc.double({ min: 0, max: 300, noNaN: true })),
  // How long ago the permit was taken: within its lease epochs or beyond, and the future.
  release: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 12_000 }), fc.double({ min: 0, max: 500, noNaN: true }), fc.integer({ min: -5000, max: -1 })),
  renew: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 12_000 }), fc.double({ min: 0, max: 500, noNaN: true }), fc.integer({ min: -5000, max: -1 })),
};

/**
 * The ops that make the states an op acts on differently: reservations book
 * later windows (refund gives back to those), charges go past the limit
 * (after which a lease or a limit waits), a lease fills a window at once.
 */
const SETUP: Record<ScriptOpName, ScriptOpName[]> = {
  limit: ['charge', 'reserve'],
  peek: ['limit', 'charge'],
  reserve: ['limit', 'charge'],
  refund: ['reserve', 'charge', 'lease'],
  reset: ['charge', 'reserve'],
  charge: ['limit', 'lease', 'charge'],
  lease: ['charge', 'reserve', 'limit'],
  release: ['limit', 'charge', 'renew'],
  renew: ['limit', 'release', 'charge'],
};

/**
 * Hits of every op, 2 in 5 of them `focus` and 1 in 5 one that sets up
 * states for it (SETUP), in batches of one or more.
 */
export function scriptOpArb(focus: ScriptOpName): fc.Arbitrary<ScriptOp> {
  const all = Object.keys(SCRIPT_OPS) as ScriptOpName[];
  const name = fc.oneof({ arbitrary: fc.constant(focus), weight: 2 }, { arbitrary: fc.constantFrom(...SETUP[focus]), weight: 1 }, { arbitrary: fc.constantFrom(...all), weight: 2 });
  return name.chain((op) =>
    fc.record({
      op: fc.constant(op),
      // Two keys: a batch may hold both, and most hits meet a state.
      key: fc.integer({ min: 0, max: 1 }),
      // An outage's charge may be many units, and keep a TAT past its memory.
      cost: op === 'charge' ? fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 100 })) : fc.integer({ min: 1, max: 8 }),
      dt: dtArb,
      arg: argArb[op],
      together: fc.boolean(),
    }),
  );
}

type Send = (anchor: string, ...argv: (string | Buffer)[]) => Promise<Buffer>;

/** The script's answer to one hit, in the model's terms; undefined for the ops that answer nothing. */
export type ScriptAnswer = ReturnType<ReferenceLimiter['limit' | 'reserve' | 'lease']> | undefined;

/**
 * Runs `ops` through the decide script as built (EVALSHA with the `now`
 * override, the client's encoding, consecutive `together` hits in one call)
 * and through the model, expecting equal answers and, after each call, equal
 * states of every key it touched. Returns the script's answers and, per op,
 * its key's states after its call.
 */
export async function runScript(
  client: unknown,
  prefix: string,
  policies: Policy[],
  ops: ScriptOp[],
  start: number,
): Promise<{ answers: ScriptAnswer[]; states: ModelState[][] }> {
  const send = scriptSender(client);
  const model = new ReferenceLimiter(policies);
  const capacity = policies.map((p) => p.core.capacity);
  const limits = policies.map(configuredLimit);
  const gateArgs = [String(policies.length)];
  for (const { core } of policies) gateArgs.push(`${core.code}:${core.p0}:${core.p1}:${core.p2}`, String(core.code), String(core.p0), String(core.p1), String(core.p2));
  const answers: ScriptAnswer[] = [];
  const states: ModelState[][] = [];
  // The shard's incarnation (incarnation.lua) from the beginning of time: the
  // ops' permit times are arbitrary, and the model knows no Redis restarts.
  await (client as { set(key: string, value: string): Promise<unknown> }).set(`${prefix}{0}:|`, '-1e308');
  let now = start;
  for (let first = 0; first < ops.length; ) {
    now += ops[first]!.dt;
    let end = first + 1;
    while (end < ops.length && ops[end]!.together) end++;
    // Entries by key in order of first appearance, each key's hits in order,
    // as redis-binding.ts sends them (keys are independent, so the model may
    // take the hits in their own order).
    const entries = new Map<string, number[]>();
    for (let i = first; i < end; i++) {
      const key = `key-${ops[i]!.key}`;
      entries.set(key, [...(entries.get(key) ?? []), i]);
    }
    const sent = (i: number) => {
      const o = ops[i]!;
      // The limiter refuses costs above the capacity for what asks; a charge or lease may be larger.
      const cost = o.op === 'limit' || o.op === 'peek' || o.op === 'reserve' ? Math.min(o.cost, ...capacity) : o.cost;
      return { ...o, cost, arg: o.op === 'charge' || o.op === 'release' || o.op === 'renew' ? now - o.arg : o.arg };
    };
    let lengths = '';
    let specs = '';
    for (const [key, hits] of entries) {
      lengths += `${Buffer.byteLength(key)},`;
      const only = hits.length === 1 ? sent(hits[0]!) : undefined;
      if (only === undefined || only.op !== 'limit' || only.cost !== 1) {
        specs += hits.map((i) => sent(i)).map((h) => `${SCRIPT_OPS[h.op]} ${h.cost} ${h.arg === Infinity ? 'inf' : h.arg}`).join(' ');
      }
      specs += ',';
    }
    const reply = await send(`${prefix}{0}`, String(now), ...gateArgs, '', lengths, [...entries.keys()].join(''), specs);
    const out = Array.from({ length: reply.length / 8 }, (_, j) => reply.readDoubleLE(j * 8));
    expect(out[0], 'the script clock').toBe(now);
    let r = 1;
    let m = 1 + (end - first) * 4;
    for (const [key, hits] of entries) {
      for (const i of hits) {
        const h = sent(i);
        const where = `op ${i} ${h.op}(${key}, ${h.cost}, ${h.arg}) at ${now}`;
        const [flags, remaining, retry, reset] = out.slice(r, r + 4) as [number, number, number, number];
        r += 4;
        const allowed = replyAllowed(flags);
        const gate = replyGate(flags);
        const limit = capacity[gate]!; // a lease reports the binding gate's capacity as its limit (LeaseReply)
        const reported = { limit: limits[gate]!, capacity: capacity[gate]!, gate };
        let answer: ScriptAnswer;
        if (h.op === 'limit' || h.op === 'peek') {
          answer = { allowed, ...reported, remaining, retryAfterMs: retry, resetAfterMs: reset };
          expect(answer, where).toEqual(model.limit(key, h.cost, now, h.op === 'peek'));
        } else if (h.op === 'reserve') {
          answer = { allowed, waitMs: retry, ...reported, remaining };
          expect(answer, where).toEqual(model.reserve(key, h.cost, now, h.arg));
        } else if (h.op === 'lease') {
          answer = allowed ? { granted: remaining, limit, lastMs: retry, validMs: reset } : { granted: remaining as 0, limit, retryAfterMs: retry, resetAfterMs: reset };
          expect(answer, where).toEqual(model.lease(key, h.cost, h.arg, now));
        } else if (h.op === 'release' || h.op === 'renew') {
          // ALLOWED when every concurrency gate holds the permit (a release: always).
          const holds = h.op === 'release' ? (model.release(key, h.cost, h.arg, now), true) : model.renew(key, h.cost, h.arg, now);
          expect([allowed, gate, remaining, retry, reset], where).toEqual([holds, 0, 0, 0, 0]);
        } else {
          expect([flags, remaining, retry, reset], where).toEqual([0, 0, 0, 0]);
          if (h.op === 'refund') model.refund(key, h.cost, now);
          else if (h.op === 'reset') model.reset(key);
          else model.charge(key, h.cost, h.arg, now);
        }
        answers[i] = answer;
      }
      const got: ModelState[] = policies.map((_, g) => {
        const [a, b, c, exp] = out.slice(m + g * 4, m + g * 4 + 4) as [number, number, number, number];
        return exp === -Infinity ? undefined : { a, b, c, exp };
      });
      m += policies.length * 4;
      expect(got, `states of ${key} after the call at ${now}`).toEqual(model.states(key, now));
      for (const i of hits) states[i] = got;
    }
    expect(m, 'the reply holds nothing more').toBe(out.length);
    first = end;
  }
  return { answers, states };
}

/** The decide script on `client` (any client the store takes), sent as the store sends it. */
function scriptSender(client: unknown): Send {
  const connection = toConnection(client);
  return (anchor, ...argv) => connection.evalScript(DECIDE_SCRIPT, anchor, argv) as Promise<Buffer>;
}
