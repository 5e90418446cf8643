// The benchmark harness's own correctness (not its figures): bench/index.ts in
// its shortest mode (--smoke: embedded rows at 10k keys, a few seconds) with
// --json prints exactly one JSON document on stdout, every numeric cell is
// finite, and every row counts its decisions and its admitted share.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runGroup } from '../bench/harness.js';

const root = fileURLToPath(new URL('..', import.meta.url));

function numbers(value: unknown, path: string, out: [string, number][]): void {
  if (typeof value === 'number') out.push([path, value]);
  else if (Array.isArray(value)) value.forEach((v, i) => numbers(v, `${path}[${i}]`, out));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) numbers(v, `${path}.${k}`, out);
}

describe('bench harness (--smoke --json)', () => {
  it('prints one parseable JSON document with finite cells and admitted shares', () => {
    const stdout = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/index.ts', '--smoke', '--json'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    }).toString();
    const doc = JSON.parse(stdout) as {
      rows: { group: string; contender: string; decisions: number; allowed: number; admittedShare: number; perSecond: number; flagged: string | null; expectedSource: string | null; sourceShare: number | null }[];
      memory: { bytesPerKey: number }[];
      goals: { status: string; figure: string }[];
    };
    const cells: [string, number][] = [];
    numbers(doc, '$', cells);
    expect(cells.length).toBeGreaterThan(0);
    for (const [path, v] of cells) expect(Number.isFinite(v), path).toBe(true);
    expect(doc.rows.length).toBeGreaterThanOrEqual(8);
    for (const r of doc.rows) {
      expect(r.decisions, r.contender).toBeGreaterThan(0);
      expect(r.allowed, r.contender).toBeLessThanOrEqual(r.decisions);
      expect(r.admittedShare, r.contender).toBeCloseTo(r.allowed / r.decisions, 10);
      expect(r.perSecond, r.contender).toBeGreaterThan(0);
      // Every embedded row is a 10k-key spread or one hot key at 1000/s: cellgate's must all be local and unflagged.
      if (r.expectedSource !== null) expect(r.sourceShare, r.contender).toBe(1);
      expect(r.flagged, r.contender).toBeNull();
    }
    // 10k keys at 1000/s with a burst of 10: a spread of keys is nearly all admitted by every contender (limiter's buckets are filled).
    for (const r of doc.rows.filter((x) => x.group.includes('10,000 keys'))) expect(r.admittedShare, r.contender).toBeGreaterThan(0.9);
    for (const m of doc.memory) expect(m.bytesPerKey).toBeGreaterThan(0);
    for (const g of doc.goals) {
      expect(['met', 'MISSED', 'not measured']).toContain(g.status);
      expect(g.figure).not.toMatch(/NaN|undefined/);
    }
  }, 90_000);

  it('flags a row whose decisions came from another source and keeps it out of comparison', async () => {
    const rows = await runGroup(
      'flag check',
      [
        // As a strict Redis row decided by the fallback: 3 of 4 decisions from elsewhere.
        { name: 'off source', source: { expect: 'redis', minShare: 1 }, step: () => ({ made: 4, allowed: 2, offSource: 3 }) },
        { name: 'on source', source: { expect: 'redis', minShare: 1 }, step: () => ({ made: 4, allowed: 4, offSource: 0 }) },
        { name: 'peer', step: async () => ({ made: 4, allowed: 0 }) },
      ],
      { sliceMs: 5, rounds: 2 },
    );
    const [off, on, peer] = rows as [(typeof rows)[0], (typeof rows)[0], (typeof rows)[0]];
    expect(off.flagged).toMatch(/25\.0% of decisions from 'redis'/);
    expect(off.sourceShare).toBe(0.25);
    expect(off.admittedShare).toBe(0.5);
    expect(on.flagged).toBeNull();
    expect(on.sourceShare).toBe(1);
    expect(peer.flagged).toBeNull();
    expect(peer.sourceShare).toBeNull();
    expect(peer.admittedShare).toBe(0);
    for (const r of rows) {
      expect(r.rounds).toHaveLength(2);
      expect(r.decisions % 4).toBe(0);
    }
  });
});

describe('concurrency bench (--smoke --json)', () => {
  it('prints one JSON document: every row counts its operations, keeps to the limit in flight, and is unflagged', () => {
    const stdout = execFileSync(process.execPath, ['--import', 'tsx', 'bench/concurrency.ts', '--smoke', '--json'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    }).toString();
    const doc = JSON.parse(stdout) as {
      limit: number;
      rows: { group: string; contender: string; decisions: number; allowed: number; admittedShare: number; perSecond: number; flagged: string | null; expectedSource: string | null; sourceShare: number | null; p50Ms: number | null; peakInFlight: number | null }[];
    };
    const cells: [string, number][] = [];
    numbers(doc, '$', cells);
    for (const [path, v] of cells) expect(Number.isFinite(v), path).toBe(true);
    // In process: cellgate, p-limit and bottleneck async; cellgate's sync rows (no peer decides a slot synchronously).
    expect(doc.rows.map((r) => r.contender.split(' ')[0])).toEqual(['cellgate', 'p-limit', 'bottleneck', 'cellgate', 'cellgate', 'for']);
    for (const r of doc.rows) {
      expect(r.decisions, r.contender).toBeGreaterThan(0);
      expect(r.admittedShare, r.contender).toBeCloseTo(r.allowed / r.decisions, 10);
      expect(r.perSecond, r.contender).toBeGreaterThan(0);
      expect(r.flagged, r.contender).toBeNull();
      if (r.expectedSource !== null) expect(r.sourceShare, r.contender).toBe(1);
      if (r.group.includes('async')) {
        // Every acquire ends admitted; the tasks in flight never pass the limit and the latency is timed.
        expect(r.admittedShare, r.contender).toBe(1);
        expect(r.peakInFlight, r.contender).toBeGreaterThanOrEqual(1);
        expect(r.peakInFlight, r.contender).toBeLessThanOrEqual(doc.limit);
        expect(r.p50Ms, r.contender).not.toBeNull();
      } else expect(r.peakInFlight, r.contender).toBeNull();
    }
  }, 90_000);
});
