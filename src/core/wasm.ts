// The one runtime-facing file of the core: it turns the embedded bytes into an
// instance. `new WebAssembly.Module(bytes)` works unchanged in Node, Bun, Deno
// and bundlers, needs no fs, fetch or Deno permission, and is synchronous, so a
// limiter is usable the moment it is constructed.
import type { CoreExports } from '../../build/abi.js';
import { coreWasmBase64 } from '../../build/core-wasm.js';

// The exports' signatures are generated from abi/abi.mjs, with everything
// else the core and its host share.
export type { CoreExports };

let compiled: WebAssembly.Module | undefined;

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
  if (compiled === undefined) {
    const text = atob(coreWasmBase64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    compiled = new WebAssembly.Module(bytes);
  }
  return new WebAssembly.Instance(compiled, {}).exports as unknown as CoreExports;
}
