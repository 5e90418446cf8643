// How the Redis benchmarks measure (`cellgate bench --redis` and bench/):
// closed loops of concurrent callers, each timing its own calls, and the
// percentiles of those times. Every contender is measured by the same code.

/** One contender's figures in one row. */
export interface Measured {
  /** Decisions per second. */
  perSecond: number;
  /** Median and 99th percentile of the time per call, ms (NaN when calls are not timed one by one). */
  p50: number;
  p99: number;
  /** Decisions made, admitted or not, and how many were admitted. */
  decisions: number;
  admitted: number;
}

/**
 * The `p` quantile (0 to 1) of sorted numbers.
 *
 * @example
 * ```ts
 * percentile(Float64Array.from([1, 2, 3, 4]), 0.5); // 3
 * ```
 */
export function percentile(sorted: Float64Array, p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/**
 * `callers` concurrent callers, each deciding `pick()`'s key and waiting for
 * the answer before its next call, for `ms` milliseconds.
 *
 * @example
 * ```ts
 * const r = await closedLoop(async (key) => (await limiter.limit(key)).allowed, pickUniform(rng(1)), 1000, 3000);
 * r.perSecond; // decisions per second
 * ```
 */
export async function closedLoop(decide: (key: string) => Promise<boolean>, pick: () => string, callers: number, ms: number): Promise<Measured> {
  const latencies: number[] = [];
  let admitted = 0;
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        if (await decide(pick())) admitted++;
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = performance.now() - start;
  const sorted = Float64Array.from(latencies).sort();
  return { perSecond: (latencies.length / elapsed) * 1000, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), admitted, decisions: latencies.length };
}

/**
 * A synchronous decider called `perTurn` times per event-loop turn (so that
 * timers and I/O, a lease's refill, still run) for `ms` milliseconds; calls
 * are not timed one by one.
 *
 * @example
 * ```ts
 * const r = await syncLoop((key) => limiter.limitSync(key).allowed, pickHot(rng(1)), 1000, 3000);
 * ```
 */
export async function syncLoop(decide: (key: string) => boolean, pick: () => string, perTurn: number, ms: number): Promise<Measured> {
  let decisions = 0;
  let admitted = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (let i = 0; i < perTurn; i++) if (decide(pick())) admitted++;
    decisions += perTurn;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { perSecond: (decisions / (performance.now() - start)) * 1000, p50: NaN, p99: NaN, admitted, decisions };
}
