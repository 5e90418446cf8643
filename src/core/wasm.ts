// The one runtime-facing file of the core: it turns the embedded bytes into an
// instance. `new WebAssembly.Module(bytes)` works unchanged in Node, Bun, Deno
// and bundlers, needs no fs, fetch or Deno permission, and is synchronous, so a
// limiter is usable the moment it is constructed.
import { coreWasmBase64 } from '../../build/core-wasm.js';

/** The exports of assembly/index.ts. Pointers are byte offsets into `memory`. */
export interface CoreExports {
  readonly memory: WebAssembly.Memory;
  init(initialBits: number, maxBits: number, evict: number, maxPolicies: number, batchEntries: number): number;
  resultPtr(): number;
  stepPtr(): number;
  step(kind: number, p0: number, p1: number, p2: number, live: number, a: number, b: number, c: number, cost: number, t: number): void;
  batchPtr(): number;
  setPolicy(id: number, kind: number, p0: number, p1: number, p2: number): void;
  seed(a: number, b: number, c: number, d: number): void;
  keyPtr(): number;
  hashToBatch(key: number, entry: number): void;
  decide(key: number, gate0: number, gates: number, cost: number, now: number, dryRun: number): number;
  reserve(key: number, gate0: number, gates: number, cost: number, now: number, maxWait: number): number;
  refund(key: number, gate0: number, gates: number, cost: number, now: number): void;
  reset(key: number, gate0: number, gates: number, now: number): void;
  decideBatch(n: number, gate0: number, gates: number, now: number, dryRun: number): number;
  putState(key: number, gate: number, a: number, b: number, c: number, exp: number, now: number): number;
  evictions(): number;
  refusals(): number;
  growths(): number;
  slots(): number;
  tableBytes(): number;
  bucketOf(key: number, gate: number): number;
  check(now: number): number;
  live(now: number): number;
  clear(): void;
}

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
