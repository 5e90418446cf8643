// The bursty demand of `cellgate simulate`'s pods, shared by the
// acquire-then-send pod (pod.ts) and the limitedFetch one (fetch-loop.ts).
import type { PodConfig } from './pod.js';

/**
 * Starts `demand.count` calls of `one(asked)` at once every `demand.everyMs`
 * from `start + demand.phaseMs` until `end` (performance.now() times), and
 * resolves when every call started has settled.
 *
 * @example
 * ```ts
 * await bursts({ count: 20, everyMs: 500, deadlineMs: 250 }, start, start + 3000, (asked) => callOnce(asked));
 * ```
 */
export async function bursts(demand: NonNullable<PodConfig['demand']>, start: number, end: number, one: (asked: number) => Promise<void>): Promise<void> {
  const waiting = new Set<Promise<void>>();
  for (let i = 0; ; i++) {
    const at = start + (demand.phaseMs ?? 0) + i * demand.everyMs;
    if (at >= end) break;
    const sleep = at - performance.now();
    if (sleep > 0) await new Promise((r) => setTimeout(r, sleep));
    const asked = performance.now();
    for (let j = 0; j < demand.count; j++) {
      const w = one(asked);
      waiting.add(w);
      void w.finally(() => waiting.delete(w));
    }
  }
  await Promise.all(waiting);
}
