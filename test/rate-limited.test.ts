// @rateLimited: calls wait per resource key, pass `this`, arguments and
// results through, and are rejected at compile time unless async.
//
// Vitest (Vite 8, oxc) leaves TC39 decorators untransformed and Node 20 cannot
// parse them, so the decorated classes live in test/types/rate-limited.ts and
// run here after the TypeScript compiler lowers their decorators. Time is
// faked: `acquire` sleeps with setTimeout, and every clock reads Date.now().
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { EmbeddedStore } from '../build/lib/src/stores/embedded/embedded-store.js';
import { AcquireTimeoutError, ArgumentError, ConfigError } from '../build/lib/src/errors.js';
import { gcra } from '../build/lib/src/policies/index.js';
import { rateLimited, type RateLimitedOptions } from '../build/lib/src/scheduler/rate-limited.js';

type Fixture = typeof import('./types/rate-limited.js');

const root = fileURLToPath(new URL('..', import.meta.url));
const clock = () => Date.now();
let fixture: Fixture;

beforeAll(async () => {
  const source = readFileSync(new URL('./types/rate-limited.ts', import.meta.url), 'utf8');
  const { outputText, diagnostics } = ts.transpileModule(source, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
    fileName: 'rate-limited.ts',
    reportDiagnostics: true,
  });
  expect(diagnostics ?? []).toEqual([]);
  // Lowered: no decorator syntax left for Node to choke on.
  expect(outputText).toContain('__esDecorate');
  expect(outputText).not.toMatch(/^\s*@rateLimited/m);
  // Two levels below the root like the source, so its '../../build/lib/src/*.js' imports
  // resolve to the same modules this test imports (one ConfigError class).
  const dir = fileURLToPath(new URL('../build/rate-limited-test/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}rate-limited.ts`, outputText);
  fixture = (await import(/* @vite-ignore */ `${dir}rate-limited.ts`)) as Fixture;
});

describe('@rateLimited', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs two calls for a resource at once (t=0, t=1s) and makes the third wait until the window opens (t=3s)', async () => {
    const r = new (fixture.reconcilerClass(clock))('r');
    const a = { id: 'a' };
    const first = r.reconcile(a);
    await vi.advanceTimersByTimeAsync(1000);
    const second = r.reconcile(a);
    const third = r.reconcile(a, 'third');
    await vi.advanceTimersByTimeAsync(0);
    expect(r.runs.map((run) => run.at)).toEqual([0, 1000]);
    await vi.advanceTimersByTimeAsync(1999); // t = 2999
    expect(r.runs).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1); // t = 3000
    expect(r.runs.map((run) => [run.note, run.at])).toEqual([['', 0], ['', 1000], ['third', 3000]]);
    await expect(Promise.all([first, second, third])).resolves.toEqual(['r reconciled a', 'r reconciled a', 'r reconciled a (third)']);
  });

  it('leaves other resources unaffected while one waits', async () => {
    const r = new (fixture.reconcilerClass(clock))('r');
    const calls = [r.reconcile({ id: 'a' }), r.reconcile({ id: 'a' }), r.reconcile({ id: 'a' }, 'waits')];
    await vi.advanceTimersByTimeAsync(500);
    calls.push(r.reconcile({ id: 'b' }), r.reconcile({ id: 'b' }));
    await vi.advanceTimersByTimeAsync(0);
    expect(r.runs.map((run) => [run.id, run.at])).toEqual([['a', 0], ['a', 0], ['b', 500], ['b', 500]]);
    await vi.advanceTimersByTimeAsync(2500);
    expect(r.runs.map((run) => [run.id, run.note, run.at]).at(-1)).toEqual(['a', 'waits', 3000]);
    await Promise.all(calls);
  });

  it('shares one budget per method across instances, each call keeping its own this, arguments and result', async () => {
    const Reconciler = fixture.reconcilerClass(clock);
    const one = new Reconciler('one');
    const two = new Reconciler('two');
    const results = [one.reconcile({ id: 'x' }, 'n1'), two.reconcile({ id: 'x' }, 'n2'), two.reconcile({ id: 'x' }, 'n3')];
    await vi.advanceTimersByTimeAsync(0);
    expect(one.runs.map((run) => [run.name, run.note, run.at])).toEqual([['one', 'n1', 0]]);
    expect(two.runs.map((run) => [run.name, run.note, run.at])).toEqual([['two', 'n2', 0]]);
    await vi.advanceTimersByTimeAsync(3000);
    expect(two.runs.map((run) => [run.note, run.at])).toEqual([['n2', 0], ['n3', 3000]]);
    await expect(Promise.all(results)).resolves.toEqual(['one reconciled x (n1)', 'two reconciled x (n2)', 'two reconciled x (n3)']);
    // A class defined anew is decorated anew: a fresh limiter, a fresh budget.
    const fresh = new (fixture.reconcilerClass(clock))('fresh');
    await expect(fresh.reconcile({ id: 'x' })).resolves.toBe('fresh reconciled x');
    expect(fresh.runs.map((run) => run.at)).toEqual([3000]);
  });

  it("propagates the method's error, and the failed call still counts", async () => {
    const r = new (fixture.reconcilerClass(clock))('r');
    const failed = expect(r.reconcile({ id: 'a' }, 'fail')).rejects.toThrow('reconcile of a failed');
    const ok = r.reconcile({ id: 'a' }, 'ok');
    const late = r.reconcile({ id: 'a' }, 'late');
    await failed;
    await vi.advanceTimersByTimeAsync(2999);
    expect(r.runs.map((run) => [run.note, run.at])).toEqual([['fail', 0], ['ok', 0]]);
    await vi.advanceTimersByTimeAsync(1);
    await expect(Promise.all([ok, late])).resolves.toEqual(['r reconciled a (ok)', 'r reconciled a (late)']);
    expect(r.runs.map((run) => [run.note, run.at])).toEqual([['fail', 0], ['ok', 0], ['late', 3000]]);
  });

  it('rejects a call that would wait longer than maxWaitMs without running or charging it', async () => {
    const r = new (fixture.reconcilerClass(clock, 500))('r');
    await r.reconcile({ id: 'a' });
    await vi.advanceTimersByTimeAsync(1000);
    await r.reconcile({ id: 'a' });
    const error = await r.reconcile({ id: 'a' }, 'too late').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect((error as AcquireTimeoutError).waitMs).toBe(2000);
    expect(r.runs.map((run) => run.note)).toEqual(['', '']);
    // Within 500 ms of the window opening, a call waits instead.
    await vi.advanceTimersByTimeAsync(1600); // t = 2600
    const waited = r.reconcile({ id: 'a' }, 'waited');
    await vi.advanceTimersByTimeAsync(400);
    await expect(waited).resolves.toBe('r reconciled a (waited)');
    expect(r.runs.map((run) => [run.note, run.at]).at(-1)).toEqual(['waited', 3000]);
  });

  it('takes a custom policy: GCRA paces each key', async () => {
    const client = new (fixture.pacedClientClass(clock))();
    const counts = [client.get('x', '/1'), client.get('x', '/2'), client.get('y', '/1'), client.get('x', '/3')];
    await vi.advanceTimersByTimeAsync(1000);
    expect(client.sent.map((s) => [s.host, s.path, s.at])).toEqual([['x', '/1', 0], ['y', '/1', 0], ['x', '/2', 500], ['x', '/3', 1000]]);
    await expect(Promise.all(counts)).resolves.toEqual([1, 3, 2, 4]);
  });

  it('gives each decorated method its own limiter, even from one decorator value', async () => {
    const both = new (fixture.twoMethodsClass(clock))();
    await expect(Promise.all([both.first('k'), both.second('k')])).resolves.toEqual(['first k', 'second k']);
    const again = both.first('k');
    let settled = false;
    void again.then(() => (settled = true));
    await vi.advanceTimersByTimeAsync(999);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await expect(again).resolves.toBe('first k');
  });

  it('decorates static and private methods, with stacked gates and a shared store', async () => {
    const Shapes = fixture.shapesClass(new EmbeddedStore({ maxKeys: 1000 }));
    const shapes = new Shapes();
    await expect(Shapes.onClass('a')).resolves.toBe('static a');
    await expect(shapes.callSecret('b')).resolves.toBe('private b');
    await expect(shapes.both('t', 7)).resolves.toBe('t/7');
    expect(Shapes.prototype.both.name).toBe('both');
  });

  it('rejects the call when the key function throws, without running the method', async () => {
    const method = vi.fn(async () => 'ran');
    const decorated = byHand({ limit: 1, within: '1s', key: () => { throw new Error('no key'); } }, method);
    await expect(decorated.call({})).rejects.toThrow('no key');
    expect(method).not.toHaveBeenCalled();
  });

  it.each([
    ['a number', 42],
    ['an empty string', ''],
    ['undefined', undefined],
  ])('rejects the call with ArgumentError (key) when the key is %s', async (_, key) => {
    const method = vi.fn(async () => 'ran');
    const decorated = byHand({ limit: 1, within: '1s', key: () => key as string }, method);
    const error = await decorated.call({}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ArgumentError);
    expect((error as ArgumentError).parameter).toBe('key');
    expect(method).not.toHaveBeenCalled();
  });

  it('refuses to decorate anything but a method', () => {
    const decorator = rateLimited({ limit: 1, within: '1s', key: () => 'k' });
    const getterContext = { ...methodContext('g'), kind: 'getter' } as unknown as ClassMethodDecoratorContext;
    expect(() => decorator(async () => 'x', getterContext)).toThrow(TypeError);
  });
});

describe('@rateLimited options, checked when the class is defined', () => {
  const key = (id: string) => id;
  const policy = gcra({ limit: 1, period: '1s' });
  it.each([
    ['both limit/within and policy', { limit: 1, within: '1s', policy, key }, 'policy'],
    ['neither limit/within nor policy', { key }, 'policy'],
    ['within without limit', { within: '1s', key }, 'limit'],
    ['limit without within', { limit: 2, key }, 'within'],
    ['a zero limit', { limit: 0, within: '1s', key }, 'limit'],
    ['an unparseable within', { limit: 1, within: 'soon', key }, 'within'],
    ['no key function', { limit: 1, within: '1s' }, 'key'],
    ['a key that is not a function', { limit: 1, within: '1s', key: 'id' }, 'key'],
    ['a negative maxWaitMs', { limit: 1, within: '1s', key, maxWaitMs: -1 }, 'maxWaitMs'],
    ['a policy that is not one', { policy: { kind: 'gcra' }, key }, 'policy'],
    ['a store that is not one', { limit: 1, within: '1s', key, store: {} }, 'store'],
    ['a clock that is not a function', { limit: 1, within: '1s', key, clock: 0 }, 'clock'],
  ])('throws ConfigError for %s', (_, options, parameter) => {
    const error = catchError(() => fixture.defineWith(options as unknown as RateLimitedOptions<[id: string]>));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).parameter).toBe(parameter);
  });

  it('throws ConfigError for options that are not an object', () => {
    expect(() => rateLimited(null as unknown as RateLimitedOptions)).toThrow(ConfigError);
  });
});

describe('@rateLimited types (tsc)', () => {
  const config = 'test/types/tsconfig.json';
  const errorsFixture = fileURLToPath(new URL('./types/rate-limited-errors.ts', import.meta.url));

  it('compiles test/types: valid usages accepted, each @ts-expect-error met', async () => {
    const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
    const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
      execFile(process.execPath, [tsc, '-p', config, '--pretty', 'false'], { cwd: root, timeout: 60_000 }, (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, output: `${stdout}${stderr}` });
      });
    });
    expect(result.output).toBe('');
    expect(result.code).toBe(0);
  }, 60_000);

  it('rejects exactly the lines marked @ts-expect-error, and nothing else, once the markers are gone', () => {
    const marker = '// @ts-expect-error';
    const lines = readFileSync(errorsFixture, 'utf8').split('\n');
    // 1-based line numbers of the lines after each marker.
    const expected = lines.flatMap((line, i) => (line.trim() === marker ? [i + 2] : []));
    expect(expected.length).toBeGreaterThanOrEqual(8);
    const parsed = ts.getParsedCommandLineOfConfigFile(`${root}${config}`, {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    })!;
    const host = ts.createCompilerHost(parsed.options);
    const read = host.getSourceFile.bind(host);
    host.getSourceFile = (fileName, language, ...rest) =>
      fileName === errorsFixture
        ? ts.createSourceFile(fileName, lines.map((line) => line.replace(marker, '// (marker removed)')).join('\n'), language)
        : read(fileName, language, ...rest);
    const program = ts.createProgram(parsed.fileNames, parsed.options, host);
    const errors = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file === undefined ? 'global' : `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start!).line + 1}`;
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
    });
    const at = (line: number) => `${errorsFixture}:${line} `;
    expect(errors.filter((e) => !expected.some((line) => e.startsWith(at(line))))).toEqual([]);
    for (const line of expected) expect(errors.some((e) => e.startsWith(at(line))), `an error on line ${line}`).toBe(true);
  }, 60_000);
});

/** The context the runtime passes a decorator of an instance method named `name`. */
function methodContext(name: string): ClassMethodDecoratorContext {
  return {
    kind: 'method',
    name,
    static: false,
    private: false,
    metadata: {},
    access: { has: (o: object) => name in o, get: (o: object) => (o as Record<string, unknown>)[name] },
    addInitializer: () => {},
  } as ClassMethodDecoratorContext;
}

/** Applies @rateLimited(options) the way the runtime would, for keys no typed fixture could return. */
function byHand(options: RateLimitedOptions, method: () => Promise<string>): (this: object) => Promise<string> {
  return rateLimited(options)(method, methodContext('m') as ClassMethodDecoratorContext<unknown, () => Promise<string>>);
}

function catchError(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}
