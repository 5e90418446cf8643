// Several OS processes ("pods") running a fixture script against one Redis:
// each prints a first line when connected, all start together on "go", and
// each prints its result as its last line, a JSON object. Bounded in time.
import { spawn, type ChildProcess } from 'node:child_process';

/** A started pod: its process, and its result once it exits. */
export interface Pod {
  readonly process: ChildProcess;
  readonly result: Promise<Record<string, unknown> | undefined>;
  /** When the pods were told to go (epoch ms, just before). */
  readonly wentAt: number;
}

/**
 * Starts one pod per argument list (`node script ...args`), waits until each
 * has said it is ready, then tells them all to go at once.
 *
 * @example
 * ```ts
 * const pods = await runPods(worker, [['6379', 'hammer'], ['6379', 'hammer']]);
 * const results = await Promise.all(pods.map((p) => p.result));
 * ```
 */
export async function runPods(script: string, args: string[][], timeoutMs = 20_000, env: Record<string, string> = {}): Promise<Pod[]> {
  const pods = args.map((a) => {
    const child = spawn(process.execPath, [script, ...a], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    const result = new Promise<Record<string, unknown> | undefined>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`pod timed out: ${out.slice(0, 200)}`));
      }, timeoutMs);
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk;
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        const lines = out.trim().split('\n');
        // A pod killed on purpose has no result.
        resolve(signal === null && code === 0 ? (JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>) : undefined);
      });
    });
    return { process: child, result, wentAt: 0 };
  });
  await Promise.all(pods.map((pod) => new Promise<void>((resolve) => pod.process.stdout!.once('data', () => resolve()))));
  const wentAt = Date.now();
  for (const pod of pods) pod.process.stdin!.end('go\n');
  return pods.map((pod) => ({ ...pod, wentAt }));
}
