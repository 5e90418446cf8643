// A .wasm file imported as a module (core-module.workerd.ts): Wrangler and
// workerd give its compiled WebAssembly.Module as the default export.
declare module '*.wasm' {
  const compiled: WebAssembly.Module;
  export default compiled;
}
