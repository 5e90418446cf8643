// The compiled core for Cloudflare Workers (package.json's `#core-module`,
// condition `workerd`). workerd refuses to compile wasm from bytes at run time
// ("Wasm code generation disallowed by embedder"); a .wasm module imported as
// a module is compiled by the runtime at load (Wrangler's CompiledWasm rule,
// workerd's `wasm` module type) and arrives as a WebAssembly.Module. The file
// is build/core.wasm, which scripts/build-wasm.mjs also copies beside the
// compiled library (build/lib/build/core.wasm), so this relative import holds
// from src/ and from build/lib/src/ alike. No base64 bytes in this variant.
import compiled from '../../build/core.wasm';

/**
 * The core's compiled module, as workerd compiled it at load.
 *
 * @example
 * ```ts
 * const exports = new WebAssembly.Instance(coreModule(), {}).exports;
 * ```
 */
export function coreModule(): WebAssembly.Module {
  return compiled;
}
