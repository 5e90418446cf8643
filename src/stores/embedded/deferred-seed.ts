// A store whose hash seed cannot be drawn when it is built: Cloudflare
// Workers forbid random values at global scope, where a limiter is usually
// built, and allow them in a handler. The core is then handed out behind a
// wrapper that draws and sets the seed at the first keyed call (necessarily
// in a handler, before any key was hashed: the table is still empty, so no
// state was placed under another seed). Elsewhere the store gets the core
// itself, and this costs nothing.
import type { CoreExports } from '../../core/wasm.js';

/** The exports that hash a key (or a batch of keys): each needs the seed set first. */
const KEYED = ['hashToBatch', 'hashBatch', 'bucketOf', 'check', 'decide', 'reserve', 'refund', 'reset', 'putState', 'getState', 'charge', 'release', 'renew'] as const satisfies readonly (keyof CoreExports)[];

/**
 * `core` with its keyed exports seeding it first: `draw()` is called at the
 * first of them and its 16 bytes set as the seed; if it still throws (a
 * keyed call at global scope), the call throws that, unhashed, after
 * `refused()` (the caller forgets the key it wrote for the call).
 * @internal
 *
 * @example
 * ```ts
 * const core = seedAtFirstUse(instantiateCore(), () => hashSeed(), () => views.forgetKey());
 * core.decide(...); // seeds, then decides
 * ```
 */
export function seedAtFirstUse(core: CoreExports, draw: () => Int32Array, refused: () => void): CoreExports {
  let seeded = false;
  const seed = () => {
    if (seeded) return;
    let s: Int32Array;
    try {
      s = draw();
    } catch (error) {
      refused();
      throw error;
    }
    core.seed(s[0]!, s[1]!, s[2]!, s[3]!);
    seeded = true;
  };
  const wrapped: Record<string, unknown> = { ...core };
  for (const name of KEYED) {
    const f = core[name] as (...args: number[]) => number;
    wrapped[name] = (...args: number[]) => {
      seed();
      return f(...args);
    };
  }
  return wrapped as unknown as CoreExports;
}
