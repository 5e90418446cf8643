// limitedFetch's shape 'auto': which algorithm spends a key's rate, learned
// from what the upstream answers. It starts paced (GCRA, burst 1: nothing a
// burst-intolerant upstream refuses) and moves to a token bucket (bursts up
// to the rate's count, the fleet's starts booked into the upstream's own
// quota window by the shared pace) once answers show a quota: accepted
// answers with quota headers and a reset, and no refusal while quota
// remained. A refusal while the upstream said quota remained shows a
// burst-intolerant upstream: paced again, for good. (A refusal with the
// quota said spent is what a quota does; one with no quota headers says
// nothing of the shape: the pace slows, the shape stays.)
// On a RedisStore the verdict is the fleet's (pace.lua's 'learn'), and each
// process applies it with its next call; elsewhere each process learns alone.
import { QUOTA_EVIDENCE, SHAPE_PACING, SHAPE_QUOTA } from '../../build/abi.js';
import { ConfigError } from '../errors.js';
import type { Limiter } from '../limiter/limiter.js';
import { PLAN_CACHE_KEYS, type PlanAnswer } from '../limiter/plans.js';
import type { LearnedShape, SharedPace } from '../limiter/store.js';
import { gcra } from '../policies/gcra.js';
import type { Policy } from '../policies/index.js';
import { tokenBucket } from '../policies/token-bucket.js';

/**
 * How a key's rate is spent under `shape: 'auto'`: `'pacing'` (GCRA, evenly
 * spaced) or `'quota'` (a token bucket spent in bursts, aligned to the
 * upstream's quota window).
 *
 * @example
 * ```ts
 * const s: Shape = (await api.stats('https://api.example')).shape;
 * ```
 */
export type Shape = 'pacing' | 'quota';

/**
 * What `shape: 'auto'` knows of a key, and why it spends the rate as it does.
 *
 * @example
 * ```ts
 * const { shape, reason } = await api.stats('https://api.example');
 * console.log(`${shape}: ${reason}`);
 * ```
 */
export interface ShapeStats {
  readonly shape: Shape;
  /** The plan version the shape was applied at (rising; 1 for the starting pace). */
  readonly version: number;
  /** Accepted answers with quota headers and a reset this process saw (the fleet's verdict may come from others'). */
  readonly quotaAnswers: number;
  /** Why: in words, for logs and dashboards. */
  readonly reason: string;
}

/** The version of the pace every key starts under: below any version the fleet learns (seconds since 2025). */
const START_VERSION = 1;

/** What shape 'auto' needs of a limiter: a limiter with plans. */
type ShapedLimiter = Pick<Limiter, 'setPolicy' | 'invalidate' | 'policies'>;

/** One key's shape as this process knows it. */
interface KnownShape {
  shape: number;
  version: number;
  evidence: number;
  burstIntolerant: boolean;
}

/**
 * The shapes of a limiter's keys: each key's plan is the shape it learned
 * (the limiter answers by a resolver), moved with `invalidate` when it
 * changes; each key starts its new shape afresh (carry 'reset', at a newer version).
 * @internal
 *
 * @example
 * ```ts
 * const shaper = new AutoShape(new Limiter({ name: 'partner', policy: gcra({ limit: 50, period: '1s' }), store }), store.sharedPace);
 * ```
 */
export class AutoShape {
  readonly #limiter: ShapedLimiter;
  readonly #shared: SharedPace | undefined;
  readonly #plans: readonly [PlanAnswer & { policy: Policy }, PlanAnswer & { policy: Policy }];
  readonly #keys = new Map<string, KnownShape>();

  readonly #onChange: ((shape: Shape) => void) | undefined;
  /** The ms between two calls at the rate being shaped. */
  readonly intervalMs: number;

  /** `onChange`: told each shape this process applies to a key (for metrics). */
  constructor(limiter: ShapedLimiter, shared: SharedPace | undefined, onChange?: (shape: Shape) => void) {
    this.#onChange = onChange;
    if (typeof limiter.setPolicy !== 'function' || typeof limiter.invalidate !== 'function') {
      throw new ConfigError('shape', 'auto', "a Limiter with plans (one with a name) for shape 'auto', which moves each key between GCRA pacing and a token bucket");
    }
    const { count, periodMs } = shapedRate(limiter.policies);
    this.intervalMs = periodMs / count;
    const pacing = gcra({ limit: count, period: periodMs, burst: 1 });
    const quota = tokenBucket({ capacity: count, refill: count, period: periodMs, mode: 'interval' });
    this.#plans = [
      { policy: pacing, version: START_VERSION },
      { policy: quota, version: START_VERSION },
    ];
    this.#limiter = limiter;
    this.#shared = shared;
    // Every key starts paced; a key whose shape is known answers it.
    const resolver = (key: string) => {
      const known = this.#keys.get(key);
      if (known === undefined) return this.#plans[SHAPE_PACING]!;
      return { policy: this.#plans[known.shape === SHAPE_QUOTA ? SHAPE_QUOTA : SHAPE_PACING]!.policy, version: known.version };
    };
    try {
      // 'reset' (each key starts its new shape afresh, at a newer version):
      // a pacing key's one unit used would otherwise be a whole bucket used,
      // and the upstream's own window (the shared pace's quota) is what
      // keeps the fleet within its quota across the change.
      limiter.setPolicy(resolver, { carry: 'reset' });
    } catch (error) {
      throw new ConfigError('shape', 'auto', `a Limiter with plans (one with a name) for shape 'auto' (${(error as Error).message})`);
    }
  }

  /** What a booking said the fleet learned for `key` (a shape and its version, whether it saw a burst refused): applied if newer. */
  observe(key: string, shape: number, version: number, burstIntolerant = false): void {
    if (shape < 0) return;
    const known = this.#known(key);
    if (burstIntolerant) known.burstIntolerant = true;
    if (version <= known.version) return;
    const changed = known.shape !== shape;
    known.shape = shape;
    known.version = version;
    this.#limiter.invalidate(key);
    if (changed) this.#onChange?.(shape === SHAPE_QUOTA ? 'quota' : 'pacing');
  }

  /**
   * What an answer showed: `'quota'` (accepted, with quota headers and a
   * reset) or `'burst'` (refused while its headers said quota remained). Resolves once the
   * verdict (the fleet's, or this process's) is applied.
   */
  async learn(key: string, evidence: 'quota' | 'burst'): Promise<void> {
    const known = this.#known(key);
    // Nothing to learn: a quota answer for a key already spending quota, or after a burst verdict.
    if (evidence === 'quota' && (known.shape === SHAPE_QUOTA || known.burstIntolerant)) return;
    if (evidence === 'burst' && known.burstIntolerant && known.shape === SHAPE_PACING) return;
    const learned: LearnedShape | undefined = this.#shared === undefined ? undefined : await this.#shared.learn(key, evidence);
    if (learned !== undefined) {
      known.evidence = learned.evidence;
      if (evidence === 'burst') known.burstIntolerant = true;
      this.observe(key, learned.shape, learned.version);
      return;
    }
    // This process alone (no shared pace, or the store did not answer): the same rule as pace.lua's.
    if (evidence === 'burst') {
      known.burstIntolerant = true;
      if (known.shape !== SHAPE_PACING) this.observe(key, SHAPE_PACING, known.version + 1);
    } else {
      known.evidence++;
      if (known.evidence >= QUOTA_EVIDENCE) this.observe(key, SHAPE_QUOTA, known.version + 1);
    }
  }

  /** Whether `key` spends its rate as a quota now. */
  isQuota(key: string): boolean {
    return this.#keys.get(key)?.shape === SHAPE_QUOTA;
  }

  /** How `key` stands, and why. */
  stats(key: string): ShapeStats {
    const known = this.#keys.get(key);
    const shape: Shape = known?.shape === SHAPE_QUOTA ? 'quota' : 'pacing';
    const evidence = known?.evidence ?? 0;
    const reason =
      shape === 'quota'
        ? `quota-bound: ${QUOTA_EVIDENCE} accepted answers carried quota headers with a reset, and no call was refused while quota remained`
        : known?.burstIntolerant
          ? 'burst-intolerant: a call was refused while the upstream said quota remained'
          : `starting pace: ${evidence} of ${QUOTA_EVIDENCE} accepted answers with quota headers seen, no burst refused yet`;
    return { shape, version: known?.version ?? START_VERSION, quotaAnswers: evidence, reason };
  }

  #known(key: string): KnownShape {
    let known = this.#keys.get(key);
    if (known === undefined) {
      // Bounded: a key forgotten starts paced again at START_VERSION, below
      // any version the fleet learned, so that a shared store's record of
      // the key's newer plan still decides it until it is learned again.
      if (this.#keys.size >= PLAN_CACHE_KEYS) this.#keys.delete(this.#keys.keys().next().value!);
      known = { shape: SHAPE_PACING, version: START_VERSION, evidence: 0, burstIntolerant: false };
      this.#keys.set(key, known);
    }
    return known;
  }
}

/**
 * The rate of a gcra or tokenBucket policy, `count` per `periodMs` (a
 * bucket's refill), or undefined for any other gate.
 * @internal
 *
 * @example
 * ```ts
 * rateOf(gcra({ limit: 50, period: '1s' })); // { count: 50, periodMs: 1000 }
 * ```
 */
export function rateOf(policy: unknown): { count: number; periodMs: number } | undefined {
  const p = policy as { kind?: string; limit?: number; refill?: number; periodMs?: number } | undefined;
  if (p?.kind === 'gcra') return { count: p.limit!, periodMs: p.periodMs! };
  if (p?.kind === 'tokenBucket') return { count: p.refill!, periodMs: p.periodMs! };
  return undefined;
}

/** The rate of a limiter's one gcra or tokenBucket gate, what shape 'auto' spends. */
function shapedRate(policies: readonly unknown[] | undefined): { count: number; periodMs: number } {
  const rate = policies?.length === 1 ? rateOf(policies[0]) : undefined;
  if (rate === undefined) throw new ConfigError('shape', 'auto', "a limiter whose policy is one gcra or tokenBucket (its rate is what shape 'auto' spends)");
  return rate;
}
