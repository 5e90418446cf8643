/**
 * Thrown when a policy or an option is invalid: zero, negative, NaN or
 * infinite numbers, unparseable durations, unknown modes. Names the parameter
 * and the value it was given. Nothing is changed when it is thrown.
 *
 * @example
 * ```ts
 * try { gcra({ limit: 0, period: '1s' }); }
 * catch (e) { if (e instanceof ConfigError) console.log(e.parameter); } // "limit"
 * ```
 */
export class ConfigError extends RangeError {
  override readonly name: string = 'ConfigError';
  /** The parameter at fault, e.g. `"limit"` or `"period"`. */
  readonly parameter: string;
  /** The value it was given. */
  readonly value: unknown;

  constructor(parameter: string, value: unknown, expected: string) {
    super(`${parameter} must be ${expected}, got ${describe(value)}`);
    this.parameter = parameter;
    this.value = value;
  }
}

/**
 * Thrown when an options object has a name its factory or constructor does
 * not know, most often a typo: the option would otherwise be ignored and its
 * default used. `parameter` is the unknown name; `suggestion` the nearest
 * known one, if any is close.
 *
 * @example
 * ```ts
 * try { gcra({ limit: 5, period: '1s', brust: 3 } as never); }
 * catch (e) { if (e instanceof UnknownOptionError) console.log(e.message); }
 * // unknown option 'brust' for gcra(): did you mean 'burst'?
 * ```
 */
export class UnknownOptionError extends ConfigError {
  override readonly name: string = 'UnknownOptionError';
  /** The nearest known option name, when one is close enough to be meant. */
  readonly suggestion: string | undefined;

  constructor(option: string, where: string, suggestion: string | undefined) {
    super(option, undefined, 'a known option');
    this.message = `unknown option '${option}' for ${where}` + (suggestion === undefined ? '' : `: did you mean '${suggestion}'?`);
    this.suggestion = suggestion;
  }
}

/**
 * Thrown when an argument of a call is invalid: an empty, non-string or
 * over-long key, a cost that is not a positive integer or that exceeds what the
 * policy can ever admit. Nothing is charged when it is thrown.
 *
 * @example
 * ```ts
 * try { limiter.limitSync(''); }
 * catch (e) { if (e instanceof ArgumentError) console.log(e.parameter); } // "key"
 * ```
 */
export class ArgumentError extends RangeError {
  override readonly name = 'ArgumentError';
  /** The parameter at fault, e.g. `"key"` or `"cost"`. */
  readonly parameter: string;
  /** The value it was given. */
  readonly value: unknown;

  constructor(parameter: string, value: unknown, expected: string) {
    super(`${parameter} must be ${expected}, got ${describe(value)}`);
    this.parameter = parameter;
    this.value = value;
  }
}

/**
 * The rejection of `acquire` when admission would take longer than its
 * `maxWaitMs`. Nothing is charged.
 *
 * @example
 * ```ts
 * await limiter.acquire('k', { maxWaitMs: 100 }).catch((e) => {
 *   if (e instanceof AcquireTimeoutError) console.log(e.waitMs); // the wait it would have needed
 * });
 * ```
 */
export class AcquireTimeoutError extends Error {
  override readonly name = 'AcquireTimeoutError';
  /** How long admission would have taken, in milliseconds. */
  readonly waitMs: number;

  constructor(key: string, waitMs: number, maxWaitMs: number) {
    super(`admission of ${JSON.stringify(key)} needs ${waitMs.toFixed(3)} ms, more than maxWaitMs ${maxWaitMs}`);
    this.waitMs = waitMs;
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') {
    return value.length > 40 ? `a string of length ${value.length}` : JSON.stringify(value);
  }
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (value === null || value === undefined) return String(value);
  return `a value of type ${Array.isArray(value) ? 'array' : typeof value}`;
}
