// The `cellgate` command: `doctor` (checks a Redis deployment), `bench` (the
// Redis store on the user's Redis, or the full harness in a clone) and
// `simulate` (a fleet of pods against a rate-limited mock upstream). Started
// by bin/cellgate.mjs from the build (build/lib/src/cli/main.js); not part of
// the package's exports. Output goes to stdout, progress to stderr (only on a
// terminal, and never with --json); an error is one line and exit status 2.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchRedis, formatBench } from './bench-redis.js';
import { doctor, formatReport } from './doctor.js';
import { parseRedisUrl } from './redis-clients.js';
import { SCENARIOS, scenarioDefaults, scenarioReport, simulate, type SimulateReport } from './simulate/run.js';
import { UsageError } from './usage-error.js';

/**
 * The package root: the nearest folder above this module with a package.json
 * (four levels up from build/lib/src/cli/, two from src/cli/ under a loader).
 */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

const ROOT = packageRoot();

const USAGE = `Usage: cellgate <command> [options]

Commands:
  doctor     check a Redis deployment before trusting it with limits (cellgate doctor --redis URL)
  bench      benchmark the Redis store on your Redis (cellgate bench --redis URL); in a clone, the full harness
  simulate   run a fleet of pods against a rate-limited mock upstream

Run "cellgate <command> --help" for a command's options.
`;

const CLIENT_HELP = `  --client NAME  the client library to connect with: ioredis, iovalkey or redis
                 (default: the first of them installed in this folder's project)`;

const BENCH_USAGE = `Usage: cellgate bench --redis URL [--quick] [--json] [--client NAME]
       cellgate bench [--quick] [--json]            (in a clone of the repository)

With --redis: cellgate's Redis store on that Redis (strict mode: 1000
concurrent callers over 10k keys, uniform and hot, and one caller for the
latency of a decision; leased mode on hot keys), with your client library,
beside rate-limiter-flexible's RateLimiterRedis when it is installed here.
Keys under cellgate-bench* are overwritten. Works from the installed package.

Without --redis, in a clone with its devDependencies: the full harness of
"npm run bench" (embedded and Redis stores against their peers, on a
redis-server it starts on loopback).

Options:
  --redis URL    redis://[user:password@]host:port (rediss:// for TLS); a Cluster node works too
  --quick        short timings (1 s a contender instead of 3 s)
  --json         print one JSON document on stdout, and no progress
${CLIENT_HELP}
  -h, --help     print this help
`;

const DOCTOR_USAGE = `Usage: cellgate doctor --redis URL [--prefix P] [--timeout MS] [--json] [--client NAME]

Checks a Redis deployment for cellgate, with your client library, and says
what to fix: reachability and round-trip latency, the server's version, the
topology (a Cluster's slot coverage), that the store's scripts load and
decide, maxmemory-policy on every master (an allkeys-* policy silently evicts
limiter state), persistence, the clock's offset, the fleet of stores alive
on the prefix, and a suggested timeoutMs. Exits 1 when a check fails.

Options:
  --redis URL    redis://[user:password@]host:port (rediss:// for TLS); a Cluster node works too
  --prefix P     the stores' prefix, to count the fleet (default cellgate:)
  --timeout MS   how long to wait for the connection and each check (default 2000)
  --json         print one JSON document on stdout, and no progress
${CLIENT_HELP}
  -h, --help     print this help
`;

const SIMULATE_USAGE = `Usage: cellgate simulate --scenario NAME[,NAME...] [--pods N] [--seconds S] [--out DIR] [--json]

N pod processes start at one instant and call a mock upstream on loopback that
admits RATE requests per second (a token bucket of BURST) and answers 429
beyond it. Prints what the upstream saw; writes NAME.svg and NAME.html to DIR.

Scenarios (all but stampede start a redis-server on a free loopback port, or use --redis):
  stampede           each pod has its own in-process GCRA at the full upstream rate: many 429s
  shared-gcra        the pods share one GCRA in Redis (strict) and acquire() their turn: no 429s
  quota              quota upstream (QUOTA per 1 s window), pods share an interval tokenBucket: quota used, no 429s
  pacing             same quota and bursty demand, pods share a pacing GCRA (burst 1): quota wasted, longer waits
  redis-outage       shared GCRA, fallback { nodes: N }; Redis killed mid-run for ~1 s: few 429s
  redis-outage-open  the same outage with fallback 'open': a burst of 429s while Redis is down
  misconfigured      shared GCRA set 1.5x above the upstream's limit: steady 429s
  lock-contention    500 requests/s wanted, first through a leaky bucket in Redis behind a SET NX lock
                     (retry every 10 ms), then the shared GCRA, both at 600/s: waits side by side
  retry-after        every 429 says Retry-After: 2; shared GCRA 1.5x too generous, through limitedFetch:
                     (a) shared: false, each pod holds alone; (b) holds shared fleet-wide in Redis
  quota-sync         quota upstream (QUOTA, default 50) with X-RateLimit-* headers, shared interval bucket
                     at 2x QUOTA, through limitedFetch: (a) quota: false; (b) remaining lowers the bucket
  auto-pacing        burst-1 upstream with X-RateLimit-Remaining/-Reset; limitedFetch shape: 'auto'
  auto-quota         the quota-sync upstream; limitedFetch shape: 'auto' over gcra({ limit: QUOTA })

Options:
  --scenario NAME  one of the scenarios above (required); several, run in order: a,b,c or --scenario repeated
  --pods N         number of pod processes (default 8)
  --seconds S      how long each pod calls the upstream (default 3; 8 for the last four)
  --out DIR        where to write the SVG and HTML (default ./cellgate-simulate/)
  --rate R         the upstream's limit, requests per second (default 50; lock-contention 600,
                   where both limiters pace at R)
  --burst B        the upstream's burst (default 5; lock-contention 60, auto-pacing 1)
  --demand D       lock-contention: requests per second the pods want in total (default 500)
  --quota Q        quota upstreams: the quota per 1 s window (default 100; quota-sync, auto-quota 50)
  --redis URL      an existing Redis instead of starting one (not for the redis-outage scenarios)
  --json           print one JSON document on stdout ({"scenarios":[...]}), no tables and no progress
  -h, --help       print this help
`;

type Flags = Record<string, { type: 'string' | 'boolean'; multiple?: true }>;
/** The parsed values of `Flags`, plus --help. */
type Values<F extends Flags> = { [K in keyof F]?: F[K]['type'] extends 'boolean' ? boolean : F[K]['multiple'] extends true ? string[] : string } & { help?: boolean };

/** Parses `args` strictly (no positionals, no unknown flags); a parse error is a usage error. */
function parse<F extends Flags>(args: string[], options: F, usage: string): Values<F> {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values as Values<F>;
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${usage}`);
  }
}

function positiveNumber(name: string, text: string | undefined, { integer = false, max = Infinity } = {}): number {
  const n = Number(text);
  if (text === undefined || text === '' || !Number.isFinite(n) || n <= 0 || n > max || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name} must be a positive ${integer ? 'integer' : 'number'}${max < Infinity ? ` no larger than ${max}` : ''}, got "${text}"`);
  }
  return n;
}

/** A progress line on stderr, on a terminal only and never with --json (stdout holds the document). */
function progressFor(json: boolean | undefined): (line: string) => void {
  if (json === true || process.stderr.isTTY !== true) return () => {};
  return (line) => process.stderr.write(`cellgate: ${line}\n`);
}

async function bench(args: string[]): Promise<number> {
  const v = parse(args, { quick: { type: 'boolean' }, json: { type: 'boolean' }, redis: { type: 'string' }, client: { type: 'string' } }, BENCH_USAGE);
  if (v.help) {
    process.stdout.write(BENCH_USAGE);
    return 0;
  }
  if (v.redis !== undefined) {
    const url = parseRedisUrl(v.redis);
    const report = await benchRedis(url, { durationMs: v.quick ? 1000 : 3000, ...(v.client !== undefined ? { client: v.client } : {}), progress: progressFor(v.json) });
    process.stdout.write(v.json ? `${JSON.stringify(report)}\n` : formatBench(report));
    return 0;
  }
  if (v.client !== undefined) throw new UsageError(`--client needs --redis\n\n${BENCH_USAGE}`);
  const entry = join(ROOT, 'bench', 'index.ts');
  let tsx: string | undefined;
  try {
    tsx = createRequire(join(ROOT, 'package.json')).resolve('tsx');
  } catch {
    tsx = undefined;
  }
  if (tsx === undefined || !existsSync(entry)) {
    throw new UsageError(`from the installed package, cellgate bench runs on your Redis: cellgate bench --redis redis://host:6379 (the full harness, "npm run bench", needs a clone of the repository)`);
  }
  return run([process.execPath, '--expose-gc', '--import', 'tsx', entry, ...(v.quick ? ['--quick'] : []), ...(v.json ? ['--json'] : [])]);
}

async function doctorCommand(args: string[]): Promise<number> {
  const v = parse(args, { redis: { type: 'string' }, prefix: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' }, client: { type: 'string' } }, DOCTOR_USAGE);
  if (v.help) {
    process.stdout.write(DOCTOR_USAGE);
    return 0;
  }
  if (v.redis === undefined) throw new UsageError(`--redis is required\n\n${DOCTOR_USAGE}`);
  const url = parseRedisUrl(v.redis);
  const prefix = v.prefix ?? 'cellgate:';
  if (prefix.length > 256 || /[{}]/.test(prefix)) throw new UsageError(`--prefix must be at most 256 characters without { or }, got ${JSON.stringify(prefix)}`);
  const timeoutMs = positiveNumber('timeout', v.timeout ?? '2000', { integer: true, max: 600_000 });
  const report = await doctor(url, { prefix, timeoutMs, ...(v.client !== undefined ? { client: v.client } : {}), progress: progressFor(v.json) });
  process.stdout.write(v.json ? `${JSON.stringify(report)}\n` : formatReport(report));
  return report.problems > 0 ? 1 : 0;
}

/** Runs a benchmark script from the package root with this terminal; resolves with its exit code. */
function run([command, ...args]: [string, ...string[]]): Promise<number> {
  const child = spawn(command, args, { cwd: ROOT, stdio: 'inherit' });
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
    child.once('error', (error) => {
      process.stderr.write(`cellgate bench: ${error.message}\n`);
      resolve(1);
    });
  });
}

async function simulateCommand(args: string[]): Promise<number> {
  const v = parse(
    args,
    {
      scenario: { type: 'string', multiple: true },
      pods: { type: 'string' },
      seconds: { type: 'string' },
      out: { type: 'string' },
      rate: { type: 'string' },
      burst: { type: 'string' },
      quota: { type: 'string' },
      demand: { type: 'string' },
      redis: { type: 'string' },
      json: { type: 'boolean' },
    },
    SIMULATE_USAGE,
  );
  if (v.help) {
    process.stdout.write(SIMULATE_USAGE);
    return 0;
  }
  const scenarios = (v.scenario ?? []).flatMap((list) => list.split(','));
  if (scenarios.length === 0) throw new UsageError(`--scenario is required\n\n${SIMULATE_USAGE}`);
  // Every name and flag is checked before the first scenario runs: a typo in the third must not cost the first two's minutes.
  const runs = scenarios.map((scenario) => {
    if (!Object.hasOwn(SCENARIOS, scenario)) {
      throw new UsageError(`unknown scenario "${scenario}"; known: ${Object.keys(SCENARIOS).join(', ')}`);
    }
    const defaults = scenarioDefaults(scenario);
    const options = {
      scenario,
      pods: positiveNumber('pods', v.pods ?? '8', { integer: true, max: 256 }),
      seconds: positiveNumber('seconds', v.seconds ?? String(defaults.seconds), { max: 3600 }),
      out: v.out ?? 'cellgate-simulate',
      rate: positiveNumber('rate', v.rate ?? String(defaults.rate), { max: 100_000 }),
      burst: positiveNumber('burst', v.burst ?? String(defaults.burst), { integer: true, max: 100_000 }),
      quota: positiveNumber('quota', v.quota ?? String(defaults.quota), { integer: true, max: 100_000 }),
      redis: v.redis,
      quiet: v.json === true,
    };
    if (v.demand !== undefined && defaults.demand === undefined) throw new UsageError(`--demand is for the lock-contention scenario only\n\n${SIMULATE_USAGE}`);
    const demand = defaults.demand === undefined ? {} : { demand: positiveNumber('demand', v.demand ?? String(defaults.demand), { max: 100_000 }) };
    return { ...options, ...demand };
  });
  const reports: SimulateReport['scenarios'] = [];
  for (const [i, options] of runs.entries()) {
    // Several tables: a blank line between them.
    if (i > 0 && v.json !== true) process.stdout.write('\n');
    reports.push(scenarioReport(await simulate(options)));
  }
  if (v.json === true) process.stdout.write(`${JSON.stringify({ scenarios: reports } satisfies SimulateReport)}\n`);
  return 0;
}

async function dispatch(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'bench') return bench(rest);
  if (command === 'doctor') return doctorCommand(rest);
  if (command === 'simulate') return simulateCommand(rest);
  throw new UsageError(`unknown command "${command}"\n\n${USAGE}`);
}

/**
 * Runs the command with `argv` (the arguments after `cellgate`) and resolves
 * with its exit code: 0; 1 when `doctor` finds a problem; 2 on an error (a
 * usage error, a Redis that cannot be reached: one line on stderr; the stack
 * with CELLGATE_DEBUG=1) or when no command was given.
 */
export async function main(argv: string[]): Promise<number> {
  try {
    return await dispatch(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`cellgate: ${error.message.trimEnd()}\n`);
      return 2;
    }
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`cellgate: ${process.env.CELLGATE_DEBUG ? ((error as Error).stack ?? message) : message.split('\n')[0]}\n`);
    return 2;
  }
}
