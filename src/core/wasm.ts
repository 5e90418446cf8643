// The one runtime-facing file of the core: it instantiates the compiled module.
// Where the module comes from depends on the runtime, and is chosen by
// package.json's subpath import `#core-module`: compiled from the embedded
// bytes (core-module.ts: Node, Bun, Deno, bundlers; synchronous, no fs, fetch
// or permission), or imported as a .wasm module under the `workerd` condition
// (core-module.workerd.ts: Cloudflare Workers, which forbid compiling bytes).
import type { CoreExports } from '../../build/abi.js';
import { coreModule } from '#core-module';

// The exports' signatures are generated from abi/abi.mjs, with everything
// else the core and its host share.
export type { CoreExports };

/**
 * Creates a fresh core instance, with its own memory; the module is compiled
 * once per process.
 *
 * @example
 * ```ts
 * const core = instantiateCore();
 * core.init(10, 20, 0, 8, 64);
 * ```
 */
export function instantiateCore(): CoreExports {
  return new WebAssembly.Instance(coreModule(), {}).exports as unknown as CoreExports;
}
