// The `cellgate` command: `simulate` runs real pod processes against a mock
// upstream and must show what each scenario exists to show; its SVG must be
// well-formed XML. Needs the build (npm run build) and, for every scenario but stampede,
// redis-server (findRedis() throws saying what to install when it is missing).
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { findRedis } from '../build/lib/src/cli/redis-server.js';
import type { PhaseReport, ScenarioReport } from '../build/lib/src/cli/simulate/run.js';

type Report = ScenarioReport;
type Phase = PhaseReport;

const BIN = fileURLToPath(new URL('../bin/cellgate.mjs', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'cellgate-simulate-test-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function run(args: string[], timeoutMs = 20_000, bin = BIN): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The number on the table row starting with `label`. */
function figure(stdout: string, label: string): number {
  const line = stdout.split('\n').find((l) => l.trimStart().startsWith(`${label} `));
  if (line === undefined) throw new Error(`no "${label}" row in:\n${stdout}`);
  const match = /^\s*[a-z0-9 ]+?\s{2,}(-?[\d.]+)/i.exec(line);
  if (match === null) throw new Error(`no number on "${line}"`);
  return Number(match[1]);
}

const ENTITY = /^&(?:amp|lt|gt|quot|apos|#\d+|#x[\da-f]+);/i;
const TAG = /<(\/?)([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/y;

/**
 * A strict little well-formedness check: one root element, every tag closed
 * in order, attributes quoted and not repeated, every & an entity, no stray <.
 * Returns the problem, or undefined.
 */
function xmlProblem(text: string): string | undefined {
  const stack: string[] = [];
  let roots = 0;
  let i = text.startsWith('<?xml') ? text.indexOf('?>') + 2 : 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '<') {
      if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i);
        if (end < 0) return `unterminated comment at ${i}`;
        i = end + 3;
        continue;
      }
      TAG.lastIndex = i;
      const m = TAG.exec(text);
      if (m === null) return `malformed tag at ${i}: ${text.slice(i, i + 40)}`;
      const [whole, closing, name, attrs, selfClosing] = m;
      const names = [...attrs!.matchAll(/([A-Za-z_][\w.:-]*)\s*=/g)].map((a) => a[1]);
      if (new Set(names).size !== names.length) return `repeated attribute in ${whole}`;
      for (const a of attrs!.matchAll(/&[^;"']*;?/g)) if (!ENTITY.test(a[0])) return `bad entity ${a[0]} in ${whole}`;
      if (closing) {
        if (selfClosing || attrs) return `malformed closing tag ${whole}`;
        const open = stack.pop();
        if (open !== name) return `</${name}> closes <${open}>`;
      } else {
        if (stack.length === 0 && ++roots > 1) return `second root element <${name}>`;
        if (!selfClosing) stack.push(name!);
      }
      i += whole.length;
    } else if (c === '&') {
      if (!ENTITY.test(text.slice(i, i + 12))) return `bad entity at ${i}: ${text.slice(i, i + 12)}`;
      i++;
    } else {
      if (stack.length === 0 && !/\s/.test(c)) return `text outside the root at ${i}`;
      i++;
    }
  }
  if (stack.length > 0) return `unclosed <${stack.join('>, <')}>`;
  return roots === 1 ? undefined : 'no root element';
}

describe('the SVG checker', () => {
  it('accepts well-formed and rejects malformed XML', () => {
    expect(xmlProblem('<svg a="1"><title>x &amp; y</title><g/></svg>')).toBeUndefined();
    expect(xmlProblem('<svg><g></svg>')).toBeDefined();
    expect(xmlProblem('<svg><title>x & y</title></svg>')).toBeDefined();
    expect(xmlProblem('<svg a=1></svg>')).toBeDefined();
    expect(xmlProblem('<svg a="1" a="2"></svg>')).toBeDefined();
    expect(xmlProblem('<svg></svg><svg></svg>')).toBeDefined();
  });
});

function checkSvg(path: string, pods: number) {
  const svg = readFileSync(path, 'utf8').trim();
  expect(svg.startsWith('<svg')).toBe(true);
  expect(svg.endsWith('</svg>')).toBe(true);
  expect(xmlProblem(svg)).toBeUndefined();
  expect(svg).toMatch(/<title>[^<]+<\/title>/);
  expect(svg).toContain('time since go (s)');
  expect(svg).toContain('requests per 100 ms');
  // One row per pod in the strip under the chart, pod 0 to pods - 1.
  expect([...svg.matchAll(/>pod (\d+)<\/text>/g)].map((m) => Number(m[1]))).toEqual(Array.from({ length: pods }, (_, i) => i));
  const html = readFileSync(path.replace(/\.svg$/, '.html'), 'utf8');
  expect(html).toContain(svg);
}

function checkConsistent(stdout: string, pods: number, perSecond = 50, seconds = 1) {
  // The run is the one asked for: its first line names the pods, the seconds
  // and the upstream rate that the utilization below is judged by.
  const header = /^cellgate simulate: \S+ \((\d+) pods, (\d+) s, upstream (?:quota )?(\d+)/.exec(stdout);
  expect(header?.slice(1).map(Number)).toEqual([pods, seconds, perSecond]);
  const sent = figure(stdout, 'requests sent');
  const ok = figure(stdout, 'upstream 2xx');
  const limited = figure(stdout, 'upstream 429');
  expect(stdout).not.toMatch(/^\s*errors /m);
  expect(ok + limited).toBe(sent);
  expect(sent).toBeGreaterThan(0);
  // A window sees no more than all requests, and the 1 s window at least what the 100 ms one does.
  const p100 = figure(stdout, 'peak in any 100 ms');
  const p1s = figure(stdout, 'peak in any 1 s');
  expect(p100).toBeLessThanOrEqual(p1s);
  expect(p1s).toBeLessThanOrEqual(sent);
  expect(figure(stdout, 'utilization')).toBeCloseTo((ok / (perSecond * seconds)) * 100, 0);
  expect(figure(stdout, 'admission wait p50')).toBeLessThanOrEqual(figure(stdout, 'admission wait p99'));
  return { sent, ok, limited, p100, p1s };
}

describe('cellgate simulate', () => {
  it('stampede: pods with their own limiters overrun the upstream', async () => {
    const { code, stdout, stderr } = await run(['simulate', '--scenario', 'stampede', '--pods', '4', '--seconds', '1', '--out', out]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const f = checkConsistent(stdout, 4);
    // 4 pods each admitting the full 50/s send about 4x what the upstream takes.
    expect(f.limited).toBeGreaterThan(f.ok);
    expect(f.p1s).toBeGreaterThan(55);
    checkSvg(join(out, 'stampede.svg'), 4);
  }, 20_000);

  it('shared-gcra: one GCRA in Redis keeps the fleet under the upstream limit', async () => {
    findRedis(); // throws saying what to install when redis-server is missing
    const { code, stdout, stderr } = await run(['simulate', '--scenario', 'shared-gcra', '--pods', '4', '--seconds', '1', '--out', out]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const f = checkConsistent(stdout, 4);
    // The fleet never admits more than the upstream could take in the run
    // (1 + 50/s x 1 s, plus a little for the pods' "go" arriving a few ms apart).
    expect(f.sent).toBeLessThanOrEqual(55);
    // Admissions are exact in Redis time, 20 ms apart; the upstream counts
    // arrivals in its own process. A request sent late (timer, scheduler, the
    // upstream's event loop) bunches with the next ones, and the upstream's
    // burst of 5 absorbs about 80 ms of that. On an oversubscribed machine one
    // hiccup beyond that can cost a single 429, never a herd.
    expect(f.limited).toBeLessThanOrEqual(1);
    // And the fleet still uses the upstream: at least 80% of 50 in 1 s.
    expect(f.ok).toBeGreaterThanOrEqual(40);
    expect(f.p1s).toBeLessThanOrEqual(55);
    checkSvg(join(out, 'shared-gcra.svg'), 4);
  }, 20_000);

  it('quota: an interval token bucket in Redis spends the whole quota, no 429s', async () => {
    findRedis();
    const { code, stdout, stderr } = await run(['simulate', '--scenario', 'quota', '--pods', '4', '--seconds', '1', '--out', out]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const f = checkConsistent(stdout, 4, 100);
    expect(f.limited).toBe(0);
    // 4 pods x 20 at 0 ms and again at 500 ms: 160 wanted, the window's 100 all used.
    expect(figure(stdout, 'utilization')).toBeGreaterThanOrEqual(80);
    expect(f.ok).toBeLessThanOrEqual(100);
    checkSvg(join(out, 'quota.svg'), 4);
  }, 20_000);

  it('pacing: a burst-1 GCRA at the quota rate avoids 429s but wastes quota and waits longer than quota', async () => {
    findRedis();
    const args = ['--pods', '4', '--seconds', '1', '--out', out];
    const q = await run(['simulate', '--scenario', 'quota', ...args]);
    const p = await run(['simulate', '--scenario', 'pacing', ...args]);
    expect(p.stderr).toBe('');
    expect(p.code).toBe(0);
    const fq = checkConsistent(q.stdout, 4, 100);
    const fp = checkConsistent(p.stdout, 4, 100);
    expect(fp.limited).toBe(0);
    // Under the same bursty demand (each request gives up after 250 ms), pacing
    // sends one request per 10 ms: about 25 per burst where quota sends the window's 100.
    expect(figure(p.stdout, 'utilization')).toBeLessThan(figure(q.stdout, 'utilization'));
    expect(figure(p.stdout, 'admission wait p99')).toBeGreaterThan(figure(q.stdout, 'admission wait p99'));
    expect(fp.ok).toBeLessThan(fq.ok);
    checkSvg(join(out, 'pacing.svg'), 4);
  }, 30_000);

  it('redis-outage: fallback { nodes } keeps the fleet near the limit while Redis is down; fallback open does not', async () => {
    findRedis();
    const args = ['--pods', '4', '--seconds', '2', '--out', out];
    const nodes = await run(['simulate', '--scenario', 'redis-outage', ...args]);
    const open = await run(['simulate', '--scenario', 'redis-outage-open', ...args]);
    for (const r of [nodes, open]) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^\s*redis down\s+\d/m);
      expect(figure(r.stdout, 'fallback decisions')).toBeGreaterThan(0);
    }
    const fn = checkConsistent(nodes.stdout, 4, 50, 2);
    const fo = checkConsistent(open.stdout, 4, 50, 2);
    // Each pod's fallback is a GCRA at 1/4 of the rate: the fleet stays about
    // at the limit (a few 429s at most, as the pods' slots are not phased);
    // open admits everything, so the outage is a burst of 429s.
    expect(fn.limited).toBeLessThan(fo.limited);
    expect(fn.limited).toBeLessThanOrEqual(20);
    expect(figure(open.stdout, '429 in outage')).toBeGreaterThan(50);
    expect(fn.ok).toBeGreaterThanOrEqual(60);
    checkSvg(join(out, 'redis-outage.svg'), 4);
    checkSvg(join(out, 'redis-outage-open.svg'), 4);
    expect(readFileSync(join(out, 'redis-outage.svg'), 'utf8')).toContain('Redis down');
  }, 40_000);

  it('misconfigured: a shared limit above the upstream\'s draws steady 429s', async () => {
    findRedis();
    const { code, stdout, stderr } = await run(['simulate', '--scenario', 'misconfigured', '--pods', '4', '--seconds', '2', '--out', out]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const f = checkConsistent(stdout, 4, 50, 2);
    // 75/s against 50/s: about a third rejected, and never zero.
    expect(f.limited).toBeGreaterThan(10);
    expect(f.sent).toBeGreaterThan(110);
    checkSvg(join(out, 'misconfigured.svg'), 4);
  }, 20_000);

  it('lock-contention: a lock-guarded leaky bucket and the shared GCRA, side by side', async () => {
    findRedis();
    const { code, stdout, stderr } = await run(['simulate', '--scenario', 'lock-contention', '--pods', '2', '--seconds', '1', '--out', out]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    // The defaults: the pods want 500/s (the rate locks are said to collapse
    // at) of an upstream, and limiters, at 600/s with burst 60.
    expect(stdout).toMatch(/^cellgate simulate: lock-contention \(2 pods, 1 s, upstream 600\/s with burst 60\)\n/);
    expect(stdout).toMatch(/^ +demand +500\/s in total/m);
    expect(stdout).toContain('SET lock NX PX 1000, retry every 10 ms');
    expect(stdout).toMatch(/^ +lock \+ leaky bucket +cellgate GCRA$/m);
    /** The row's two values: the lock's, then cellgate's. */
    const both = (label: string): [number, number] => {
      const line = stdout.split('\n').find((l) => l.trimStart().startsWith(`${label} `));
      const m = line && new RegExp(`^\\s*${label}\\s{2,}([\\d.]+)\\S*(?: ms)?\\s{2,}([\\d.]+)`).exec(line);
      if (!m) throw new Error(`no "${label}" row with two numbers in:\n${stdout}`);
      return [Number(m[1]), Number(m[2])];
    };
    const completed = both('requests completed');
    const ok = both('upstream 2xx');
    const limited = both('upstream 429');
    const dropped = both('not admitted by end');
    const p50 = both('admission wait p50');
    const p99 = both('admission wait p99');
    const p99All = both('wait p99 incl. unadmitted');
    expect(stdout).not.toMatch(/^\s*errors /m);
    for (const i of [0, 1]) {
      expect(ok[i]! + limited[i]!).toBe(completed[i]);
      // Open demand: 2 pods x 250/s x 1 s, every request either sent or still waiting at the end.
      expect(completed[i]! + dropped[i]!).toBe(500);
      expect(Number.isFinite(p50[i]) && Number.isFinite(p99[i])).toBe(true);
      expect(p50[i]).toBeLessThanOrEqual(p99[i]!);
      expect(p99[i]).toBeLessThanOrEqual(both('admission wait max')[i]!);
      expect(Number.isFinite(p99All[i])).toBe(true);
      expect(both('throughput')[i]).toBeCloseTo(completed[i]!, 0);
    }
    // The lock serializes the fleet and its waiters poll it in step: on this
    // 2-core machine it completes a fifth of the demand or less, most requests
    // waiting until the end of the run, where the GCRA completes nearly all of
    // it at a p99 under 100 ms. Asserted with wide margins (the machine is
    // often shared); the p99 counts the unadmitted, as the admitted-only p99
    // of a limiter that admits a few is of a few lucky requests.
    expect(completed[0]).toBeLessThan(completed[1]!);
    expect(completed[1]).toBeGreaterThanOrEqual(350);
    expect(p99All[0]).toBeGreaterThan(p99All[1]!);
    // One picture with both timelines, each with its wait panel.
    const svg = readFileSync(join(out, 'lock-contention.svg'), 'utf8').trim();
    expect(xmlProblem(svg)).toBeUndefined();
    expect(svg).toContain('(a) lock + leaky bucket');
    expect(svg).toContain('(b) cellgate GCRA');
    expect([...svg.matchAll(/admission wait of the requests sent in each 100 ms/g)]).toHaveLength(2);
    expect([...svg.matchAll(/>pod (\d+)<\/text>/g)].map((m) => Number(m[1]))).toEqual([0, 1, 0, 1]);
    const html = readFileSync(join(out, 'lock-contention.html'), 'utf8');
    expect(html).toContain(svg);
    expect(html).toContain('<td>lock + leaky bucket</td><td>cellgate GCRA</td>');
  }, 30_000);

  /** Runs `simulate --json` and returns its one document (stdout must be exactly one JSON value). */
  async function simulateJson(args: string[], timeoutMs: number): Promise<{ scenarios: Report[] }> {
    const { code, stdout, stderr } = await run(['simulate', ...args, '--json', '--out', out], timeoutMs);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout.endsWith('}\n')).toBe(true);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    return JSON.parse(stdout) as { scenarios: Report[] };
  }

  /** The figures every phase must agree with itself on. */
  function checkPhase(p: Phase) {
    expect(p.errors).toBe(0);
    expect(p.ok + p.limited).toBeGreaterThan(0);
    expect(p.after2s.ok + p.after2s.limited).toBe(p.after2s.sent);
    expect(p.after2s.ok).toBeLessThanOrEqual(p.ok);
    expect(p.after2s.limited).toBeLessThanOrEqual(p.limited);
  }

  it('retry-after: shared holds keep every call let go after a 429 out of its Retry-After; shared: false does not', async () => {
    findRedis();
    const doc = await simulateJson(['--scenario', 'retry-after', '--pods', '4', '--seconds', '3'], 40_000);
    expect(doc.scenarios.map((s) => s.scenario)).toEqual(['retry-after']);
    const [r] = doc.scenarios;
    const [a, b] = r!.phases;
    expect(r!.phases).toHaveLength(2);
    for (const p of [a!, b!]) {
      checkPhase(p);
      // The 1.5x limiter overruns the upstream: at least one 429, so at least one hold.
      expect(p.holds!.windows.length).toBeGreaterThan(0);
      expect(p.holds!.inFlight + p.holds!.late).toBe(p.holds!.inside);
    }
    // The top-level figures are (b)'s.
    expect(r!.sent).toBe(b!.sent);
    expect(r!.label).toBe(b!.label);
    // (b): an arrival inside a hold was let go before its 429 was handled
    // (in flight). Seen in about 1 run of 4 at 4 pods: one or two of a
    // pod's first calls, in the first 0.5 s, let go 8-30 ms after the
    // 429's pod had handled it, while every pod starts at once on 2 cores;
    // never later in a run. Bounded at 2, not 0, for that (see the report).
    expect(b!.holds!.late).toBeLessThanOrEqual(2);
    // (a): the pods not told keep calling through the hold.
    expect(a!.holds!.late).toBeGreaterThan(b!.holds!.late);
    expect(a!.holds!.late).toBeGreaterThanOrEqual(5);
    const svg = readFileSync(r!.svg, 'utf8');
    expect(xmlProblem(svg.trim())).toBeUndefined();
    expect(svg).toContain('>hold</text>');
  }, 60_000);

  it('quota-sync, auto-pacing, auto-quota: one JSON document for three scenarios, in order; after the first 2 s the fleet uses the upstream and is hardly refused', async () => {
    findRedis();
    const doc = await simulateJson(['--scenario', 'quota-sync,auto-pacing', '--scenario', 'auto-quota', '--pods', '4', '--seconds', '4'], 120_000);
    expect(doc.scenarios.map((s) => s.scenario)).toEqual(['quota-sync', 'auto-pacing', 'auto-quota']);
    const [q, pacing, quota] = doc.scenarios;
    expect(q!.upstream).toEqual({ mode: 'quota', quota: 50 });
    expect(pacing!.upstream).toEqual({ mode: 'bucket', rate: 50, burst: 2 });
    for (const s of doc.scenarios) {
      for (const p of s.phases) checkPhase(p);
      expect(xmlProblem(readFileSync(s.svg, 'utf8').trim())).toBeUndefined();
    }
    expect(q!.demand).toEqual({ count: 20, everyMs: 500, deadlineMs: 250 });
    expect(quota!.demand).toEqual(q!.demand);
    // auto-pacing's pods call back to back (see the scenario's description).
    expect(pacing!.demand).toBeUndefined();
    // quota-sync: a 2x too generous bucket; with the provider's counter followed
    // (b), its windows are not overrun after the first ones; without (a) each
    // window's reset lets the bucket's extra through, to be refused.
    expect(q!.phases).toHaveLength(2);
    const [blind, synced] = q!.phases as [Phase, Phase];
    expect(synced.after2s.limited).toBeLessThanOrEqual(2);
    expect(blind.after2s.limited).toBeGreaterThan(synced.after2s.limited + 10);
    expect(synced.after2s.ok).toBeGreaterThanOrEqual(0.8 * 50 * 2);
    // The auto shapes: at least 80% of either upstream's capacity after 2 s
    // (the README's default runs say how close to it), at most 2% refused.
    for (const s of [pacing!, quota!]) {
      expect(s.phases).toHaveLength(1);
      expect(s.after2s.ok).toBeGreaterThanOrEqual(0.8 * 50 * 2);
      expect(s.after2s.limited).toBeLessThanOrEqual(Math.max(1, 0.02 * s.after2s.sent));
      // Never more than the upstream could take, plus the refusals.
      expect(s.ok).toBeLessThanOrEqual(50 * 4 + 2);
    }
  }, 150_000);

  it('--json with an unknown scenario among several runs none of them', async () => {
    const { code, stdout, stderr } = await run(['simulate', '--scenario', 'stampede,thundering-herd', '--json', '--out', out]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('unknown scenario "thundering-herd"');
  });

  it('lock-contention: bad flags are a usage error', async () => {
    for (const flags of [['--rate', '0'], ['--demand', '0'], ['--demand', 'lots'], ['--pods', 'two'], ['--burst', '1.5'], ['--lock-ttl', '5']]) {
      const { code, stdout, stderr } = await run(['simulate', '--scenario', 'lock-contention', ...flags, '--out', out]);
      expect(code).toBe(2);
      expect(stdout).toBe('');
      expect(stderr).toMatch(/^cellgate: /);
    }
    // --demand belongs to lock-contention alone: elsewhere it would be silently ignored.
    const other = await run(['simulate', '--scenario', 'stampede', '--demand', '100', '--out', out]);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('--demand is for the lock-contention scenario only');
  });

  it('--help prints usage and exits 0', async () => {
    for (const args of [['--help'], ['simulate', '--help'], ['bench', '--help']]) {
      const { code, stdout } = await run(args);
      expect(code).toBe(0);
      expect(stdout).toMatch(/^Usage: cellgate/);
    }
    const help = (await run(['simulate', '--help'])).stdout;
    for (const name of ['stampede', 'shared-gcra', 'quota', 'pacing', 'redis-outage', 'redis-outage-open', 'misconfigured', 'lock-contention', 'retry-after', 'quota-sync', 'auto-pacing', 'auto-quota']) {
      expect(help).toMatch(new RegExp(`^  ${name} +\\S`, 'm'));
    }
  });

  it('an unknown scenario exits non-zero, naming it', async () => {
    const { code, stdout, stderr } = await run(['simulate', '--scenario', 'thundering-herd', '--out', out]);
    expect(code).not.toBe(0);
    expect(stdout).toBe('');
    expect(stderr).toContain('unknown scenario "thundering-herd"');
    expect(stderr).toContain('stampede');
  });

  it('bad options exit non-zero with a message', async () => {
    expect((await run(['simulate', '--scenario', 'stampede', '--pods', '0'])).stderr).toContain('--pods must be a positive integer');
    expect((await run(['simulate', '--scenario', 'stampede', '--nope'])).code).toBe(2);
    expect((await run(['simulate'])).stderr).toContain('--scenario is required');
    expect((await run(['frobnicate'])).stderr).toContain('unknown command "frobnicate"');
    const bench = await run(['bench', '--redis', 'localhost']);
    expect(bench.code).toBe(2);
    expect(bench.stderr).toContain('--redis must be a URL such as redis://host:6379');
  });
});

describe('bin/cellgate.mjs', () => {
  it('without the build says to build, exits 1', async () => {
    // The launcher alone, in a folder with no build/ next to it.
    const bare = mkdtempSync(join(tmpdir(), 'cellgate-launcher-test-'));
    try {
      cpSync(BIN, join(bare, 'bin', 'cellgate.mjs'));
      const result = await run(['--help'], 10_000, join(bare, 'bin', 'cellgate.mjs'));
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain('run npm run build first');
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });
});
