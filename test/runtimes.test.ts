// Runs the per-runtime smoke suites in test/runtime/ under Bun, Deno and Node,
// each against the built package (npm test builds first), and requires each
// runner to report passes and no failures.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name: string) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));
const TIMEOUT_MS = 60_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

function run(command: string, args: string[]): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' };
  delete env.FORCE_COLOR;
  return new Promise((resolve) => {
    execFile(command, args, { cwd: root, env, timeout: TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const failure = error as (Error & { code?: number | string; signal?: NodeJS.Signals | null }) | null;
      const code = failure === null ? 0 : typeof failure.code === 'number' ? failure.code : null;
      const output = `${stdout}\n${stderr}\n${failure !== null && typeof failure.code === 'string' ? failure.message : ''}`;
      resolve({ code, signal: failure?.signal ?? null, output: output.replace(/\x1b\[[0-9;]*m/g, '') });
    });
  });
}

function count(output: string, pattern: RegExp): number {
  const match = pattern.exec(output);
  return match === null ? -1 : Number(match[1]);
}

const runtimes = [
  {
    name: 'bun',
    command: bin('bun'),
    args: ['test', './test/runtime/bun'],
    passed: /^\s*(\d+) pass$/m,
    failed: /^\s*(\d+) fail$/m,
  },
  {
    name: 'deno',
    // No permission flags: the package must load and run with none.
    command: bin('deno'),
    args: ['test', '--no-prompt', '--no-check', 'test/runtime/deno'],
    passed: /^ok \| (\d+) passed/m,
    failed: /\| (\d+) failed/,
  },
  {
    name: 'bun (cellgate/http under Bun.serve)',
    command: bin('bun'),
    args: ['test', './test/runtime/bun-http'],
    passed: /^\s*(\d+) pass$/m,
    failed: /^\s*(\d+) fail$/m,
  },
  {
    name: 'deno (cellgate/http under Deno.serve)',
    // A server needs the network: loopback only.
    command: bin('deno'),
    args: ['test', '--no-prompt', '--no-check', '--allow-net=127.0.0.1', 'test/runtime/deno-http'],
    passed: /^ok \| (\d+) passed/m,
    failed: /\| (\d+) failed/,
  },
  {
    name: 'node',
    command: process.execPath,
    args: ['--test', 'test/runtime/node/smoke.test.mjs'],
    passed: /^# pass (\d+)$/m,
    failed: /^# fail (\d+)$/m,
  },
];

describe('runtime smoke suites', () => {
  for (const runtime of runtimes) {
    it(`passes under ${runtime.name}`, async () => {
      const { code, signal, output } = await run(runtime.command, runtime.args);
      const context = `${runtime.name} ${runtime.args.join(' ')} (exit ${code}, signal ${signal}):\n${output}`;
      expect(signal, context).toBeNull();
      expect(code, context).toBe(0);
      expect(count(output, runtime.passed), context).toBeGreaterThan(0);
      expect(count(output, runtime.failed), context).toBe(0);
    }, TIMEOUT_MS + 10_000);
  }
});
