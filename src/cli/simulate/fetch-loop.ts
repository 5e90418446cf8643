// The calls of one pod of `cellgate simulate` made through limitedFetch (the
// scenarios about listening to the upstream): limitedFetch admits, holds,
// paces and sends; this module only makes the demand and tags each request
// with what the upstream records. Run by pod.ts once "go" arrives.
import { limitedFetch, type LimitedFetchOptions } from '../../http/index.js';
import type { Limiter } from '../../index.js';
import { bursts } from './bursts.js';
// Types only: pod.js is the process's main module, still evaluating when it imports this one.
import type { PodConfig, PodResult } from './pod.js';

// Node loads undici (fetch, Headers) at the first touch of those globals:
// tens of ms on a busy machine, which the first call after "go" would spend
// between limitedFetch's pace check and the send. Touched here, at load.
void new Headers();

/** Without `demand`, this many calls loop back to back in each pod: a pod's worker pool. */
export const FETCH_LOOPS = 4;

/** What the fetch wrapper needs of a call in progress, by its `x-id`. */
interface Call {
  /** performance.now() when the call was asked for: its wait is until fetch is called. */
  asked: number;
  /** Called when limitedFetch calls fetch: from then on the call is in flight, no longer given up at its deadline. */
  sent(): void;
}

/**
 * Runs the pod's demand through `limitedFetch(fetch, { limiter, key, ...config.fetch })`
 * for `config.seconds` and resolves with what it did. Each request carries
 * `x-pod`, `x-id` (pod:serial), `x-wait` (ms from asking to the send) and
 * `x-checked` (the Date.now() at which limitedFetch called fetch: its pace
 * checked, so a hold written after it could not stop it).
 *
 * @example
 * ```ts
 * const result = await fetchLoop({ ...config, fetch: { shared: false } }, limiter, 'upstream');
 * console.log(result.ok, result.limited, result.handled429);
 * ```
 */
export async function fetchLoop(config: PodConfig, limiter: Limiter, key: string): Promise<PodResult> {
  const { pod, url, seconds, demand } = config;
  const calls = new Map<string, Call>();
  const counts = { sent: 0, ok: 0, limited: 0, other: 0, errors: 0, fallback: 0, dropped: 0 };
  const waits: number[] = [];
  const gaveUp: number[] = [];
  const handled429: [string, number][] = [];
  const errorSamples: string[] = [];

  const tagged: typeof fetch = (input, init) => {
    // First: the moment limitedFetch let the call go, before anything here can take time.
    const checked = Date.now();
    const headers = new Headers(init?.headers);
    const id = headers.get('x-id') ?? '';
    const call = calls.get(id);
    const wait = call === undefined ? 0 : performance.now() - call.asked;
    call?.sent();
    counts.sent++;
    waits.push(wait);
    headers.set('x-pod', String(pod));
    headers.set('x-wait', wait.toFixed(2));
    headers.set('x-checked', String(checked));
    return fetch(input, { ...init, headers });
  };
  // The options the scenario names, spread so that ones not yet in this
  // build's LimitedFetchOptions still reach limitedFetch (it rejects unknown
  // ones with a ConfigError, which ends the pod loudly).
  const extra: Record<string, unknown> = { ...config.fetch };
  delete extra.name;
  const options: LimitedFetchOptions = { limiter, key, ...extra };
  const api = limitedFetch(tagged, options);

  const start = performance.now();
  const end = start + seconds * 1000;
  let serial = 0;
  /** One call; given up (not counted as sent) if limitedFetch has not sent it within `deadlineMs`. */
  const one = async (asked: number, deadlineMs: number, countDrop: boolean): Promise<void> => {
    const id = `${pod}:${serial++}`;
    const controller = new AbortController();
    let sent = false;
    const timer = setTimeout(() => controller.abort(), Math.max(0, deadlineMs));
    calls.set(id, {
      asked,
      sent: () => {
        sent = true;
        clearTimeout(timer);
      },
    });
    try {
      const res = await api(url, { headers: { 'x-id': id }, signal: controller.signal });
      // Read to the end, so that the keep-alive connection is reused.
      await res.arrayBuffer();
      if (res.status >= 200 && res.status < 300) counts.ok++;
      else if (res.status === 429) {
        counts.limited++;
        handled429.push([id, Date.now()]);
      } else {
        counts.other++;
        if (errorSamples.length < 3) errorSamples.push(`status ${res.status}`);
      }
    } catch (error) {
      if (!sent) {
        if (countDrop) {
          counts.dropped++;
          gaveUp.push(performance.now() - asked);
        }
      } else {
        counts.errors++;
        if (errorSamples.length < 3) errorSamples.push(String((error as Error)?.cause ?? error));
      }
    } finally {
      clearTimeout(timer);
      calls.delete(id);
    }
  };

  if (demand === undefined) {
    // Back to back in FETCH_LOOPS loops; a call not sent by the end of the run is not made.
    const loop = async () => {
      for (let now = performance.now(); now < end; now = performance.now()) await one(now, end - now, false);
    };
    await Promise.all(Array.from({ length: FETCH_LOOPS }, loop));
  } else {
    // Bursty demand: `count` calls at once every `everyMs`; each gives up after `deadlineMs` unsent.
    await bursts(demand, start, end, (asked) => one(asked, Math.min(demand.deadlineMs, end - asked), true));
  }
  const round = (ms: number[]) => ms.map((w) => Math.round(w * 100) / 100);
  return { pod, ...counts, errorSamples, waits: round(waits), gaveUp: round(gaveUp), handled429 };
}
