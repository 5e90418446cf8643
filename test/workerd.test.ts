// The built package under real workerd (Cloudflare Workers' runtime), bundled
// as Wrangler bundles a Worker: esbuild with the `workerd` condition, ES
// module output, the .wasm import left external and given to workerd as a
// `wasm` module (Wrangler's CompiledWasm rule). workerd serves the bundle on
// a loopback port chosen now; the requests below check what a Worker gets.
// Miniflare and Wrangler need Node 22, so workerd runs directly from a
// generated capnp config.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coreWasmBase64 } from '../build/lib/build/core-wasm.js';

const workerd = fileURLToPath(new URL('../node_modules/.bin/workerd', import.meta.url));
const START_MS = 20_000;

// The README's Workers example, as written: inside the package, so that
// 'cellgate' resolves to this package's build.
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const readmeExample = /### Cloudflare Workers\n[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
const readmeEntry = fileURLToPath(new URL('../build/readme-workerd/worker.ts', import.meta.url));

/** The workers served, one service and socket each: the smoke worker and the README example. */
const workers = {
  main: { entry: fileURLToPath(new URL('./runtime/workerd/worker.ts', import.meta.url)) },
  readme: { entry: readmeEntry },
};
type Name = keyof typeof workers;

interface Bundle {
  text: string;
  /** The .wasm files it imports, which the config provides as modules. */
  wasm: string[];
}

/** Bundles `entry` for `conditions`, as Wrangler does. */
async function bundle(entry: string, conditions: string[], outfile: string): Promise<Bundle> {
  const wasm: string[] = [];
  // Wrangler's CompiledWasm rule: a .wasm import stays an import, of a module
  // named by its file, which the config then provides.
  const external: Plugin = {
    name: 'compiled-wasm',
    setup(b) {
      b.onResolve({ filter: /\.wasm$/ }, (args) => {
        wasm.push(resolve(args.resolveDir, args.path));
        return { path: `./${basename(args.path)}`, external: true };
      });
    },
  };
  await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'neutral', conditions, outfile, plugins: [external], logLevel: 'silent' });
  return { text: readFileSync(outfile, 'utf8'), wasm };
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => ok(port));
    });
  });
}

/** One service and one loopback socket per worker; each worker's modules are its bundle and its .wasm files. */
function config(served: { name: Name; port: number; bundle: Bundle }[]): string {
  const modules = (w: (typeof served)[number]) =>
    [`(name = "worker.js", esModule = embed "${w.name}/worker.js")`, ...w.bundle.wasm.map((f) => `(name = "${basename(f)}", wasm = embed "${w.name}/${basename(f)}")`)].join(',\n      ');
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    ${served.map((w) => `(name = "${w.name}", worker = (modules = [\n      ${modules(w)}\n    ], compatibilityDate = "2025-01-01"))`).join(',\n    ')}
  ],
  sockets = [
    ${served.map((w) => `(name = "${w.name}", address = "127.0.0.1:${w.port}", http = (), service = "${w.name}")`).join(',\n    ')}
  ],
);
`;
}

let dir: string;
let child: ChildProcess | undefined;
let log = '';
const base = {} as Record<Name, string>;
const bundles = {} as Record<Name, Bundle>;
let defaultBundle: Bundle;

/** Polls until workerd answers on `url`, it exits, or START_MS pass. */
async function started(url: string): Promise<void> {
  const deadline = Date.now() + START_MS;
  while (Date.now() < deadline) {
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) throw new Error(`workerd exited (${child?.exitCode ?? child?.signalCode}):\n${log}`);
    try {
      await (await fetch(url)).arrayBuffer();
      return;
    } catch {
      await new Promise((ok) => setTimeout(ok, 50));
    }
  }
  throw new Error(`workerd did not answer on ${url} within ${START_MS} ms:\n${log}`);
}

beforeAll(async () => {
  if (readmeExample === undefined) throw new Error('README.md has no ```ts block under "### Cloudflare Workers"');
  mkdirSync(dirname(readmeEntry), { recursive: true });
  writeFileSync(readmeEntry, readmeExample);
  dir = mkdtempSync(join(tmpdir(), 'cellgate-workerd-'));
  const served = [];
  for (const name of Object.keys(workers) as Name[]) {
    const b = await bundle(workers[name].entry, ['workerd', 'worker', 'browser'], join(dir, name, 'worker.js'));
    for (const file of b.wasm) copyFileSync(file, join(dir, name, basename(file)));
    bundles[name] = b;
    const port = await freePort();
    base[name] = `http://127.0.0.1:${port}`;
    served.push({ name, port, bundle: b });
  }
  defaultBundle = await bundle(workers.main.entry, [], join(dir, 'default', 'worker.js'));
  writeFileSync(join(dir, 'config.capnp'), config(served));
  child = spawn(workerd, ['serve', 'config.capnp'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (b: Buffer) => (log += b));
  child.stderr!.on('data', (b: Buffer) => (log += b));
  // Any path answers once workerd is up (the README worker limits it under an empty header key, used by no test).
  for (const name of Object.keys(workers) as Name[]) await started(`${base[name]}/global`);
}, START_MS + 15_000);

afterAll(() => {
  // Always, even when starting failed: no workerd outlives the suite.
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const get = async (path: string, init?: RequestInit, worker: Name = 'main') => {
  const res = await fetch(`${base[worker]}${path}`, init);
  return { res, body: await res.text() };
};
const getJson = async <T>(path: string): Promise<T> => {
  const { res, body } = await get(path);
  expect(res.status, `${path}: ${body}\n${log}`).toBe(200);
  return JSON.parse(body) as T;
};
const compiles = (text: string) => text.split('new WebAssembly.Module(').length - 1;
interface Fields {
  allowed: boolean;
  remaining: number;
  retryAfterMs: number;
  source: string;
}

describe('cellgate under workerd', () => {
  it('bundles the .wasm module for workerd, and the base64 bytes only for the other runtimes', () => {
    const marker = coreWasmBase64.slice(0, 64);
    expect(bundles.main.wasm.map((f) => basename(f))).toEqual(['core.wasm']);
    expect(readFileSync(bundles.main.wasm[0]!)).toEqual(Buffer.from(coreWasmBase64, 'base64'));
    expect(bundles.main.text).not.toContain(marker);
    // Once: the worker's own probe (/compile), never the package's compile.
    expect(compiles(bundles.main.text)).toBe(1);
    expect(bundles.main.text).toContain('from "./core.wasm"');
    // The same check fails for the default variant: it is not vacuous.
    expect(defaultBundle.wasm).toEqual([]);
    expect(defaultBundle.text).toContain(marker);
    expect(compiles(defaultBundle.text)).toBe(2);
  });

  it('refuses to compile wasm bytes at run time, so the limiter below runs on the imported module', async () => {
    const r = await getJson<{ compiled: boolean; error?: string }>('/compile');
    expect(r.compiled).toBe(false);
    expect(r.error).toMatch(/disallowed by embedder/);
  });

  it('limitSync admits exactly the burst, then denies with a retry time', async () => {
    const ds = await getJson<Fields[]>('/sync?key=sync&n=5');
    expect(ds.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
    expect(ds.map((d) => d.remaining)).toEqual([2, 1, 0, 0, 0]);
    expect(ds[0]!.source).toBe('local');
    expect(ds[3]!.retryAfterMs).toBeGreaterThan(0);
    // The state outlives the request: the next one is still denied.
    const [again] = await getJson<Fields[]>('/sync?key=sync');
    expect(again!.allowed).toBe(false);
    expect(again!.retryAfterMs).toBeGreaterThan(0);
  });

  it('keeps distinct keys independent, a unicode key among them', async () => {
    const unicode = 'ключ:🔑:日本';
    const a = await getJson<Fields[]>(`/sync?key=${encodeURIComponent(unicode)}&n=4`);
    expect(a.map((d) => d.allowed)).toEqual([true, true, true, false]);
    const b = await getJson<Fields[]>('/sync?key=other&n=1');
    expect(b[0]!.allowed).toBe(true);
    expect(b[0]!.remaining).toBe(2);
    // A prefix of the key is another key.
    const c = await getJson<Fields[]>(`/sync?key=${encodeURIComponent('ключ:🔑:日')}&n=1`);
    expect(c[0]!.allowed).toBe(true);
  });

  it('a concurrency permit holds its slot until released', async () => {
    const r = await getJson<{ held: Fields; whileHeld: Fields; after: Fields }>('/permit?key=slot');
    expect([r.held.allowed, r.whileHeld.allowed, r.after.allowed]).toEqual([true, false, true]);
    expect(r.whileHeld.remaining).toBe(0);
  });

  it('limitManySync decides a batch in order', async () => {
    const ds = await getJson<Fields[]>('/many?keys=m1,m2,m1,m1,m1,m2');
    expect(ds.map((d) => d.allowed)).toEqual([true, true, true, true, false, true]);
    expect(ds[4]!.retryAfterMs).toBeGreaterThan(0);
  });

  it("the Fetch adapter answers 200 with RateLimit headers, then 429 with Retry-After", async () => {
    const headers = { 'x-api-key': 'tenant-1' };
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 4; i++) {
      const { res, body } = await get('/api', { headers });
      statuses.push(res.status);
      if (res.status === 200) expect(body).toBe('hello');
      last = res;
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(last!.headers.get('ratelimit-policy')).toBe('"gcra";q=1;w=3600');
    expect(last!.headers.get('ratelimit')).toMatch(/^"gcra";r=0;t=\d+$/);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another key is untouched.
    const other = await get('/api', { headers: { 'x-api-key': 'tenant-2' } });
    expect(other.res.status).toBe(200);
    expect(other.res.headers.get('ratelimit')).toMatch(/^"gcra";r=2;t=\d+$/);
  });

  it('a limiter built at global scope (where workerd forbids random values) seeds itself at its first decision, in a handler', async () => {
    const { globalScope, decisions } = await getJson<{ globalScope: string; decisions: { allowed: boolean; source: string }[] }>('/global?n=4&key=global-scope');
    expect(globalScope).toBe('constructed');
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false]);
    // The state lives on across requests: the same limiter, the same table.
    const again = await getJson<{ decisions: { allowed: boolean }[] }>('/global?n=1&key=global-scope');
    expect(again.decisions.map((d) => d.allowed)).toEqual([false]);
  });

  it("the default key, 'ip', finds no peer address: every client shares ip:unknown", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await get('/ip', { headers: { 'x-forwarded-for': `198.51.100.${i}` } })).res.status);
    expect(statuses).toEqual([200, 200, 200, 429]);
  });

  it("the README's Workers example limits each cf-connecting-ip", async () => {
    const from = (ip: string) => get('/', { headers: { 'cf-connecting-ip': ip } }, 'readme');
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 3; i++) {
      const { res, body } = await from('203.0.113.7');
      statuses.push(res.status);
      if (res.status === 200) expect(body).toBe('hello');
      last = res;
    }
    expect(statuses).toEqual([200, 200, 429]);
    expect(last!.headers.get('ratelimit-policy')).toBe('"gcra";q=10;w=60');
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await from('203.0.113.8')).res.status).toBe(200);
    expect(bundles.readme.wasm.map((f) => basename(f))).toEqual(['core.wasm']);
  });
});
