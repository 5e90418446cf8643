/** The two states of a {@link CircuitBreaker}. */
export type BreakerState = 'closed' | 'open';

/**
 * Thrown (as the cause of an open breaker) when Redis did not answer within
 * the store's `timeoutMs`.
 */
export class RedisTimeoutError extends Error {
  override readonly name = 'RedisTimeoutError';
  constructor(timeoutMs: number) {
    super(`Redis did not answer within ${timeoutMs} ms`);
  }
}

/**
 * Resolves like `promise`, or rejects with {@link RedisTimeoutError} after
 * `ms`: a hung server must not hold a caller longer than that.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new RedisTimeoutError(ms)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * A per-store circuit breaker. Any failure (a timeout, a connection error, a
 * script error) opens it; while open, nothing waits on Redis, and a probe runs
 * every `probeIntervalMs` until Redis answers, which closes it. It is an
 * `EventTarget` that dispatches `'open'` (with the error as `detail`) and
 * `'close'`.
 *
 * @example
 * ```ts
 * store.breaker.addEventListener('open', (e) => log.warn('redis down', (e as CustomEvent).detail));
 * store.breaker.addEventListener('close', () => log.info('redis back'));
 * ```
 */
export class CircuitBreaker extends EventTarget {
  #state: BreakerState = 'closed';
  #timer: ReturnType<typeof setTimeout> | undefined;
  #openedAt = 0;
  #opens = 0;
  readonly #probe: () => Promise<unknown>;
  readonly #probeIntervalMs: number;
  readonly #timeoutMs: number;

  constructor(probe: () => Promise<unknown>, probeIntervalMs: number, timeoutMs: number) {
    super();
    this.#probe = probe;
    this.#probeIntervalMs = probeIntervalMs;
    this.#timeoutMs = timeoutMs;
  }

  /** `'closed'`: Redis decides. `'open'`: Redis is considered down, the fallback decides. */
  get state(): BreakerState {
    return this.#state;
  }

  /** How many times it has opened. */
  get opens(): number {
    return this.#opens;
  }

  /** When it last opened (performance.now() milliseconds), or 0. */
  get openedAt(): number {
    return this.#openedAt;
  }

  /** Records a failure: opens the breaker if it was closed. */
  fail(error: unknown): void {
    if (this.#state === 'open') return;
    this.#state = 'open';
    this.#opens++;
    this.#openedAt = performance.now();
    this.dispatchEvent(new CustomEvent('open', { detail: error }));
    this.#schedule();
  }

  /** Stops probing (the store is being closed). */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#tryClose(), this.#probeIntervalMs);
    // A probe must not keep a process alive that has nothing else to do.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  async #tryClose(): Promise<void> {
    try {
      await withTimeout(this.#probe(), this.#timeoutMs);
    } catch {
      this.#schedule();
      return;
    }
    this.#state = 'closed';
    this.#timer = undefined;
    this.dispatchEvent(new Event('close'));
  }
}
