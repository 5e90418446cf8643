import { RedisTimeoutError } from '../../errors.js';

/** The two states of a {@link CircuitBreaker}. */
export type BreakerState = 'closed' | 'open';

/** Runs `f` after the event loop's next poll for I/O: setImmediate where there is one. */
const afterIo: (f: () => void) => void =
  typeof (globalThis as { setImmediate?: unknown }).setImmediate === 'function' ? (f) => void setImmediate(f) : (f) => void setTimeout(f, 0);

/**
 * Resolves like `promise`, or rejects with {@link RedisTimeoutError} after
 * `ms`: a hung server must not hold a caller longer than that.
 *
 * The verdict waits for the event loop's next poll for I/O: a process that
 * was busy (a stalled event loop, a starved CPU) finds its timer due and the
 * answer already in its socket at once, and Node runs timers before it reads
 * sockets. Rejecting then would count a timeout against a Redis that answered
 * in time (three in a row open the breaker), and decide by the fallback what
 * Redis had already decided and charged.
 *
 * @example
 * ```ts
 * const reply = await withTimeout(client.ping(), 100); // or RedisTimeoutError
 * ```
 */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => afterIo(() => settled || reject(new RedisTimeoutError(ms))), ms);
    promise.then(
      (value) => {
        settled = true;
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        settled = true;
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Detail of a breaker's `'open'` event. */
export interface BreakerOpenDetail {
  /** The shards (breaker shards, see {@link CircuitBreaker}) that just opened. */
  readonly shards: readonly number[];
  /** What failed: a timeout, a connection error, a script error. */
  readonly error: unknown;
}

/** Detail of a breaker's `'close'` event. */
export interface BreakerCloseDetail {
  /** The shards that just closed: Redis answered their probe. */
  readonly shards: readonly number[];
}

/**
 * Consecutive timeouts of a shard's calls that open it. One slow batch on a
 * busy machine (a GC pause, a CPU hog) is not an outage: its calls fall back,
 * and the next batch asks Redis again. Three in a row are (under SIGSTOP every
 * batch in flight times out together, so this costs about one timeout).
 */
export const TIMEOUTS_TO_OPEN = 3;

/**
 * A store's circuit breaker, kept per shard of the fleet's Redis: on a Redis
 * Cluster one per virtual shard, so a lost master takes down only the shards
 * it served; on a single server one for all (its shards share its fate).
 * A connection error, a script error or a client that lost its connection
 * opens at once (all shards, for the connection); timeouts open a shard when
 * {@link TIMEOUTS_TO_OPEN} come in a row. Until Redis has answered once, a
 * call may take `connectTimeoutMs` (connecting and loading scripts), not
 * `timeoutMs`: pods starting together on a busy machine must not all fall
 * back at birth.
 *
 * While a shard is open nothing waits on Redis for its keys, and a probe (an
 * empty call routed like the shard's) runs every `probeIntervalMs` until it
 * answers, which closes it. One timer serves all shards: no timer per key. A
 * due probe is also started from the call path, so callers that never yield
 * to timers cannot starve it.
 *
 * It is an `EventTarget`: `'open'` ({@link BreakerOpenDetail}) when shards
 * open, `'close'` ({@link BreakerCloseDetail}) when they close.
 *
 * @example
 * ```ts
 * store.breaker.addEventListener('open', (e) => log.warn('redis down', (e as CustomEvent).detail.error));
 * store.breaker.addEventListener('close', () => log.info('redis back'));
 * ```
 */
export class CircuitBreaker extends EventTarget {
  readonly #open: Uint8Array;
  /** Timeouts in a row, per shard. */
  readonly #timeouts: Uint8Array;
  #contacted = false;
  #probing = false;
  /** probeNow() came while a probe was under way: another follows it at once. */
  #probeAgain = false;
  #nextProbeAt = 0;
  #openCount = 0;
  #opens = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  readonly #probe: (shard: number) => Promise<unknown>;
  readonly #probeIntervalMs: number;
  readonly #timeoutMs: number;
  readonly #connectTimeoutMs: number;

  /**
   * @param shards How many shards fail independently.
   * @param probe Asks Redis on behalf of one shard; resolves when it answers.
   * @param connectTimeoutMs How long a call may take before Redis has answered once (default `timeoutMs`).
   */
  constructor(shards: number, probe: (shard: number) => Promise<unknown>, probeIntervalMs: number, timeoutMs: number, connectTimeoutMs = timeoutMs) {
    super();
    this.#open = new Uint8Array(shards);
    this.#timeouts = new Uint8Array(shards);
    this.#probe = probe;
    this.#probeIntervalMs = probeIntervalMs;
    this.#timeoutMs = timeoutMs;
    this.#connectTimeoutMs = connectTimeoutMs;
  }

  /** Whether Redis has answered a call or probe of this store yet. */
  get contacted(): boolean {
    return this.#contacted;
  }

  /** Redis answered (a call, a probe, `ready()`): from now on calls get `timeoutMs`. */
  succeeded(shard: number): void {
    this.#contacted = true;
    if (shard >= 0) this.#timeouts[shard] = 0;
  }

  /**
   * Sends a shard's call under the breaker: bounded by `timeoutMs` (or
   * `connectTimeoutMs` before the first answer), or by `budgetMs` when its
   * calls have already waited for part of that, its failure recorded.
   * Resolves with the answer, or undefined when it failed: the caller's
   * fallback decides.
   */
  async run<T>(shard: number, send: () => Promise<T>, budgetMs = this.timeoutNow): Promise<T | undefined> {
    try {
      const answer = await withTimeout(send(), budgetMs);
      this.succeeded(shard);
      return answer;
    } catch (error) {
      // A batch the script refused for running past its deadline (decide.lua:
      // a frozen server resuming) is a timeout that Redis saw too.
      const late = error instanceof Error && error.message.startsWith('TOOLATE');
      this.fail(shard, late ? new RedisTimeoutError(this.timeoutNow) : error);
      return undefined;
    }
  }

  /** How long a call may take now: `connectTimeoutMs` until Redis has answered once, then `timeoutMs`. */
  get timeoutNow(): number {
    return this.#contacted ? this.#timeoutMs : this.#connectTimeoutMs;
  }

  /** `'closed'`: Redis decides for every shard. `'open'`: for at least one shard, the fallback does. */
  get state(): BreakerState {
    return this.#openCount > 0 ? 'open' : 'closed';
  }

  /** How many shards fail independently. */
  get shards(): number {
    return this.#open.length;
  }

  /** How many shards are open now. */
  get openShards(): number {
    return this.#openCount;
  }

  /** How many times a shard has opened. */
  get opens(): number {
    return this.#opens;
  }

  /** Whether the shard's keys are decided by the fallback (starting a probe that is due). */
  isOpen(shard: number): boolean {
    if (this.#open[shard] !== 1) return false;
    if (!this.#probing && !this.#stopped && performance.now() >= this.#nextProbeAt) void this.#probeAll();
    return true;
  }

  /**
   * Records a failure of a shard's call, or of every shard's for `-1`: opens
   * them, at once for anything but a timeout of a store that has reached
   * Redis before, on the {@link TIMEOUTS_TO_OPEN}th in a row for those.
   */
  fail(shard: number, error: unknown): void {
    if (shard >= 0 && error instanceof RedisTimeoutError && this.#contacted && this.#open[shard] !== 1) {
      if (++this.#timeouts[shard]! < TIMEOUTS_TO_OPEN) return;
    }
    const opened: number[] = [];
    const from = shard < 0 ? 0 : shard;
    const to = shard < 0 ? this.#open.length : shard + 1;
    for (let s = from; s < to; s++) {
      this.#timeouts[s] = 0;
      if (this.#open[s] === 1) continue;
      this.#open[s] = 1;
      opened.push(s);
    }
    if (opened.length === 0) return;
    this.#openCount += opened.length;
    this.#opens += opened.length;
    this.dispatchEvent(new CustomEvent<BreakerOpenDetail>('open', { detail: { shards: opened, error } }));
    if (this.#timer === undefined && !this.#probing) this.#schedule();
  }

  /**
   * Probes the open shards now rather than at the next `probeIntervalMs`
   * (the client has just reconnected): the stores of a fleet then get back
   * to Redis together, not each at its own probe's phase.
   */
  probeNow(): void {
    if (this.#openCount === 0 || this.#stopped) return;
    if (this.#probing) this.#probeAgain = true;
    else void this.#probeAll();
  }

  /** Stops probing (the store is being closed). */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#stopped = true;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#nextProbeAt = performance.now() + this.#probeIntervalMs;
    this.#timer = setTimeout(() => void this.#probeAll(), this.#probeIntervalMs);
    // A probe must not keep a process alive that has nothing else to do.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  async #probeAll(): Promise<void> {
    if (this.#probing || this.#stopped) return;
    this.#probing = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const open: number[] = [];
    for (let s = 0; s < this.#open.length; s++) if (this.#open[s] === 1) open.push(s);
    const answered = await Promise.all(
      open.map((shard) =>
        withTimeout(this.#probe(shard), this.#contacted ? this.#timeoutMs : this.#connectTimeoutMs).then(
          () => true,
          () => false,
        ),
      ),
    );
    this.#probing = false;
    if (answered.some((a) => a)) this.#contacted = true;
    const closed = open.filter((shard, i) => answered[i] && this.#open[shard] === 1);
    for (const shard of closed) this.#open[shard] = 0;
    this.#openCount -= closed.length;
    if (closed.length > 0) this.dispatchEvent(new CustomEvent<BreakerCloseDetail>('close', { detail: { shards: closed } }));
    const again = this.#probeAgain;
    this.#probeAgain = false;
    if (this.#openCount > 0 && again) void this.#probeAll();
    else if (this.#openCount > 0 && this.#timer === undefined) this.#schedule();
  }
}
