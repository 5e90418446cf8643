// The README's examples run as written: every ```ts block that imports
// 'cellgate' is run as a module against the built package.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../src/cli/redis-server.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((code) => code.includes("from 'cellgate'"));

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
  it('has runnable examples', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(5);
  });

  // Inside the package, so that 'cellgate' resolves to this package's build.
  const dir = fileURLToPath(new URL('../build/readme/', import.meta.url));
  mkdirSync(dir, { recursive: true });

  it.each(blocks.map((code, i) => [i, code] as const))('example %i runs', async (i, code) => {
    const file = `${dir}example-${i}.ts`;
    writeFileSync(file, code);
    const { code: exit, stdout, stderr } = await runModule(file);
    expect(stderr).toBe('');
    expect(exit).toBe(0);
    // Every example shows something (branches may skip some of its logs).
    if (code.includes('console.log(')) expect(stdout.trim()).not.toBe('');
    // Where the example states its output in a comment after the call, it must be that output.
    for (const [, expected] of code.matchAll(/console\.log\([^\n]*\);\s*\/\/ (true [^\n]+)/g)) {
      expect(stdout).toContain(expected);
    }
    for (const [, expected] of code.matchAll(/\n\s*\/\/ (true [^\n]+)/g)) {
      expect(stdout).toContain(expected);
    }
  });
});
