// `cellgate doctor --redis URL`: checks a Redis deployment before a fleet
// trusts it with its limits, with the application's own client library, and
// says what to fix. Each check is ok, info, warn or FAIL; any FAIL makes the
// exit status 1.
import { createHash } from 'node:crypto';
import { Limiter } from '../limiter/limiter.js';
import { gcra } from '../policies/gcra.js';
import { withTimeout } from '../stores/redis/circuit-breaker.js';
import { replyText, toConnection } from '../stores/redis/connection.js';
import { MEMBER_TTL_MS, RedisStore } from '../stores/redis/redis-store.js';
import { CAS_SCRIPT } from '../stores/redis/scripts.js';
import { percentile } from './measure.js';
import { connect, type Connected, type RedisUrl } from './redis-clients.js';
import { UsageError } from './usage-error.js';

export type Status = 'ok' | 'info' | 'warn' | 'FAIL';

/** One check's outcome; `fix` says what to do when it is not ok. */
export interface Check {
  name: string;
  status: Status;
  detail: string;
  fix?: string;
}

/** The whole report, as `--json` prints it. */
export interface DoctorReport {
  redis: string;
  client: string;
  checks: Check[];
  /** The `timeoutMs` suggested from the measured round trips (undefined when Redis was not reached). */
  suggestedTimeoutMs: number | undefined;
  problems: number;
  warnings: number;
}

const ROUNDS = 50;
/** The store's default timeoutMs, against which the suggestion is weighed. */
const DEFAULT_TIMEOUT_MS = 100;

/** The `name:value` lines of an INFO-style reply (`INFO`, `CLUSTER INFO`) as a map. */
async function fields(command: (args: string[]) => Promise<unknown>, args: string[]): Promise<Map<string, string>> {
  const lines = replyText(await command(args)).split(/\r?\n/);
  return new Map(lines.filter((l) => l.includes(':') && !l.startsWith('#')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
}

/** `CONFIG GET name`'s value, or undefined when CONFIG is refused (managed services often rename or disable it). */
async function config(command: (args: string[]) => Promise<unknown>, name: string): Promise<string | undefined> {
  try {
    const reply = (await command(['CONFIG', 'GET', name])) as unknown;
    // A flat [name, value] array (RESP2) or a map (RESP3 clients).
    if (Array.isArray(reply)) return reply.length >= 2 ? replyText(reply[1]) : undefined;
    if (reply !== null && typeof reply === 'object') return replyText((reply as Record<string, unknown>)[name]);
    return undefined;
  } catch {
    return undefined;
  }
}

/** Milliseconds of `n` sequential calls of `call`, sorted. */
async function rounds(n: number, call: (i: number) => Promise<unknown>): Promise<Float64Array> {
  const times = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call(i);
    times[i] = performance.now() - t;
  }
  return times.sort();
}

const ms = (x: number) => `${x < 10 ? x.toFixed(2) : x.toFixed(0)} ms`;

/** A script that counts the fleet's live members (fleet.lua's set) without joining it. */
const FLEET_COUNT_LUA = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')";
const FLEET_COUNT = { name: 'cellgateDoctorFleet', lua: FLEET_COUNT_LUA, sha: createHash('sha1').update(FLEET_COUNT_LUA).digest('hex') };

/**
 * Runs every check against `url` and returns the report (it never throws for
 * what it finds: an unreachable Redis is a failed check).
 *
 * @example
 * ```ts
 * const report = await doctor(parseRedisUrl('redis://127.0.0.1:6379'), { prefix: 'cellgate:', timeoutMs: 2000 });
 * report.problems; // 0 when nothing is to be fixed
 * ```
 */
export async function doctor(url: RedisUrl, options: { prefix: string; timeoutMs: number; client?: string; progress?: (line: string) => void }): Promise<DoctorReport> {
  const checks: Check[] = [];
  const progress = options.progress ?? (() => {});
  const add = (check: Check) => {
    checks.push(check);
    progress(`${check.status} ${check.name}`);
  };
  let redis: Connected;
  try {
    redis = await connect(url, options.timeoutMs, options.client);
  } catch (error) {
    // A missing client library is the caller's usage error; anything else is a finding.
    if (error instanceof UsageError) throw error;
    add({ name: 'reachable', status: 'FAIL', detail: (error as Error).message, fix: 'check the URL, the network path (firewall, TLS: rediss://) and the credentials' });
    return finish(url, '—', checks, undefined);
  }
  const client = `${redis.library} ${redis.version}${redis.cluster ? ' (Cluster)' : ''}`;
  let suggested: number | undefined;
  // Every command waits --timeout at most: a server frozen mid-check is a finding, not a hang.
  const bound = <T>(p: Promise<T>) => withTimeout(p, options.timeoutMs);
  try {
    const connection = toConnection(redis.client);
    // The masters (the server itself when standalone), asked once: the topology does not change in a few seconds.
    const masters = (await bound(redis.masters())).map((m) => ({ address: m.address, command: (args: string[]) => bound(m.command(args)) }));
    const master = masters[0];
    const pings = await rounds(ROUNDS, () => master!.command(['PING']));
    add({ name: 'reachable', status: 'ok', detail: `PING over ${ROUNDS} round trips: p50 ${ms(percentile(pings, 0.5))}, p99 ${ms(percentile(pings, 0.99))}` });

    const server = await fields(master!.command, ['INFO', 'server']);
    const version = server.get('redis_version') ?? server.get('valkey_version') ?? '?';
    const major = Number(version.split('.')[0]);
    add(
      Number.isFinite(major) && major < 6
        ? { name: 'version', status: 'warn', detail: `Redis ${version}`, fix: 'cellgate is tested on Redis 7; upgrade to 6.2 or later' }
        : { name: 'version', status: 'ok', detail: `${server.has('valkey_version') ? 'Valkey' : 'Redis'} ${version}` },
    );

    // Topology: a Cluster's slots must all be served, or some keys have nowhere to go.
    if (redis.cluster) {
      const cluster = await fields(master!.command, ['CLUSTER', 'INFO']);
      const ok = Number(cluster.get('cluster_slots_ok') ?? 0);
      const state = cluster.get('cluster_state');
      add(
        state === 'ok' && ok === 16384
          ? { name: 'topology', status: 'ok', detail: `Cluster of ${masters.length} masters, all 16384 slots served (cluster_state ok)` }
          : { name: 'topology', status: 'FAIL', detail: `Cluster state ${state}, ${ok} of 16384 slots served`, fix: 'assign every slot to a live master (redis-cli --cluster fix); keys of unserved slots fall back' },
      );
    } else add({ name: 'topology', status: 'ok', detail: 'standalone server (one breaker state: its keys share its fate)' });

    // The scripts: loaded and answering, through the store itself.
    const store = new RedisStore({ client: redis.client, prefix: `${options.prefix}doctor:`, timeoutMs: options.timeoutMs, connectTimeoutMs: options.timeoutMs });
    try {
      await store.ready();
      const limiter = new Limiter({ policy: gcra({ limit: 1000, period: '1s' }), store });
      const sources = new Set<string>();
      // Warm-up first: the first call on each master loads the script (EVAL), which is no round trip of a running fleet.
      await rounds(ROUNDS, (i) => limiter.limit(`doctor:warm:${i}`));
      const decides = await rounds(ROUNDS, async (i) => sources.add((await limiter.limit(`doctor:${i}`)).source));
      await bound(connection.evalScript(CAS_SCRIPT, `${options.prefix}doctor:{0}:cas`, ['get']));
      const p99 = percentile(decides, 0.99);
      if (sources.size === 1 && sources.has('redis')) {
        add({ name: 'scripts', status: 'ok', detail: `decide, cas and fleet scripts load and run; a decision's round trip p50 ${ms(percentile(decides, 0.5))}, p99 ${ms(p99)}` });
        suggested = Math.min(60_000, Math.max(10, Math.ceil(p99 * 3 + 5)));
      } else {
        add({ name: 'scripts', status: 'FAIL', detail: `decisions came from ${[...sources].join(', ')}, not Redis`, fix: 'the decide script fails here: check that EVAL/EVALSHA are allowed and the Lua struct library is present' });
      }
    } catch (error) {
      const cause = (error as { cause?: Error }).cause?.message ?? (error as Error).message;
      add({ name: 'scripts', status: 'FAIL', detail: `the decide script does not run: ${cause}`, fix: 'allow EVAL/EVALSHA (scripting) for this user (ACL: +@scripting)' });
    } finally {
      await store.close();
    }

    // Eviction and persistence, on every master: one bad master loses its shards' state.
    const policies = new Map<string, string[]>();
    const persistence = new Set<string>();
    for (const m of masters) {
      const policy = (await config(m.command, 'maxmemory-policy')) ?? 'unknown (CONFIG GET refused)';
      policies.set(policy, [...(policies.get(policy) ?? []), m.address]);
      const p = await fields(m.command, ['INFO', 'persistence']);
      const save = await config(m.command, 'save');
      persistence.add(p.get('aof_enabled') === '1' ? 'AOF' : save !== undefined && save !== '' ? 'RDB snapshots' : save === '' ? 'none' : 'unknown (CONFIG GET refused)');
    }
    for (const [policy, where] of policies) {
      const on = masters.length > 1 ? ` on ${where.join(', ')}` : '';
      if (policy.startsWith('allkeys-')) {
        add({ name: 'maxmemory-policy', status: 'FAIL', detail: `${policy}${on}: under memory pressure Redis silently evicts limiter state, and evicted keys start again with a full limit`, fix: 'CONFIG SET maxmemory-policy noeviction (writes then fail loudly and the fallback decides), or give the limiter its own Redis' });
      } else if (policy.startsWith('volatile-')) {
        add({ name: 'maxmemory-policy', status: 'warn', detail: `${policy}${on}: every limiter key has a TTL, so all of them are eviction candidates`, fix: 'prefer noeviction, or keep maxmemory well above the data set' });
      } else if (policy === 'noeviction') {
        add({ name: 'maxmemory-policy', status: 'ok', detail: `noeviction${on}: limiter state is never evicted (at maxmemory writes fail, and the fallback decides)` });
      } else add({ name: 'maxmemory-policy', status: 'warn', detail: `${policy}${on}`, fix: 'make sure the eviction policy is noeviction (ask your provider)' });
    }
    add({
      name: 'persistence',
      status: 'info',
      detail: `${[...persistence].join(', ')}: ${
        persistence.has('none')
          ? 'a restart forgets every limit (the fallback decides meanwhile; afterwards keys start with a full limit)'
          : [...persistence].some((p) => p.startsWith('unknown'))
            ? 'whether a restart keeps the limits is not known here (ask your provider)'
            : 'state survives a restart up to the last write persisted'
      }`,
    });

    // Clock: decisions use Redis TIME by default; a skewed client matters only with time: 'client'.
    const t0 = Date.now();
    const time = (await master!.command(['TIME'])) as unknown[];
    const t1 = Date.now();
    const redisMs = Number(replyText(time[0])) * 1000 + Number(replyText(time[1])) / 1000;
    const offset = redisMs - (t0 + t1) / 2;
    add(
      Math.abs(offset) > 1000
        ? { name: 'clock', status: 'warn', detail: `Redis's clock is ${ms(offset)} from this machine's`, fix: "run NTP on both; the default time: 'redis' is unaffected, time: 'client' is not" }
        : { name: 'clock', status: 'ok', detail: `Redis's clock is ${ms(offset)} from this machine's (decisions use Redis TIME by default)` },
    );

    // The fleet: stores on this prefix that beat within MEMBER_TTL_MS.
    const fleet = Number(await bound(connection.evalScript(FLEET_COUNT, `${options.prefix}{fleet}`, [String(MEMBER_TTL_MS)])));
    add({ name: 'fleet', status: 'info', detail: `${fleet} store${fleet === 1 ? '' : 's'} alive on prefix ${JSON.stringify(options.prefix)} (heartbeats of the last ${MEMBER_TTL_MS / 1000} s): the default fallback gives each 1/${Math.max(1, fleet)} of a limit` });

    if (suggested !== undefined) {
      add(
        suggested > DEFAULT_TIMEOUT_MS
          ? { name: 'timeoutMs', status: 'warn', detail: `round trips here need about ${suggested} ms (3x the p99 plus 5 ms): the default ${DEFAULT_TIMEOUT_MS} ms would fall back on slow calls`, fix: `new RedisStore({ client, timeoutMs: ${suggested} })` }
          : { name: 'timeoutMs', status: 'ok', detail: `suggested ${suggested} ms (3x the decision p99 plus 5 ms, at least 10); the default ${DEFAULT_TIMEOUT_MS} ms is enough` },
      );
    }
  } catch (error) {
    add({ name: 'checks', status: 'FAIL', detail: `Redis stopped answering during the checks: ${(error as Error).message}`, fix: 'run doctor again; check the server is not overloaded' });
  } finally {
    await redis.close();
  }
  return finish(url, client, checks, suggested);
}

function finish(url: RedisUrl, client: string, checks: Check[], suggestedTimeoutMs: number | undefined): DoctorReport {
  return { redis: url.shown, client, checks, suggestedTimeoutMs, problems: checks.filter((c) => c.status === 'FAIL').length, warnings: checks.filter((c) => c.status === 'warn').length };
}

/**
 * The report as text: one line per check, what to fix under it, a summary.
 *
 * @example
 * ```ts
 * process.stdout.write(formatReport(report));
 * ```
 */
export function formatReport(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines = [`cellgate doctor: ${report.redis} with ${report.client}`];
  for (const c of report.checks) {
    lines.push(`  ${c.status.padEnd(4)}  ${c.name.padEnd(width)}  ${c.detail}`);
    if (c.fix !== undefined && c.status !== 'ok') lines.push(`  ${''.padEnd(4)}  ${''.padEnd(width)}  fix: ${c.fix}`);
  }
  lines.push(`${report.problems} problem${report.problems === 1 ? '' : 's'}, ${report.warnings} warning${report.warnings === 1 ? '' : 's'}`);
  return `${lines.join('\n')}\n`;
}
