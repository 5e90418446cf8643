import { ConfigError } from '../errors.js';

/**
 * Timer functions, injectable so that tests can run what waits (the
 * scheduler, the adaptive pacer) on a virtual clock. Handles are opaque:
 * whatever `setTimeout` returns is given back to `clearTimeout`.
 *
 * @example
 * ```ts
 * const timers: Timers = { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
 * ```
 */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The global `setTimeout`/`clearTimeout`, looked up at each call (so fake timers apply). */
const globalTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * A `timers` option, checked: the global timers when left out, otherwise an
 * object with both functions (a ConfigError naming `timers` if not).
 * @internal
 */
export function timersOption(timers: unknown): Timers {
  if (timers === undefined) return globalTimers;
  const t = timers as Partial<Timers> | null;
  if (typeof t !== 'object' || t === null || typeof t.setTimeout !== 'function' || typeof t.clearTimeout !== 'function') {
    throw new ConfigError('timers', timers, 'an object with setTimeout and clearTimeout functions');
  }
  return t as Timers;
}
