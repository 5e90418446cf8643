// The harness every bench/index.ts row goes through: contenders of one group
// are run in interleaved rounds (one warm-up round, then A B C, A B C, ...),
// each round a time slice; a row reports the median decisions/s of its
// measured rounds, the decisions it counted as admitted (`allowed`) and, for
// cellgate, whether each Decision came from the intended `source`. A row whose
// decisions came from elsewhere is flagged and kept out of the ratios.
// Progress goes to stderr; stdout is left to the tables or, with --json, to
// one JSON document.

/** One batch of decisions: how many were made, admitted, and from an unintended source. */
export interface Step {
  made: number;
  allowed: number;
  /** Decisions whose `source` was not the contender's intended one (cellgate only). */
  offSource?: number;
  /** Per-call latencies in ms, for the serial rows. */
  latencies?: number[];
}

export interface Contender {
  name: string;
  /** Makes a batch of decisions; sync or async. */
  step: () => Step | Promise<Step>;
  /** The source cellgate's decisions must come from, and the share of them that must (1 = all). */
  source?: { expect: string; minShare: number };
}

export interface Row {
  group: string;
  contender: string;
  /** Median of the measured rounds. */
  perSecond: number;
  rounds: number[];
  decisions: number;
  allowed: number;
  admittedShare: number;
  /** Share of cellgate's decisions from the intended source; null for peers. */
  sourceShare: number | null;
  expectedSource: string | null;
  flagged: string | null;
  p50Ms: number | null;
  p99Ms: number | null;
}

export interface RunOptions {
  sliceMs: number;
  rounds: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const percentile = (sorted: Float64Array, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

let progressDone = 0;
let progressTotal = 0;
/** Declares how many rows the whole run will measure, for the `[i/n]` progress lines. */
export function planRows(n: number): void {
  progressTotal += n;
}
export const progress = (line: string) => process.stderr.write(`${line}\n`);

async function slice(c: Contender, ms: number, acc: { made: number; allowed: number; off: number; lat: number[] } | null): Promise<number> {
  let made = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    const r = c.step();
    const s = r instanceof Promise ? await r : r;
    made += s.made;
    if (acc) {
      acc.made += s.made;
      acc.allowed += s.allowed;
      acc.off += s.offSource ?? 0;
      if (s.latencies) for (const l of s.latencies) acc.lat.push(l);
    }
    now = performance.now();
  }
  // Lets timers and I/O run between slices (rate-limiter-flexible's and the Redis clients' work).
  await new Promise((r) => setImmediate(r));
  return (made / (now - start)) * 1000;
}

/** Runs one group's contenders in interleaved rounds after one warm-up round. */
export async function runGroup(group: string, contenders: Contender[], opts: RunOptions): Promise<Row[]> {
  const accs = contenders.map(() => ({ made: 0, allowed: 0, off: 0, lat: [] as number[] }));
  const rounds = contenders.map(() => [] as number[]);
  progress(`  ${group}: warm-up round (${contenders.length} contenders)`);
  for (const c of contenders) await slice(c, opts.sliceMs, null);
  for (let r = 0; r < opts.rounds; r++) {
    progress(`  ${group}: round ${r + 1} of ${opts.rounds}`);
    for (let i = 0; i < contenders.length; i++) rounds[i]!.push(await slice(contenders[i]!, opts.sliceMs, accs[i]!));
  }
  return contenders.map((c, i) => {
    progress(`[${++progressDone}/${progressTotal}] ${group}: ${c.name}`);
    const a = accs[i]!;
    const sourceShare = c.source ? (a.made - a.off) / a.made : null;
    let flagged: string | null = null;
    if (a.made === 0) flagged = 'no decisions made';
    else if (c.source && sourceShare! < c.source.minShare) {
      flagged = `only ${(100 * sourceShare!).toFixed(1)}% of decisions from '${c.source.expect}' (needs ${(100 * c.source.minShare).toFixed(0)}%)`;
    }
    const sorted = Float64Array.from(a.lat).sort();
    return {
      group,
      contender: c.name,
      perSecond: median(rounds[i]!),
      rounds: rounds[i]!,
      decisions: a.made,
      allowed: a.allowed,
      admittedShare: a.made ? a.allowed / a.made : 0,
      sourceShare,
      expectedSource: c.source?.expect ?? null,
      flagged,
      p50Ms: sorted.length ? percentile(sorted, 0.5) : null,
      p99Ms: sorted.length ? percentile(sorted, 0.99) : null,
    };
  });
}

/** Counts the decisions of a cellgate batch that did not come from `expect`. */
export function tally(ds: readonly { allowed: boolean; source: string }[], expect: string): Step {
  let allowed = 0;
  let off = 0;
  for (const d of ds) {
    if (d.allowed) allowed++;
    if (d.source !== expect) off++;
  }
  return { made: ds.length, allowed, offSource: off };
}

export const fmtRate = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0));
