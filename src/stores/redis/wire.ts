// The wire format of decide.lua, from the client's side: the gates' and the
// batch's arguments, and the reply decoded (src/stores/redis/lua/wire.lua
// documents every argument and reply value).
import type { Decision, Reservation } from '../../limiter/decision.js';
import type { Held, Renewal } from '../../limiter/store.js';
import type { Policy } from '../../policies/index.js';
import { wtf8Length, writeWtf8 } from '../../core/wtf8.js';
import { ALLOWED, GATE_MASK, GATE_SHIFT, OP_LIMIT } from '../../../build/abi.js';
import type { CoreParams } from '../../policies/core-params.js';

/**
 * @internal What Redis granted a lease request (times on the local clock,
 * rounded to the safe side: slots late, validity early).
 */
export interface LeaseReply {
  /** Units debited for this process to spend (0: denied). */
  readonly granted: number;
  /** When the last unit may be spent; unit j of k at `lastAt - (k - j) * step`. */
  readonly lastAt: number;
  /** Until when the units may be spent (Infinity: no window boundary). */
  readonly validUntil: number;
  /** When nothing was granted: when one unit would be (early side: asking again then is safe, denying longer is not). */
  readonly retryAt: number;
  readonly resetAfterMs: number;
  /** The gate Redis reported (a denial's binding gate; 0 for a grant). */
  readonly gate: number;
  /** When the request was sent (local clock): the lease's lifetime counts from then. */
  readonly grantedAt: number;
  /** How long the request took, send to answer (ms). */
  readonly roundTripMs: number;
}

/** One queued call of a batch: its op (OP_* of abi/abi.mjs), cost and third value, and its promise's ends. */
export interface Hit {
  op: number;
  cost: number;
  maxWait: number;
  /** An OP_LIMIT of a permit (`StoreBinding.hold`): answered as a Held, with the script's time. */
  hold?: boolean;
  resolve(value: Decision | Reservation | LeaseReply | Held | Renewal | undefined): void;
  reject(error: unknown): void;
}

/**
 * What a limiter with plans sends with its batches (wire.lua's plan
 * arguments): its name, the batch's plan's version, and how a key carries
 * its use into it.
 */
export interface PlanArgs {
  readonly name: string;
  readonly version: number;
  /** CARRY_* of abi/abi.mjs. */
  readonly carry: number;
}

/**
 * The gates' arguments, the same for every batch of a binding: their count,
 * then per gate its id, algorithm code and three parameters; then the plan
 * (`''` without one).
 *
 * @example
 * ```ts
 * gateArgs([gcra({ limit: 10, period: '1s' })]); // ['1', '0:100:1:100', '0', '100', '1', '100', '']
 * ```
 */
export function gateArgs(gates: readonly Policy[], block?: { readonly core: CoreParams }, plan?: PlanArgs): string[] {
  const args = [String(gates.length + (block === undefined ? 0 : 1))];
  const ids: string[] = [];
  // A limiter with plans has states of its own (a plan change moves them):
  // its gate ids start with its name.
  const owner = plan === undefined ? '' : `${plan.name}/`;
  for (const { core } of gates) {
    // The gate id names the policy, so limiters with the same policy share state and others don't.
    const id = `${owner}${core.code}:${core.p0}:${core.p1}:${core.p2}`;
    ids.push(id);
    args.push(id, String(core.code), String(core.p0), String(core.p1), String(core.p2));
  }
  if (block !== undefined) {
    // The block's id names the gates it blocks, not its escalation: limiters
    // with the same gates share blocks, whatever their blockAfter; a
    // limiter with plans keeps one block whatever the plan.
    const { core } = block;
    args.push(plan === undefined ? `!${ids.join(',')}` : `!@${plan.name}`, String(core.code), String(core.p0), String(core.p1), String(core.p2));
  }
  if (plan === undefined) args.push('');
  else args.push(plan.name, String(plan.version), String(plan.carry));
  return args;
}

/**
 * A batch's entries as the script's strings (argument encoding dominates the
 * client's cost, so not a few per entry): the keys' byte lengths, the keys as
 * WTF-8 bytes (see wtf8.ts) exactly as the lengths count them, the hits ("op
 * cost maxWait" triples; empty for the common single limit of cost 1), and
 * which shard each run of entries belongs to: `''` when they all belong to
 * the call's own (one shard), otherwise "<shard>=<count>," per shard, in the
 * order of `groups` (several shards of a single server in one call). Shard
 * numbers, not anchor keys: a prefix may hold `=` and `,`.
 *
 * @example
 * ```ts
 * const { lengths, keys, specs, anchors } = encodeEntries(new Map([[3, new Map([['a', [hit]]])]]));
 * ```
 */
export function encodeEntries(groups: ReadonlyMap<number, ReadonlyMap<string, readonly Hit[]>>): { lengths: string; keys: Uint8Array; specs: string; anchors: string } {
  let lengths = '';
  let specs = '';
  let anchors = '';
  let total = 0;
  for (const [shard, entries] of groups) {
    if (groups.size > 1) anchors += `${shard}=${entries.size},`;
    for (const key of entries.keys()) {
      const n = wtf8Length(key);
      lengths += `${n},`;
      total += n;
    }
  }
  const keys = Buffer.allocUnsafe(total);
  let at = 0;
  for (const entries of groups.values()) {
    for (const [key, hits] of entries) {
      at = writeWtf8(key, keys, at);
      const only = hits.length === 1 ? hits[0]! : undefined;
      if (only === undefined || only.op !== OP_LIMIT || only.cost !== 1) {
        specs += hits.map((h) => `${h.op} ${h.cost} ${h.maxWait === Infinity ? 'inf' : h.maxWait}`).join(' ');
      }
      specs += ',';
    }
  }
  return { lengths, keys, specs, anchors };
}

/**
 * The reply's little-endian doubles: Redis's time, then per hit 4 values
 * (flags, remaining, retryAfterMs, resetAfterMs), then per entry per gate the
 * state (a, b, c, exp) for the local mirror.
 *
 * @example
 * ```ts
 * const out = decodeReply(reply); // out[0]: Redis's time, epoch ms
 * ```
 */
export function decodeReply(reply: Uint8Array): Float64Array {
  const out = new Float64Array(reply.length / 8);
  const view = new DataView(reply.buffer, reply.byteOffset, reply.length);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(i * 8, true);
  return out;
}

/**
 * The decide script's reply, checked to be packed doubles: a client that
 * answers bulk strings as text (or an adapter that does) fails the call, and
 * the fallback decides, instead of decisions read from garbage.
 *
 * @example
 * ```ts
 * const out = decodeReply(packedReply(await connection.evalScript(DECIDE_SCRIPT, anchor, argv)));
 * ```
 */
export function packedReply(reply: unknown): Uint8Array {
  if (reply instanceof Uint8Array && reply.length % 8 === 0 && reply.length > 0) return reply;
  throw new TypeError(`cellgate: the decide script's reply is not packed doubles (got ${reply instanceof Uint8Array ? `${reply.length} bytes` : typeof reply}): the client must answer bulk strings as bytes`);
}

/** Whether a hit's reply flags say allowed (flags = ALLOWED | gate << GATE_SHIFT, as the core's; negative: a state cellgate did not write). */
export const replyAllowed = (flags: number): boolean => (flags & ALLOWED) !== 0;
/** The binding gate of a hit's reply flags. */
export const replyGate = (flags: number): number => (flags >>> GATE_SHIFT) & GATE_MASK;
