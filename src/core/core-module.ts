// The compiled core for Node, Bun, Deno and bundlers (package.json's
// `#core-module`, condition `default`): the bytes embedded as base64 in
// build/core-wasm.ts, compiled here. `new WebAssembly.Module(bytes)` needs no
// fs, fetch or Deno permission and is synchronous, so a limiter is usable the
// moment it is constructed. Cloudflare Workers forbid compiling bytes at run
// time: they get core-module.workerd.ts instead.
import { coreWasmBase64 } from '../../build/core-wasm.js';

let compiled: WebAssembly.Module | undefined;

/**
 * The core's compiled module, compiled from the embedded bytes on the first
 * call and kept for the process.
 *
 * @example
 * ```ts
 * const exports = new WebAssembly.Instance(coreModule(), {}).exports;
 * ```
 */
export function coreModule(): WebAssembly.Module {
  if (compiled === undefined) {
    const text = atob(coreWasmBase64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    compiled = new WebAssembly.Module(bytes);
  }
  return compiled;
}
