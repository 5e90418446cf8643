// The README's examples run as written: every ```ts block that imports
// 'cellgate' is run as a module against the built package, and prints
// exactly what its output comments say. The convention (stated in the
// README): `// → text` is a line the example prints, `// ≈ text` one whose
// numbers differ from run to run (compared with every number masked); in
// order, one comment per printed line, trailing a statement or on a line
// of its own. Any other comment is prose.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../build/lib/src/cli/redis-server.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const fences = [...readme.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, code: m[2]! }));
const runs = (f: { lang: string; code: string }) => f.lang === 'ts' && /from 'cellgate(?:\/\w+)?'/.test(f.code);
const blocks = fences.filter(runs).map((f) => f.code);


const OUTPUT = /\/\/ ([→≈]) (.*)$/;

/** The output comments of `code`, in order. */
function stated(code: string): { exact: boolean; text: string }[] {
  return code.split('\n').flatMap((line) => {
    const m = OUTPUT.exec(line);
    return m === null ? [] : [{ exact: m[1] === '→', text: m[2]!.trimEnd() }];
  });
}

/** A line with every number masked: what a `// ≈` comment states of it. */
const shape = (line: string) => line.replace(/\d+/g, '#');

// The Redis examples connect to REDIS_URL: a real server started for them.
let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
}, 30_000);
afterAll(async () => {
  await redis?.stop();
});

function runModule(file: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env, REDIS_URL: redis.url };
    execFile(process.execPath, ['--import', 'tsx', file], { cwd: root, env, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

describe('README examples', () => {
  it('has runnable examples, and output comments only in them', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    // An output stated in a block that is not run would never be checked.
    expect(fences.filter((f) => !runs(f)).flatMap((f) => stated(f.code))).toEqual([]);
  });

  // Inside the package, so that 'cellgate' resolves to this package's build.
  const dir = fileURLToPath(new URL('../build/readme/', import.meta.url));
  mkdirSync(dir, { recursive: true });

  it.each(blocks.map((code, i) => [i, code] as const))('example %i runs and prints what it says', async (i, code) => {
    const file = `${dir}example-${i}.ts`;
    writeFileSync(file, code);
    const { code: exit, stdout, stderr } = await runModule(file);
    expect(stderr).toBe('');
    expect(exit).toBe(0);
    const printed = stdout === '' ? [] : stdout.replace(/\n$/, '').split('\n');
    const says = stated(code);
    // Numbers vary only where the example reads a clock.
    if (says.some((s) => !s.exact)) expect(code).toMatch(/Date\.now\(\)|performance\.now\(\)/);
    expect(printed.map((line, n) => (says[n]?.exact === false ? shape(line) : line))).toEqual(says.map((s) => (s.exact ? s.text : shape(s.text))));
  });
});
