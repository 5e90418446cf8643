// The package as a consumer gets it: the tarball `npm pack` makes (from the
// build npm test has just made, so packing skips the prepack rebuild),
// installed offline into an empty project. Each check here is a defect once
// found that way: no LICENSE, source maps pointing at sources that do not
// ship, an install script that npm warns about, types that need @types/node.
// And the lockfile: a fresh clone's `npm install` must not rewrite it.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = join(root, 'node_modules/typescript/bin/tsc');
const TIMEOUT_MS = 60_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion. The npm_* variables of the npm running the
 * tests are dropped: they would make a nested npm act on this package
 * (its prefix, its config) instead of the directory it is run in.
 */
function run(command: string, args: string[], cwd: string): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)));
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env, timeout: TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

/** Fails with the command's output, which says why, unless it exited 0. */
function expectSuccess(r: Run, what: string): void {
  expect(r.code, `${what}:\n${r.stdout}\n${r.stderr}`).toBe(0);
}

interface Packed {
  filename: string;
  files: { path: string }[];
}

let dir: string;
let packed: Packed;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cellgate-package-test-'));
  const r = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], root);
  expectSuccess(r, 'npm pack');
  packed = (JSON.parse(r.stdout) as Packed[])[0]!;
}, TIMEOUT_MS);
afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('the packed tarball', () => {
  it('carries the MIT license that package.json names', () => {
    const paths = packed.files.map((f) => f.path);
    expect(paths).toContain('LICENSE');
    expect(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).license).toBe('MIT');
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) 2026 the cellgate authors\n/);
  });

  it('has source maps that need nothing outside the package', () => {
    const shipped = new Set(packed.files.map((f) => f.path));
    const maps = packed.files.filter((f) => f.path.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(0);
    const unresolved = maps.flatMap(({ path }) => {
      const map = JSON.parse(readFileSync(join(root, path), 'utf8')) as { sources: string[]; sourceRoot?: string; sourcesContent?: (string | null)[] };
      const embedded = map.sources.every((_, i) => typeof map.sourcesContent?.[i] === 'string');
      const inside = map.sources.every((s) => shipped.has(posix.join(posix.dirname(path), map.sourceRoot ?? '', s)));
      return embedded || inside ? [] : [path];
    });
    expect(unresolved).toEqual([]);
  });

  it('has no script that runs when it is installed', () => {
    // npm 11 warns about a dependency's install scripts (prepare included).
    const scripts = Object.keys(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts ?? {});
    expect(scripts).toContain('prepack');
    expect(scripts.filter((s) => ['preinstall', 'install', 'postinstall', 'prepare'].includes(s))).toEqual([]);
  });
});

describe('a consumer project without @types/node', () => {
  const consumer = () => join(dir, 'consumer');
  let install: Run;
  beforeAll(async () => {
    rmSync(consumer(), { recursive: true, force: true });
    mkdirSync(consumer());
    writeFileSync(join(consumer(), 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
    // A Fetch-only user's settings: DOM's Request and Response, no Node globals.
    const compilerOptions = { module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, types: [], lib: ['ES2022', 'DOM'], skipLibCheck: false };
    writeFileSync(join(consumer(), 'tsconfig.json'), JSON.stringify({ compilerOptions }));
    writeFileSync(
      join(consumer(), 'main.ts'),
      [
        "import { Limiter, gcra, type Decision } from 'cellgate';",
        "import { rateLimit, type NodeRequest } from 'cellgate/http';",
        "import { RedisStore, type RedisConnection } from 'cellgate/redis';",
        "export const makeStore = (client: RedisConnection): RedisStore => new RedisStore({ client, prefix: 'rl:' });",
        "const limiter = new Limiter({ policy: gcra({ limit: 10, period: '1s' }) });",
        "export const serve: (request: Request) => Promise<Response> = rateLimit(() => new Response('hello'), { limiter, key: { header: 'x-api-key' } });",
        'export const first: Decision = limiter.limitSync(\'k\');',
        "export const request: NodeRequest = { headers: { 'x-api-key': 'k' } };",
        '',
      ].join('\n'),
    );
    // The tarball has no dependencies (its peers are optional): nothing to fetch.
    install = await run('npm', ['install', '--offline', '--no-audit', '--no-fund', join(dir, packed.filename)], consumer());
  }, TIMEOUT_MS);

  it('installs the tarball offline, without an install-script warning', () => {
    expectSuccess(install, 'npm install');
    expect(install.stderr).not.toMatch(/install-scripts|prepare/);
  });

  it('type-checks cellgate, cellgate/http and cellgate/redis (skipLibCheck off)', async () => {
    expectSuccess(install, 'npm install');
    const r = await run(process.execPath, [tsc, '-p', consumer()], consumer());
    expectSuccess(r, 'tsc in the consumer');
  }, TIMEOUT_MS);
});

describe('package-lock.json', () => {
  it('is what npm install leaves it as (a fresh clone does not rewrite it)', async () => {
    // --package-lock-only reconciles package.json with the lock as a clone's
    // install does (a peer dependency added to package.json and not to the
    // lock was the case found), without node_modules or the network.
    const copy = join(dir, 'lock');
    mkdirSync(copy);
    for (const name of ['package.json', 'package-lock.json']) copyFileSync(join(root, name), join(copy, name));
    const r = await run('npm', ['install', '--package-lock-only', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], copy);
    expectSuccess(r, 'npm install --package-lock-only');
    expect(readFileSync(join(copy, 'package-lock.json'), 'utf8')).toBe(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  }, TIMEOUT_MS);
});
